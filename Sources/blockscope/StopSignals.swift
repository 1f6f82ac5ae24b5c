import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT, SIGTERM and SIGHUP during `run`: the first one stops the work as
/// fio's Ctrl-C does. Requests in flight complete, the results so far are printed, and the
/// image is flushed and closed, so every write that completed is in the image and its lock
/// is released. Without this, a signal killed the process before the close: a QCOW2's cached
/// metadata updates for completed writes never reached the file.
///
/// The handler is installed synchronously with `sigaction` and only writes the signal's
/// number to a pipe (async-signal-safe); a thread reads the pipe and acts off the signal
/// context, where it may take locks. (A dispatch signal source needed the signals ignored
/// first and armed itself asynchronously: a signal in between was dropped, and a job of
/// 4 GiB ran to its end after SIGTERM.) The signals are unblocked in the calling thread, in
/// case the process inherited them blocked. A second signal of any of them restores the
/// default action and re-raises it (a stuck close can still be killed).
final class StopSignals: @unchecked Sendable {
    /// The signals handled.
    static let handled: [Int32] = [SIGINT, SIGTERM, SIGHUP]
    /// The pipe the handler writes to: read end, write end (-1 before the first install).
    nonisolated(unsafe) private static var pipeFDs: (Int32, Int32) = (-1, -1)
    /// The first signal caught, or 0.
    let caught = Atomic<Int32>(0)
    private var previous: [(Int32, sigaction)] = []
    private var reader: Thread?

    /// Starts catching the signals; `onStop` runs once, on the first one, off the signal context.
    init(onStop: @escaping @Sendable (Int32) -> Void) {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) != 0 { fds = [-1, -1] }
        for fd in fds where fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        Self.pipeFDs = (fds[0], fds[1])
        var set = sigset_t()
        sigemptyset(&set)
        for sig in Self.handled {
            sigaddset(&set, sig)
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                var b = UInt8(truncatingIfNeeded: sig)
                _ = write(StopSignals.pipeFDs.1, &b, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            var old = sigaction()
            sigaction(sig, &action, &old)
            previous.append((sig, old))
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        let readFD = fds[0]
        let t = Thread { [weak self] in
            var b: UInt8 = 0
            while readFD >= 0 {
                let n = read(readFD, &b, 1)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { close(readFD); return }
                let sig = Int32(b)
                guard let self else { close(readFD); return }
                if self.caught.compareExchange(expected: 0, desired: sig, ordering: .relaxed).exchanged {
                    printError("blockscope: \(Self.name(sig)): stopping; requests in flight finish, then the image is flushed and closed (again to kill)")
                    onStop(sig)
                } else {
                    signal(sig, SIG_DFL)
                    raise(sig)
                }
            }
        }
        t.name = "blockscope.signals"
        t.start()
        reader = t
    }

    /// Stops catching: the previous actions are back and the reader thread ends.
    func cancel() {
        for (sig, old) in previous { var o = old; sigaction(sig, &o, nil) }
        previous = []
        let w = Self.pipeFDs.1
        Self.pipeFDs = (-1, -1)
        if w >= 0 { close(w) }   // the reader sees the end of the pipe, closes its end and ends
    }

    /// Whether a signal has asked the work to stop.
    var stopped: Bool { caught.load(ordering: .relaxed) != 0 }

    /// The signal's name with the SIG prefix ("SIGTERM").
    static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(sig)"
        }
    }
}

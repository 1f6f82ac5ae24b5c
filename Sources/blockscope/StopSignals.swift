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
/// The signals are ignored by the process and delivered to a dispatch source instead, so the
/// handler runs on an ordinary thread and may take locks. A second signal of any of them
/// restores the default action and re-raises it (a stuck close can still be killed).
final class StopSignals: @unchecked Sendable {
    /// The signals handled.
    static let handled: [Int32] = [SIGINT, SIGTERM, SIGHUP]
    private var sources: [DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "blockscope.signals")
    /// The first signal caught, or 0.
    let caught = Atomic<Int32>(0)

    /// Starts catching the signals; `onStop` runs once, on the first one, off the signal context.
    init(onStop: @escaping @Sendable (Int32) -> Void) {
        for sig in Self.handled {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            s.setEventHandler { [weak self] in
                guard let self else { return }
                if self.caught.compareExchange(expected: 0, desired: sig, ordering: .relaxed).exchanged {
                    printError("blockscope: \(Self.name(sig)): stopping; requests in flight finish, then the image is flushed and closed (again to kill)")
                    onStop(sig)
                } else {
                    signal(sig, SIG_DFL)
                    raise(sig)
                }
            }
            s.resume()
            sources.append(s)
        }
    }

    /// Stops catching: the default actions are back.
    func cancel() {
        for s in sources { s.cancel() }
        sources = []
        for sig in Self.handled { signal(sig, SIG_DFL) }
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

import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// What the NBD and vhost-user servers share around their clients: the listening socket,
/// the stop pipe (which every connection also polls, so one write stops them all), the
/// SIGINT/SIGTERM thread, and the poll loop that waits for a client or the stop.
///
/// Owned by the server; ``stop()`` is safe from any thread, everything else runs on the
/// thread that calls ``serve(timeout:wake:readable:)``.
final class ServerListener: @unchecked Sendable {
    /// Where it listens.
    let address: NbdListenAddress
    /// The listening socket (-1 before ``listen()`` and after ``serve(timeout:wake:readable:)``).
    private(set) var fd: Int32 = -1
    private let stopPipe: (read: Int32, write: Int32)

    /// Makes the stop pipe (nothing is bound until ``listen()``).
    init(address: NbdListenAddress) throws(BlockError) {
        self.address = address
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw BlockError.system(errno, "pipe") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        stopPipe = (fds[0], fds[1])
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
        Glibc.close(stopPipe.read)
        Glibc.close(stopPipe.write)
    }

    /// The descriptor that becomes readable once ``stop()`` was called (never drained, so it
    /// stays readable for every connection that polls it).
    var stopFD: Int32 { stopPipe.read }

    /// Binds and listens; a stale Unix socket file at the path is replaced, any other file
    /// there is an error.
    func listen() throws(BlockError) {
        fd = try NbdListener.open(address)
    }

    /// Asks the loop and every connection polling ``stopFD`` to stop (idempotent).
    func stop() {
        var b: UInt8 = 1
        _ = Glibc.write(stopPipe.write, &b, 1)
    }

    /// Blocks SIGINT and SIGTERM in this thread (and the threads it starts later) and starts
    /// a thread in `sigwait` that, at the first of them, calls `onSignal` with the signal
    /// (for the server's log line) and then ``stop()``. Call before any other thread starts.
    func handleSignals(_ onSignal: @escaping @Sendable (Int32) -> Void) {
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGINT)
        sigaddset(&mask, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        let work: @Sendable () -> Void = { [self] in
            var mask = sigset_t()
            sigemptyset(&mask)
            sigaddset(&mask, SIGINT)
            sigaddset(&mask, SIGTERM)
            var sig: Int32 = 0
            while sigwait(&mask, &sig) != 0 {}
            onSignal(sig)
            self.stop()
        }
        let box = Unmanaged.passRetained(SignalWork(work)).toOpaque()
        var tid = pthread_t()
        _ = pthread_create(&tid, nil, { arg in
            Unmanaged<SignalWork>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box)
        pthread_detach(tid)
    }

    private final class SignalWork {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Polls the listening socket and the stop pipe until ``stop()``: after every wake-up
    /// calls `wake`, then `readable` when a client waits to be accepted (the server accepts
    /// it: its error handling differs). `timeout` gives each poll's limit in milliseconds
    /// (-1: none). On return the listening socket is closed and a Unix socket file removed;
    /// SIGPIPE is ignored from the first call on.
    func serve(timeout: () -> Int32, wake: () -> Void, readable: () -> Void) throws(BlockError) {
        signal(SIGPIPE, SIG_IGN)
        defer {
            Glibc.close(fd)
            fd = -1
            if case let .unix(path) = address { unlink(path) }
        }
        var fds = [pollfd](repeating: pollfd(), count: 2)
        while true {
            fds[0] = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            fds[1] = pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0)
            let r = Syscall.poll(&fds, 2, timeout())
            if r < 0 { throw BlockError.system(errno, "poll") }
            wake()
            if fds[1].revents != 0 { return }
            if fds[0].revents != 0 { readable() }
        }
    }
}

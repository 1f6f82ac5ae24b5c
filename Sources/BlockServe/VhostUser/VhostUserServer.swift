import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// The vhost-user-blk server: a listening Unix socket and one front end (VMM) at a time,
/// served on the thread that calls ``run(handleSignals:)``.
///
/// A vhost-user device has one driver, so a second front end waits in the listen backlog
/// until the first leaves (as with qemu-storage-daemon). When a VM exits or its connection
/// breaks, the server accepts the next one. ``run(handleSignals:)`` returns after ``stop()``
/// or, with `handleSignals`, SIGINT/SIGTERM, once the front end's in-flight requests have
/// completed; flushing and closing the disk (which releases its locks) is the caller's job.
package final class VhostUserServer: @unchecked Sendable {
    /// What is served.
    package let export: VhostUserBlkExport
    /// The socket path (created; removed on return from ``run(handleSignals:)``).
    package let path: String
    /// Receives one line per event (connect, disconnect, protocol errors, shutdown).
    package let log: @Sendable (String) -> Void
    private var listenFD: Int32 = -1
    private let stopPipe: (read: Int32, write: Int32)
    private var nextClient = 1

    /// Prepares a server (nothing is bound until ``listen()``).
    package init(export: VhostUserBlkExport, path: String, log: @escaping @Sendable (String) -> Void) throws(BlockError) {
        self.export = export
        self.path = path
        self.log = log
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw BlockError.system(errno, "pipe") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        stopPipe = (fds[0], fds[1])
    }

    deinit {
        if listenFD >= 0 { Glibc.close(listenFD) }
        Glibc.close(stopPipe.read)
        Glibc.close(stopPipe.write)
    }

    /// Binds and listens on ``path``; a stale socket file there is replaced, any other file
    /// is an error.
    package func listen() throws(BlockError) {
        listenFD = try NbdListener.open(.unix(path: path))
    }

    /// Asks the server to stop (safe from any thread, idempotent).
    package func stop() {
        var b: UInt8 = 1
        _ = Glibc.write(stopPipe.write, &b, 1)
    }

    /// Serves front ends one after the other until stopped. With `handleSignals`, SIGINT
    /// and SIGTERM are blocked in every thread and taken by a `sigwait` thread, which logs
    /// and calls ``stop()`` (call before any other thread is started).
    package func run(handleSignals: Bool) throws(BlockError) {
        if handleSignals { startSignalThread() }
        signal(SIGPIPE, SIG_IGN)
        defer {
            Glibc.close(listenFD)
            listenFD = -1
            unlink(path)
        }
        while true {
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0)]
            let r = poll(&fds, 2, -1)
            if r < 0 { if errno == EINTR { continue }; throw BlockError.system(errno, "poll") }
            if fds[1].revents != 0 { return }
            if fds[0].revents == 0 { continue }
            let fd = accept(listenFD, nil, nil)
            if fd < 0 { continue }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let id = nextClient
            nextClient += 1
            log("front end \(id) connected")
            let before = (export.requests.load(ordering: .relaxed), export.errors.load(ordering: .relaxed))
            let conn = VhostUserConnection(fd: fd, stopFD: stopPipe.read, export: export, log: { [log] in log("front end \(id): \($0)") })
            let why = conn.run()
            let reqs = export.requests.load(ordering: .relaxed) - before.0
            let errs = export.errors.load(ordering: .relaxed) - before.1
            let perQueue = conn.queues.map { "vq\($0.index) \($0.requests)" }.joined(separator: ", ")
            let kicks = conn.queues.reduce(0) { $0 + $1.kicks }
            let calls = conn.queues.reduce(UInt64(0)) { $0 + ($1.lastCalls) }
            log("front end \(id) disconnected: \(why) (\(reqs) requests: \(perQueue); \(errs) errors, \(kicks) kicks, \(calls) calls)")
        }
    }

    private func startSignalThread() {
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGINT)
        sigaddset(&mask, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        let box = Unmanaged.passRetained(self as AnyObject).toOpaque()
        var tid = pthread_t()
        _ = pthread_create(&tid, nil, { arg in
            let server = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! VhostUserServer
            var mask = sigset_t()
            sigemptyset(&mask)
            sigaddset(&mask, SIGINT)
            sigaddset(&mask, SIGTERM)
            var sig: Int32 = 0
            while sigwait(&mask, &sig) != 0 {}
            server.log("\(sig == SIGINT ? "SIGINT" : "SIGTERM"): draining the front end's requests")
            server.stop()
            return nil
        }, box)
        pthread_detach(tid)
    }
}

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
    /// The listening socket, stop pipe and signal thread (shared with the NBD server).
    private let listener: ServerListener
    private var nextClient = 1

    /// Prepares a server (nothing is bound until ``listen()``).
    package init(export: VhostUserBlkExport, path: String, log: @escaping @Sendable (String) -> Void) throws(BlockError) {
        self.export = export
        self.path = path
        self.log = log
        listener = try ServerListener(address: .unix(path: path))
    }

    /// Binds and listens on ``path``; a stale socket file there is replaced, any other file
    /// is an error.
    package func listen() throws(BlockError) {
        try listener.listen()
    }

    /// Asks the server to stop (safe from any thread, idempotent).
    package func stop() { listener.stop() }

    /// Serves front ends one after the other until stopped. With `handleSignals`, SIGINT
    /// and SIGTERM are blocked in every thread and taken by a `sigwait` thread, which logs
    /// and calls ``stop()`` (call before any other thread is started).
    package func run(handleSignals: Bool) throws(BlockError) {
        if handleSignals {
            listener.handleSignals { [self] sig in log("\(sig == SIGINT ? "SIGINT" : "SIGTERM"): draining the front end's requests") }
        }
        try listener.serve(timeout: { -1 }, wake: {}, readable: { serveOne() })
    }

    /// Accepts the waiting front end and serves it on this thread until it leaves.
    private func serveOne() {
        let fd = accept(listener.fd, nil, nil)
        if fd < 0 { return }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let id = nextClient
        nextClient += 1
        log("front end \(id) connected")
        let before = (export.requests.load(ordering: .relaxed), export.errors.load(ordering: .relaxed))
        let conn = VhostUserConnection(fd: fd, stopFD: listener.stopFD, export: export, log: { [log] in log("front end \(id): \($0)") })
        let why = conn.run()
        let reqs = export.requests.load(ordering: .relaxed) - before.0
        let errs = export.errors.load(ordering: .relaxed) - before.1
        let perQueue = conn.queues.map { "vq\($0.index) \($0.requests)" }.joined(separator: ", ")
        let kicks = conn.queues.reduce(0) { $0 + $1.kicks }
        let calls = conn.queues.reduce(UInt64(0)) { $0 + ($1.lastCalls) }
        log("front end \(id) disconnected: \(why) (\(reqs) requests: \(perQueue); \(errs) errors, \(kicks) kicks, \(calls) calls)")
    }
}

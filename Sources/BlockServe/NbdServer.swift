import BlockIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where the server listens.
package enum NbdListenAddress: Sendable, CustomStringConvertible {
    /// A Unix socket at an absolute or relative path (created; removed on shutdown).
    case unix(path: String)
    /// TCP on `host` (an IPv4 or IPv6 literal or a name) and `port`.
    case tcp(host: String, port: Int)

    /// The address as a client URI (`nbd+unix:///?socket=…` or `nbd://host:port/`).
    package var description: String {
        switch self {
        case let .unix(path): return "nbd+unix:///?socket=\(path)"
        case let .tcp(host, port): return host.contains(":") ? "nbd://[\(host)]:\(port)/" : "nbd://\(host):\(port)/"
        }
    }
}

/// The NBD server: a listening socket, an accept loop, and one thread per client.
///
/// Each client thread owns its own ``AsyncIo`` queue of the export's disk (queue id = client
/// number), so clients run in parallel and share the format's metadata as the engine's
/// queues do (ADR 0002, ADR 0008). ``run()`` returns after ``stop()`` or, when
/// `handleSignals` is set, SIGINT/SIGTERM: it stops accepting, lets every client finish
/// its in-flight requests, and joins their threads. Closing the disk is the caller's job.
public final class NbdServer: @unchecked Sendable {
    /// What is served.
    package let export: NbdExport
    /// Where it listens.
    package let address: NbdListenAddress
    /// Receives one line per event (connect, disconnect, stats, shutdown).
    package let log: @Sendable (String) -> Void
    /// Seconds between `--stats` lines; nil for none.
    package var statsInterval: Double? = nil
    /// Queue IDs given to connections: the lowest free ID from `queueIDs.lowerBound` (reused
    /// after a client leaves, so an event stream with a ring per queue ID sees one producer
    /// per ring); when all are taken, IDs continue past the range.
    package var queueIDs: Range<Int> = 1..<(1 << 30)
    private let usedQueueIDs = Mutex(Set<Int>())

    /// The listening socket, stop pipe and signal thread (shared with the vhost-user server).
    private let listener: ServerListener
    /// Descriptors that bound how many clients can be served (see ``NbdDescriptorBudget``).
    private var descriptors = NbdDescriptorBudget()
    /// Clients accepted and not yet ended (their threads may not have made a queue yet).
    private let liveClients = Mutex(0)
    /// Client threads not yet joined, by client number (touched by the accept thread only).
    private var threads: [Int: pthread_t] = [:]
    /// Client numbers whose thread has ended and waits to be joined: joined at the accept
    /// loop's next wake-up, so an ended client's stack is not kept for the server's lifetime.
    private let ended = Mutex<[Int]>([])
    private var nextClient = 1

    /// Prepares a server (nothing is bound until ``listen()``).
    package init(export: NbdExport, address: NbdListenAddress, log: @escaping @Sendable (String) -> Void) throws(BlockError) {
        self.export = export
        self.address = address
        self.log = log
        listener = try ServerListener(address: address)
    }

    /// Binds and listens; a stale Unix socket file at the path is replaced, any other file
    /// there is an error.
    package func listen() throws(BlockError) {
        try listener.listen()
        descriptors.prepare()
    }

    /// Asks the accept loop and every client to stop (safe from any thread, idempotent).
    package func stop() { listener.stop() }

    /// Accepts clients until stopped, then drains them; returns when every client thread has
    /// ended. With `handleSignals`, SIGINT and SIGTERM are blocked in every thread and taken
    /// by a thread in `sigwait`, which logs and calls ``stop()`` (call before any other
    /// thread is started; that thread stays in `sigwait` until the process exits).
    package func run(handleSignals: Bool) throws(BlockError) {
        if handleSignals {
            listener.handleSignals { [self] sig in
                log("\(sig == SIGINT ? "SIGINT" : "SIGTERM"): no new clients; draining \(export.stats.clients.load(ordering: .relaxed)) connected")
            }
        }
        let stats = statsInterval.map { NbdStatsReporter(stats: export.stats, interval: $0) }
        try listener.serve(timeout: { stats.map { Int32($0.millisecondsToNext()) } ?? -1 },
                           wake: {
                               joinEndedClients()
                               if let stats, let line = stats.tick() { log(line) }
                           },
                           readable: { acceptOne() })
        for t in threads.values { pthread_join(t, nil) }
        threads.removeAll()
        ended.withLock { $0.removeAll() }
    }

    /// Joins the threads of clients that have ended. Without this a server with many short
    /// connections kept every ended thread's stack until shutdown: a 10-minute soak (about
    /// 500 connections per server instance) saw RSS climb 6-13% after warm-up.
    private func joinEndedClients() {
        let ids = ended.withLock { e -> [Int] in let x = e; e.removeAll(); return x }
        for id in ids {
            if let t = threads.removeValue(forKey: id) { pthread_join(t, nil) }
        }
    }

    private var liveCount: Int { liveClients.withLock { $0 } }

    private func takeQueueID(fallback: Int) -> Int {
        usedQueueIDs.withLock { used in
            var q = queueIDs.lowerBound
            while used.contains(q) { q += 1 }
            used.insert(q)
            return q
        }
    }

    private func returnQueueID(_ q: Int) {
        _ = usedQueueIDs.withLock { $0.remove(q) }
    }

    private func acceptOne() {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener.fd, $0, &len) }
        }
        if fd < 0 {
            let e = errno
            // Out of descriptors the connection stays pending and poll would wake at once
            // for ever: take it with the spare descriptor and close it, saying why.
            if (e == EMFILE || e == ENFILE), descriptors.acceptWithSpare(listener.fd) {
                log("client \(nextClient) refused: out of file descriptors (\(descriptors.describe(live: liveCount)))")
                nextClient += 1
            }
            return
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let peer = NbdListener.describePeer(storage, address)
        let id = nextClient
        nextClient += 1
        let live = liveCount
        if !descriptors.hasRoom(live: live) {
            // Refused before the greeting: the client sees the connection closed at once,
            // never a handshake that succeeds and requests that then fail with EIO.
            log("client \(id) (\(peer)) refused: too few file descriptors left for another client (\(descriptors.describe(live: live)))")
            Glibc.close(fd)
            return
        }
        liveClients.withLock { $0 += 1 }
        let qid = takeQueueID(fallback: id)
        let conn = NbdConnection(id: id, queueID: qid, peer: peer, fd: fd, stopFD: listener.stopFD, export: export, log: log,
                                 onEnd: { [weak self] in
                                     self?.returnQueueID(qid)
                                     self?.liveClients.withLock { $0 -= 1 }
                                     self?.ended.withLock { $0.append(id) }
                                 })
        let box = Unmanaged.passRetained(conn as AnyObject).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let c = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! NbdConnection
            c.run()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<AnyObject>.fromOpaque(box).release()
            returnQueueID(qid)
            liveClients.withLock { $0 -= 1 }
            log("client \(id) (\(peer)) refused: cannot start a thread (\(String(cString: strerror(rc))))")
            Glibc.close(fd)
            return
        }
        threads[id] = tid
    }
}

/// Turns the server counters into one `--stats` line per interval.
final class NbdStatsReporter {
    let stats: NbdStats
    let intervalNs: UInt64
    var last: UInt64
    var lastReads: UInt64 = 0, lastWrites: UInt64 = 0, lastOthers: UInt64 = 0
    var lastReadBytes: UInt64 = 0, lastWriteBytes: UInt64 = 0, lastLatency: UInt64 = 0

    init(stats: NbdStats, interval: Double) {
        self.stats = stats
        self.intervalNs = UInt64(max(0.1, interval) * 1e9)
        self.last = monotonicNanos()
    }

    func millisecondsToNext() -> Int {
        let now = monotonicNanos()
        let due = last + intervalNs
        return due <= now ? 0 : Int((due - now) / 1_000_000) + 1
    }

    /// A line when an interval has passed, else nil.
    func tick() -> String? {
        let now = monotonicNanos()
        guard now >= last + intervalNs else { return nil }
        let secs = Double(now - last) / 1e9
        let r = stats.reads.load(ordering: .relaxed), w = stats.writes.load(ordering: .relaxed), o = stats.others.load(ordering: .relaxed)
        let rb = stats.readBytes.load(ordering: .relaxed), wb = stats.writeBytes.load(ordering: .relaxed)
        let lat = stats.latencyNs.load(ordering: .relaxed)
        let n = (r - lastReads) + (w - lastWrites) + (o - lastOthers)
        let avgUs = n > 0 ? Double(lat - lastLatency) / Double(n) / 1000 : 0
        func f(_ v: Double) -> String { String(Int(v.rounded())) }
        let line = "stats: \(stats.clients.load(ordering: .relaxed)) clients, read \(f(Double(r - lastReads) / secs)) IOPS \(f(Double(rb - lastReadBytes) / secs / 1048576)) MiB/s, write \(f(Double(w - lastWrites) / secs)) IOPS \(f(Double(wb - lastWriteBytes) / secs / 1048576)) MiB/s, other \(f(Double(o - lastOthers) / secs))/s, mean latency \(f(avgUs)) us, errors \(stats.errors.load(ordering: .relaxed))"
        last = now
        lastReads = r; lastWrites = w; lastOthers = o; lastReadBytes = rb; lastWriteBytes = wb; lastLatency = lat
        return line
    }
}

import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// Reissues a trace's guest requests on a disk, with the original timing or as fast as possible.
///
/// Requests go through one queue in submission order. A request that overlaps one still in
/// flight waits for it (as in the traced run, where overlapping requests were serialised),
/// so replaying onto a copy of the starting image reproduces the final image. With the
/// original timing each request is submitted no earlier than its recorded offset from the start.
package struct Replayer {
    /// The disk to replay onto (writable when the trace writes).
    public let disk: any DiskFile
    /// Keep the recorded timing (false: as fast as possible).
    public var timed: Bool
    /// Requests in flight at most.
    public var depth: Int
    /// The engine of the replay queue.
    public var engine: EngineKind
    /// Receives the replay queue's events.
    public var eventSink: (any IoEventSink)?

    /// Creates a replayer.
    public init(disk: any DiskFile, timed: Bool = true, depth: Int = 32, engine: EngineKind = .auto, eventSink: (any IoEventSink)? = nil) {
        self.disk = disk
        self.timed = timed
        self.depth = max(1, depth)
        self.engine = engine
        self.eventSink = eventSink
    }

    /// What a replay did.
    public struct Summary: Sendable {
        /// Requests replayed.
        public var requests = 0
        /// Bytes written (trims excluded).
        public var bytesWritten: UInt64 = 0
        /// Bytes read.
        public var bytesRead: UInt64 = 0
        /// Wall time, nanoseconds.
        public var elapsedNs: UInt64 = 0
    }

    /// Replays `requests` (in the order given); throws the first failed request's error.
    public func replay(_ requests: [TraceRequest]) throws(BlockError) -> Summary {
        if !disk.isWritable, let w = requests.first(where: { $0.op != .read }) {
            throw BlockError(.readOnly, "the trace modifies the image (\(w.op) at \(hex(w.offset))) but the image is open read-only", path: disk.path)
        }
        let maxLen = Int(requests.map { $0.length }.max() ?? 4096)
        let queue = try disk.makeQueue(QueueOptions(depth: depth, queueID: 0, engine: engine, eventSink: eventSink))
        defer { queue.close() }
        let buffers = (0..<depth).map { _ in AlignedBuffer(count: max(maxLen, 512)) }
        var free = Array((0..<depth).reversed())
        var inFlightReq = [TraceRequest?](repeating: nil, count: depth)
        var inFlight = 0
        var next = 0
        var summary = Summary()
        var failure: BlockError?
        let start = monotonicNanos()

        func overlaps(_ r: TraceRequest) -> Bool {
            if r.op == .fsync { return inFlight > 0 }
            for case let o? in inFlightReq {
                if o.op == .fsync { return true }
                if o.offset < r.offset + r.length && r.offset < o.offset + o.length { return true }
            }
            return false
        }

        while (next < requests.count && failure == nil) || inFlight > 0 {
            var issued = 0
            while failure == nil, next < requests.count, !free.isEmpty {
                let r = requests[next]
                if overlaps(r) { break }
                if timed {
                    let due = start + r.time
                    let now = monotonicNanos()
                    if due > now {
                        if inFlight > 0 && issued == 0 && due - now > 200_000 { break }
                        if issued > 0 { break }
                        usleep(UInt32(min((due - now) / 1000, 1_000_000)))
                    }
                }
                let s = free.removeLast()
                inFlightReq[s] = r
                inFlight += 1
                next += 1
                issued += 1
                let buf = UnsafeMutableRawBufferPointer(rebasing: buffers[s].bytes[0..<Int(r.length)])
                switch r.op {
                case .read: try queue.read(at: r.offset, into: buf, userData: UInt64(s))
                case .write:
                    r.fill.fill(buf, offset: r.offset)
                    try queue.write(at: r.offset, from: UnsafeRawBufferPointer(buf), userData: UInt64(s))
                case .trim: try queue.discard(at: r.offset, length: r.length, userData: UInt64(s))
                case .fsync: try queue.fsync(userData: UInt64(s))
                }
            }
            if issued > 0 { try queue.submit() }
            if inFlight == 0 { continue }
            var got = false
            while let c = queue.nextCompletion() {
                got = true
                let s = Int(c.userData)
                let r = inFlightReq[s]!
                inFlightReq[s] = nil
                free.append(s)
                inFlight -= 1
                if let e = c.error { if failure == nil { failure = e.withGuestOffset(r.offset) }; continue }
                summary.requests += 1
                if r.op == .write { summary.bytesWritten += r.length }
                if r.op == .read { summary.bytesRead += r.length }
            }
            if !got { try queue.waitForCompletion() }
        }
        if let failure { throw failure }
        summary.elapsedNs = monotonicNanos() - start
        return summary
    }
}

import Synchronization

/// One guest request a queue has accepted and not yet handed back: what the In-flight view
/// lists. A value copied out of the registry under its lock, so a snapshot is consistent.
public struct OutstandingRequest: Sendable, Equatable {
    /// The queue that holds it (its `queueID`).
    public var queue: Int
    /// The tag the request was queued with (its id everywhere: events, trace, views).
    public var userData: UInt64
    /// What the guest asked for.
    public var op: GuestOp
    /// Guest offset in bytes (0 for fsync).
    public var offset: UInt64
    /// Guest length in bytes (0 for fsync).
    public var length: UInt64
    /// When the queue accepted it (monotonic nanoseconds).
    public var acceptedNs: UInt64

    /// Creates a record (queues make these; tests and other hosts may too).
    public init(queue: Int, userData: UInt64, op: GuestOp, offset: UInt64, length: UInt64, acceptedNs: UInt64) {
        self.queue = queue
        self.userData = userData
        self.op = op
        self.offset = offset
        self.length = length
        self.acceptedNs = acceptedNs
    }
}

/// The exact set of guest requests every tracked queue holds, for views that must show what
/// the engine holds rather than what a lossy event stream suggests.
///
/// Each ``TrackedQueue`` records a request when it is queued and drops it when
/// ``AsyncIo/nextCompletion()`` hands it back, under one mutex per queue; ``snapshot()``
/// copies every queue's set. The count can never exceed what the queues accept (their depth
/// and backlog), and it is 0 when the engine is idle, whatever events were dropped.
public final class InFlightRegistry: Sendable {
    /// One queue's outstanding requests, keyed by tag.
    final class Table: Sendable {
        let queue: Int
        let entries = Mutex<[UInt64: OutstandingRequest]>([:])
        init(queue: Int) { self.queue = queue }
    }

    private let tables = Mutex<[ObjectIdentifier: Table]>([:])

    /// Creates an empty registry.
    public init() {}

    func register(_ t: Table) { tables.withLock { $0[ObjectIdentifier(t)] = t } }
    func unregister(_ t: Table) { _ = tables.withLock { $0.removeValue(forKey: ObjectIdentifier(t)) } }

    /// Every outstanding request of every tracked queue, oldest first.
    public func snapshot() -> [OutstandingRequest] {
        let ts = tables.withLock { Array($0.values) }
        var out: [OutstandingRequest] = []
        for t in ts { t.entries.withLock { out.append(contentsOf: $0.values) } }
        return out.sorted { ($0.acceptedNs, $0.queue, $0.userData) < ($1.acceptedNs, $1.queue, $1.userData) }
    }

    /// How many requests the tracked queues hold now.
    public var count: Int {
        let ts = tables.withLock { Array($0.values) }
        return ts.reduce(0) { n, t in n + t.entries.withLock { $0.count } }
    }
}

/// An ``AsyncIo`` queue that records what it holds in an ``InFlightRegistry``: every call is
/// passed to the wrapped queue; a request enters the registry when it is queued and leaves
/// when its completion is returned. Owned by one thread, like the queue it wraps.
public final class TrackedQueue: AsyncIo {
    /// The queue doing the work.
    public let inner: any AsyncIo
    private let table: InFlightRegistry.Table
    private let registry: InFlightRegistry

    /// Wraps `inner` (whose queue number is `queue`) and registers it with `registry` until ``close()``.
    public init(_ inner: any AsyncIo, queue: Int, registry: InFlightRegistry) {
        self.inner = inner
        self.registry = registry
        table = InFlightRegistry.Table(queue: queue)
        registry.register(table)
    }

    private func accept(_ userData: UInt64, _ op: GuestOp, _ offset: UInt64, _ length: UInt64) {
        let r = OutstandingRequest(queue: table.queue, userData: userData, op: op, offset: offset, length: length, acceptedNs: monotonicNanos())
        table.entries.withLock { $0[userData] = r }
    }

    /// Runs `body` (which queues the request) after recording it; a request the queue refuses is dropped again.
    private func queued(_ userData: UInt64, _ op: GuestOp, _ offset: UInt64, _ length: UInt64,
                        _ body: () throws(BlockError) -> Void) throws(BlockError) {
        accept(userData, op, offset, length)
        do throws(BlockError) { try body() } catch let e {
            _ = table.entries.withLock { $0.removeValue(forKey: userData) }
            throw e
        }
    }

    /// Queues a guest read (recorded as outstanding).
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) throws(BlockError) {
        try queued(userData, .read, offset, UInt64(buffer.count)) { () throws(BlockError) in try inner.read(at: offset, into: buffer, userData: userData) }
    }

    /// Queues a guest write (recorded as outstanding).
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, userData: UInt64) throws(BlockError) {
        try queued(userData, .write, offset, UInt64(buffer.count)) { () throws(BlockError) in try inner.write(at: offset, from: buffer, userData: userData) }
    }

    /// Queues write-zeroes (recorded as outstanding).
    public func writeZeroes(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        try queued(userData, .zero, offset, length) { () throws(BlockError) in try inner.writeZeroes(at: offset, length: length, userData: userData) }
    }

    /// Queues a discard (recorded as outstanding).
    public func discard(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        try queued(userData, .discard, offset, length) { () throws(BlockError) in try inner.discard(at: offset, length: length, userData: userData) }
    }

    /// Queues a flush (recorded as outstanding).
    public func fsync(userData: UInt64) throws(BlockError) {
        try queued(userData, .fsync, 0, 0) { () throws(BlockError) in try inner.fsync(userData: userData) }
    }

    /// Submits the wrapped queue's entries.
    @discardableResult
    public func submit() throws(BlockError) -> Int { try inner.submit() }

    /// The next completion; its request leaves the registry.
    public func nextCompletion() -> IoCompletion? {
        guard let c = inner.nextCompletion() else { return nil }
        _ = table.entries.withLock { $0.removeValue(forKey: c.userData) }
        return c
    }

    /// Blocks as the wrapped queue does.
    public func waitForCompletion() throws(BlockError) { try inner.waitForCompletion() }

    /// The wrapped queue's count of accepted requests not yet returned.
    public var inFlight: Int { inner.inFlight }

    /// The wrapped queue's eventfd.
    public var eventFD: Int32 { inner.eventFD }

    /// Closes the wrapped queue and leaves the registry (anything still recorded goes with it).
    public func close() {
        inner.close()
        registry.unregister(table)
    }
}

extension QueueOptions {
    /// Wraps `queue` in a ``TrackedQueue`` when these options name a registry; returns it unchanged otherwise.
    public func tracking(_ queue: any AsyncIo) -> any AsyncIo {
        guard let registry = inFlightRegistry else { return queue }
        return TrackedQueue(queue, queue: queueID, registry: registry)
    }
}

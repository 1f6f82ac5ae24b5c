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
    /// How many sub-operations (host ops or inline steps) the request became: 1 until the
    /// queue splits it (a ``PendingIo`` announced with more), so it never exceeds the
    /// request's real split.
    public var subOps: Int

    /// Creates a record (queues make these; tests and other hosts may too).
    public init(queue: Int, userData: UInt64, op: GuestOp, offset: UInt64, length: UInt64, acceptedNs: UInt64, subOps: Int = 1) {
        self.queue = queue
        self.subOps = subOps
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
/// Every queue made with ``QueueOptions/inFlightRegistry`` set joins it: its ``QueueCore``
/// records a request when it is accepted and drops it when ``AsyncIo/nextCompletion()``
/// hands it back, under one mutex per queue; ``snapshot()`` copies every queue's set (each
/// queue's set is consistent; queues are copied one after another). The count can never exceed what the queues accept (their depth
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

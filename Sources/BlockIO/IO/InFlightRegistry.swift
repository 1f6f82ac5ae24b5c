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
    /// The queue's name (``QueueStatus/name``: `nbd 1 unix`, `job w #0`, `prompt`), filled
    /// in by ``InFlightRegistry/snapshot()``.
    public var client: String?
    /// The client's own tag of the request (the NBD cookie) when a front end queued it.
    public var clientTag: UInt64?
    /// When the front end read the request from its client (monotonic ns), or 0.
    public var receivedNs: UInt64 = 0
    /// When the queue handed the completion back to a front end that has not sent the reply
    /// yet (monotonic ns); 0 while the engine still works on it. Only a front end's requests
    /// stay listed past the hand-back.
    public var handedBackNs: UInt64 = 0

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
/// the engine holds rather than what a lossy event stream suggests, and the exact completion
/// figures of every queue that joined it (``queues()``).
///
/// Every queue made with ``QueueOptions/inFlightRegistry`` set joins it: its ``QueueCore``
/// records a request when it is accepted and drops it when ``AsyncIo/nextCompletion()``
/// hands it back (a front end's request when its reply is sent: ``FrontEndQueue``), and counts that completion in the queue's ``QueueFigures``, under one
/// mutex per queue; ``snapshot()`` copies every queue's set (each queue's set is consistent;
/// queues are copied one after another). The count can never exceed what the queues accept
/// (their depth and backlog), and it is 0 when the engine is idle, whatever events were dropped.
/// A closed queue's figures stay (the newest ``retainedClosed`` one by one, older ones
/// folded into one row), so totals never go back.
public final class InFlightRegistry: Sendable {
    /// Closed queues kept one by one; older ones are folded into one row.
    public static let retainedClosed = 64

    /// One queue's outstanding requests, keyed by tag, and its figures.
    package final class Table: Sendable {
        let queue: Int
        let serial: Int
        let name: String
        let frontEnd: FrontEndQueue?
        let state = Mutex(State())
        init(queue: Int, serial: Int, name: String, frontEnd: FrontEndQueue?) {
            self.queue = queue
            self.serial = serial
            self.name = name
            self.frontEnd = frontEnd
        }

        /// What the table's lock guards.
        struct State {
            var entries: [UInt64: OutstandingRequest] = [:]
            /// Further acceptances under a tag already held (a front end that splits one
            /// client request into several engine requests under one tag).
            var copies: [UInt64: Int] = [:]
            var figures = QueueFigures()
            /// Whether a front end feeds the queue: its requests stay until it replies.
            var served = false
            /// The most requests held at once since ``InFlightRegistry/snapshotWithPeak()``
            /// last looked.
            var peak = 0

            mutating func insert(_ r: OutstandingRequest) {
                // A tag handed back and queued again is the request's next step: the new
                // entry replaces the old one. (A FUA flush is not queued again: the queue
                // runs it inside the request, QueueCore.)
                if let old = entries.updateValue(r, forKey: r.userData), old.handedBackNs == 0 {
                    entries[r.userData] = old
                    copies[r.userData, default: 0] += 1
                }
                if entries.count > peak { peak = entries.count }
            }

            mutating func finish(_ userData: UInt64, bytes: Int, failed: Bool, now: UInt64) {
                let r: OutstandingRequest?
                if !copies.isEmpty, let n = copies[userData] {
                    copies[userData] = n > 1 ? n - 1 : nil
                    r = entries[userData]
                } else if served {
                    entries[userData]?.handedBackNs = now
                    r = entries[userData]
                } else {
                    r = entries.removeValue(forKey: userData)
                }
                figures.record(r?.op, bytes: bytes, failed: failed, latencyNs: r.map { now > $0.acceptedNs ? now - $0.acceptedNs : 0 } ?? 0)
            }
        }

        func status(open: Bool) -> QueueStatus {
            let f = state.withLock { $0.figures }
            return QueueStatus(queue: queue, serial: serial, name: name, clientTagName: frontEnd?.tagName, open: open, figures: f, ring: frontEnd?.ring)
        }
    }

    private struct Tables {
        var open: [ObjectIdentifier: Table] = [:]
        var closed: [QueueStatus] = []
        var folded: QueueStatus?
        var nextSerial = 1
    }
    private let tables = Mutex(Tables())

    /// Creates an empty registry.
    public init() {}

    /// Makes and registers the table of a queue made with `options`.
    package func join(_ options: QueueOptions) -> Table {
        tables.withLock { ts in
            let name = options.frontEnd?.client ?? options.label ?? "queue \(options.queueID)"
            let t = Table(queue: options.queueID, serial: ts.nextSerial, name: name, frontEnd: options.frontEnd)
            if let fe = options.frontEnd {
                t.state.withLock { $0.served = true }
                fe.attach(t)
            }
            ts.nextSerial += 1
            ts.open[ObjectIdentifier(t)] = t
            return t
        }
    }

    /// Removes a queue's table, keeping its figures (a second call does nothing).
    package func leave(_ t: Table) {
        let last = t.status(open: false)
        tables.withLock { ts in
            guard ts.open.removeValue(forKey: ObjectIdentifier(t)) != nil else { return }
            ts.closed.append(last)
            if ts.closed.count > Self.retainedClosed {
                let old = ts.closed.removeFirst()
                var f = ts.folded ?? QueueStatus(queue: -1, serial: -1, name: "earlier queues", clientTagName: nil, open: false, figures: QueueFigures())
                f.figures.merge(old.figures)
                ts.folded = f
            }
        }
    }

    /// Every outstanding request of every tracked queue, oldest first.
    public func snapshot() -> [OutstandingRequest] {
        let ts = tables.withLock { Array($0.open.values) }
        var out: [OutstandingRequest] = []
        for t in ts {
            let start = out.count
            t.state.withLock { out.append(contentsOf: $0.entries.values) }
            for i in start..<out.count { out[i].client = t.name }
        }
        return out.sorted { ($0.acceptedNs, $0.queue, $0.userData) < ($1.acceptedNs, $1.queue, $1.userData) }
    }

    /// ``snapshot()``, and the most requests each queue held at once since the previous
    /// call, summed over the queues (an upper bound of the total's peak when several queues
    /// run): a request that came and went between two looks still counts.
    public func snapshotWithPeak() -> (requests: [OutstandingRequest], peak: Int) {
        let ts = tables.withLock { Array($0.open.values) }
        var out: [OutstandingRequest] = []
        var peak = 0
        for t in ts {
            let start = out.count
            t.state.withLock { st in
                out.append(contentsOf: st.entries.values)
                peak += max(st.peak, st.entries.count)
                st.peak = st.entries.count
            }
            for i in start..<out.count { out[i].client = t.name }
        }
        out.sort { ($0.acceptedNs, $0.queue, $0.userData) < ($1.acceptedNs, $1.queue, $1.userData) }
        return (out, peak)
    }

    /// How many requests the tracked queues hold now.
    public var count: Int {
        let ts = tables.withLock { Array($0.open.values) }
        return ts.reduce(0) { n, t in n + t.state.withLock { $0.entries.count } }
    }

    /// Every queue that joined this registry with its exact figures, in the order they
    /// joined (the folded row of the oldest closed queues first, when there is one).
    public func queues() -> [QueueStatus] {
        let (open, closed, folded) = tables.withLock { ($0.open.values.map { $0 }, $0.closed, $0.folded) }
        var out = (folded.map { [$0] } ?? []) + closed
        out += open.map { $0.status(open: true) }
        return out.sorted { $0.serial < $1.serial }
    }
}

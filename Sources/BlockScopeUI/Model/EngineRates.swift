import BlockCore
import BlockEngine

/// One job queue's rates from the engine's own counters (exact: every completion counts,
/// unlike the event stream, which drops events under load).
public struct QueueRateRow: Sendable {
    /// The queue ID (as in events and the In-flight view).
    public var queue: Int
    /// The job it runs.
    public var job: String
    /// Completed requests and bytes so far: reads, and writes (trims included in requests).
    public var reads: UInt64, writes: UInt64, readBytes: UInt64, writeBytes: UInt64
    /// Requests and bytes per second over the last second (wall clock).
    public var iopsLastSecond: Double, bandwidthLastSecond: Double
    /// Requests and bytes per second over the whole job (its running clock: pauses left out).
    public var iopsWhole: Double, bandwidthWhole: Double
}

/// Rates per queue and direction from a running ``Workload``'s counters, sampled once a
/// frame: the last second from the sample about a second old, the whole job from the
/// totals and the workload's running clock. Kept after the job ends: the totals and the
/// whole-job rates as they ended, the last second's rates falling to zero (``advance(now:)``).
public final class EngineRates {
    private var history: [(time: UInt64, queues: [QueueSnapshot])] = []
    /// The last sample taken, for ``advance(now:)``.
    private var last: WorkloadSnapshot?
    /// The rows as of the last ``update(_:now:)``, by queue.
    public private(set) var rows: [QueueRateRow] = []
    /// The whole job's running time in ns as of the last update.
    public private(set) var elapsedNs: UInt64 = 0

    /// Creates an empty tracker.
    public init() {}

    /// Forgets everything (a new job started).
    public func reset() { history.removeAll(); rows.removeAll(); elapsedNs = 0; last = nil }

    /// Moves the clock on with no new completions (the job ended): the last sample's counts
    /// are taken again at `now`, so the "last 1 s" rates fall to zero one second after the
    /// job's last completion; the totals and the whole-job rates stay as they were.
    public func advance(now: UInt64 = monotonicNanos()) {
        guard let last, let newest = history.last, now > newest.time else { return }
        update(last, now: now)
    }

    /// Takes a sample of the workload's counters.
    public func update(_ snap: WorkloadSnapshot, now: UInt64 = monotonicNanos()) {
        last = snap
        history.append((now, snap.queues))
        // Keep about 1.5 s of samples; the reference is the newest at least 1 s old.
        while history.count > 2, now - history[1].time >= 1_000_000_000 { history.removeFirst() }
        let ref = history.first!
        let dt = Double(max(now - ref.time, 1)) / 1e9
        let whole = Double(max(snap.elapsedNs, 1)) / 1e9
        elapsedNs = snap.elapsedNs
        rows = snap.queues.map { q in
            let old = ref.queues.first { $0.queueID == q.queueID }
            let ops = q.readIos + q.writeIos + q.trimIos + q.syncIos
            let oldOps = old.map { $0.readIos + $0.writeIos + $0.trimIos + $0.syncIos } ?? 0
            let bytes = q.readBytes + q.writeBytes, oldBytes = old.map { $0.readBytes + $0.writeBytes } ?? 0
            let recentOK = ref.time < now
            return QueueRateRow(queue: q.queueID, job: q.jobName, reads: q.readIos, writes: q.writeIos + q.trimIos,
                                readBytes: q.readBytes, writeBytes: q.writeBytes,
                                iopsLastSecond: recentOK ? Double(ops &- oldOps) / dt : 0,
                                bandwidthLastSecond: recentOK ? Double(bytes &- oldBytes) / dt : 0,
                                iopsWhole: Double(ops) / whole, bandwidthWhole: Double(bytes) / whole)
        }
    }

    /// Requests and bytes per second of one direction over `window`, all queues together.
    public func rate(_ dir: Direction, _ window: StatsWindow) -> (iops: Double, bandwidth: Double)? {
        guard let last = history.last, let ref = history.first else { return nil }
        func pick(_ q: QueueSnapshot) -> (UInt64, UInt64) {
            switch dir {
            case .read: return (q.readIos, q.readBytes)
            case .write: return (q.writeIos + q.trimIos, q.writeBytes)
            case .sync: return (q.syncIos, 0)
            }
        }
        let total = last.queues.reduce((UInt64(0), UInt64(0))) { let p = pick($1); return ($0.0 + p.0, $0.1 + p.1) }
        switch window {
        case .whole:
            let secs = Double(max(elapsedNs, 1)) / 1e9
            return (Double(total.0) / secs, Double(total.1) / secs)
        case .lastSecond:
            let then = ref.queues.reduce((UInt64(0), UInt64(0))) { let p = pick($1); return ($0.0 + p.0, $0.1 + p.1) }
            let dt = Double(max(last.time - ref.time, 1)) / 1e9
            return last.time == ref.time ? (0, 0) : (Double(total.0 &- then.0) / dt, Double(total.1 &- then.1) / dt)
        }
    }
}

import BlockCore

/// One queue's figures over a window, from the in-flight registry's exact counters.
package struct QueueWindowRow: Sendable {
    /// The queue as the registry names it (`nbd 1 unix`, `job w.fio #0`, `prompt`).
    package var name: String
    /// Its queue ID.
    package var queue: Int
    /// Whether it is still open.
    package var open: Bool
    /// Whether a front end feeds it (then ``figures`` has end-to-end latencies).
    package var served: Bool
    /// The completions inside the window (counts, bytes, engine and end-to-end latencies).
    package var figures: QueueFigures
    /// Requests and bytes (read + write) per second over the window.
    package var iops: Double, bandwidth: Double
}

/// Rates and counts per queue and window from the registry's figures (``InFlightRegistry/queues()``),
/// sampled once a frame: "last 1 s" against the sample about a second old, "whole job"
/// against the sample taken when the window was last reset (a job started; else the
/// session's start), its clock running from the last sample before the window's first
/// completion to the first sample after its latest one (an idle TUI waiting for a client, or
/// after it, does not dilute the rate). Every completion counts, whatever the event stream dropped.
package final class QueueRates {
    private var history: [(time: UInt64, figures: [Int: QueueFigures])] = []
    private var wholeStart: UInt64 = 0
    private var lastActive: UInt64 = 0
    private var wholeBase: [Int: QueueFigures] = [:]
    /// Every queue as of the last update, in the order they joined.
    package private(set) var queues: [QueueStatus] = []
    /// When the last update was taken (monotonic ns).
    package private(set) var lastUpdate: UInt64 = 0

    /// Creates an empty tracker; the whole window starts at the first update.
    package init() {}

    /// What the open queue `queue`'s front end calls its per-request tag (`cookie`), if any.
    package func tagName(queue: Int) -> String? { queues.last { $0.open && $0.queue == queue }?.clientTagName }

    /// Requests completed on every queue since the registry was made (exact).
    package var completed: UInt64 { queues.reduce(0) { $0 &+ $1.figures.completed } }

    /// Takes a sample of the registry's queues at `now`.
    package func update(_ qs: [QueueStatus], now: UInt64 = monotonicNanos()) {
        queues = qs
        lastUpdate = now
        var byQueue: [Int: QueueFigures] = [:]
        for q in qs { byQueue[q.serial] = q.figures }
        let before = history.last.map { $0.figures.values.reduce(UInt64(0)) { $0 &+ $1.completed } } ?? 0
        if wholeStart == 0 {
            let base = wholeBase.values.reduce(UInt64(0)) { $0 &+ $1.completed }
            if completed > base { wholeStart = history.last?.time ?? now }
        }
        if completed > before { lastActive = now }
        history.append((now, byQueue))
        while history.count > 2, now - history[1].time >= 1_000_000_000 { history.removeFirst() }
        var rings: [Int: FrontEndQueue.Ring] = [:]
        for q in qs { if let r = q.ring { rings[q.serial] = r } }
        ringHistory.append((now, rings))
        while ringHistory.count > 2, now - ringHistory[1].time >= 1_000_000_000 { ringHistory.removeFirst() }
    }

    private var ringHistory: [(time: UInt64, rings: [Int: FrontEndQueue.Ring])] = []

    /// One virtqueue as its server last published it, with kicks, calls and suppressed calls
    /// per second over the last second (nil until two samples a moment apart exist).
    package struct VirtqueueRow: Sendable {
        /// The queue's name (`vhost vq0`).
        package var name: String
        /// Whether the queue is still open.
        package var open: Bool
        /// The ring state.
        package var ring: FrontEndQueue.Ring
        /// Kicks, calls, suppressed calls and chains taken past avail_event per second.
        package var perSecond: (kicks: Double, calls: Double, suppressed: Double, pastAvailEvent: Double)?
    }

    /// The virtqueues among the queues (vhost-user front ends), in the registry's order.
    package func virtqueues() -> [VirtqueueRow] {
        guard let last = ringHistory.last, let first = ringHistory.first else { return [] }
        let secs = Double(last.time &- first.time) / 1e9
        return queues.compactMap { q in
            guard let r = q.ring else { return nil }
            var rate: (Double, Double, Double, Double)? = nil
            if secs > 0.05, let b = first.rings[q.serial] {
                rate = (Double(r.kicks &- b.kicks) / secs, Double(r.calls &- b.calls) / secs, Double(r.suppressed &- b.suppressed) / secs,
                        Double(r.pastAvailEvent &- b.pastAvailEvent) / secs)
            }
            return VirtqueueRow(name: q.name, open: q.open, ring: r, perSecond: rate)
        }
    }

    /// Starts the whole window afresh at `now` (a job started): its figures count from here.
    package func resetWhole(now: UInt64 = monotonicNanos()) {
        wholeStart = 0
        lastActive = 0
        wholeBase = history.last?.figures ?? [:]
    }

    /// The whole window's running time: from its start to its latest completion's sample.
    private var wholeSpan: UInt64 { wholeStart > 0 && lastActive > wholeStart ? lastActive - wholeStart : 0 }

    /// The figures of every queue over `window`; queues with no completion inside it are
    /// left out, except open ones.
    package func rows(_ window: StatsWindow) -> [QueueWindowRow] {
        guard let last = history.last else { return [] }
        let base: [Int: QueueFigures], span: UInt64
        switch window {
        case .lastSecond:
            let ref = history.first!
            base = ref.figures
            span = last.time - ref.time
        case .whole:
            base = wholeBase
            span = wholeSpan
        }
        let secs = Double(max(span, 1)) / 1e9
        return queues.compactMap { q in
            let f = q.figures.since(base[q.serial])
            if f.completed == 0 && !q.open { return nil }
            let valid = span > 0
            return QueueWindowRow(name: q.name, queue: q.queue, open: q.open, served: q.clientTagName != nil, figures: f,
                                  iops: valid ? Double(f.completed) / secs : 0,
                                  bandwidth: valid ? Double(f.readBytes &+ f.writeBytes) / secs : 0)
        }
    }

    /// Requests, bytes per second and completions of one direction over `window`, all queues together.
    package func rate(_ dirs: Set<Direction>, _ window: StatsWindow) -> (iops: Double, bandwidth: Double, count: UInt64) {
        let rs = rows(window)
        guard let last = history.last else { return (0, 0, 0) }
        let span = window == .whole ? wholeSpan : last.time - history.first!.time
        var n: UInt64 = 0, b: UInt64 = 0
        for r in rs {
            let f = r.figures
            if dirs.contains(.read) { n &+= f.reads; b &+= f.readBytes }
            if dirs.contains(.write) { n &+= f.writeOps; b &+= f.writeBytes }
            if dirs.contains(.sync) { n &+= f.flushes }
        }
        guard span > 0 else { return (0, 0, n) }
        let secs = Double(span) / 1e9
        return (Double(n) / secs, Double(b) / secs, n)
    }
}

extension QueueFigures {
    /// The completions counted since `earlier` (nil: all of them).
    func since(_ earlier: QueueFigures?) -> QueueFigures {
        guard let e = earlier else { return self }
        var d = QueueFigures()
        d.completed = completed &- e.completed
        d.errors = errors &- e.errors
        d.reads = reads &- e.reads; d.writes = writes &- e.writes; d.flushes = flushes &- e.flushes
        d.zeroes = zeroes &- e.zeroes; d.discards = discards &- e.discards
        d.readBytes = readBytes &- e.readBytes; d.writeBytes = writeBytes &- e.writeBytes
        d.engine = engine.since(e.engine)
        d.endToEnd = endToEnd.since(e.endToEnd)
        return d
    }
}

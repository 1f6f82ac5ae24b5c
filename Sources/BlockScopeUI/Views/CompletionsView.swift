import BlockInspect
import BlockCore

/// Completions: every figure over one named window (`w` toggles "last 1 s" and "whole
/// job"). Counts, IOPS and bandwidth per direction and per queue come from the queues'
/// exact counters (``QueueRates``: jobs, the prompt and served clients alike; nothing is
/// dropped); per queue, engine latency and, for a served client, end-to-end latency (request
/// read → reply sent) from the same counters; the direction percentiles and the histogram
/// from the completion events seen; CQ drains as sparklines with their scale; after a job,
/// fio's summary line. Laid out to be read whole at 80x24.
package final class CompletionsView: TUIView {
    /// "Completions".
    package let title = "Completions"
    /// Footer keys.
    package let keys: [(String, String)] = [("w", "window"), (":", "write 0 4M"), ("space", "pause")]
    /// The window every figure is over.
    package private(set) var window: StatsWindow = .lastSecond

    /// Creates the view.
    package init() {}

    /// The direction rows: name and the directions they cover.
    static let rows: [(String, Set<Direction>)] = [("read", [.read]), ("write", [.write]), ("flush", [.sync]), ("all", [.read, .write, .sync])]

    /// Draws the window line, the direction table, the per-queue tables, the histogram and the sparklines.
    package func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        let live = app.live
        let now = monotonicNanos()
        var y = area.y
        if let j = app.jobSummary ?? app.lastJobLine { s.put(area.x, y, j, CellStyle(.ok), maxWidth: area.width); y += 1 }
        let other = StatsWindow.allCases.first { $0 != window }!
        s.heading(area.x, y, "── Window: \(window.rawValue) (w: \(other.rawValue)) · completed \(app.queueRates.completed) in all ", width: area.width); y += 1
        s.put(area.x, y, "dir       count     IOPS    bandwidth      p50      p99    p99.9      max", CellStyle(.dim)); y += 1
        var allSummary = live.latency.summary(window, [.read, .write, .sync], now: now)
        for (name, dirs) in CompletionsView.rows where y < area.maxY {
            let l = live.latency.summary(window, dirs, now: now)
            if name == "all" { allSummary = l }
            let rate = app.queueRates.rate(dirs, window)
            if rate.count == 0 && l.count == 0 && name != "all" { continue }
            let cells = [name.padded(5), String(rate.count).leftPadded(10), fixed(rate.iops, 0).leftPadded(8),
                         (formatBytes(rate.bandwidth) + "/s").leftPadded(12), d(l.p50), d(l.p99), d(l.p999), d(l.max)]
            s.put(area.x, y, cells.joined(separator: " "), CellStyle(name == "all" ? .heading : .normal), maxWidth: area.width); y += 1
        }
        s.put(area.x, y, "count, IOPS, bandwidth: exact (engine counters); p50…max: \(allSummary.count) events, \(allSummary.exact ? "exact" : "±9%")", CellStyle(.dim), maxWidth: area.width); y += 1
        if app.lostEvents > 0 { s.put(area.x, y, "\(app.lostEvents) events dropped: counts stay exact; p50…max from the rest", CellStyle(.dim), maxWidth: area.width); y += 1 }
        y = drawQueues(&s, area, y, app)
        y = drawVirtqueues(&s, area, y, app)
        y = drawHistogram(&s, area, y, allSummary)
        drawSparklines(&s, area, y, live)
    }

    private func d(_ v: UInt64?, _ width: Int = 8) -> String { (v.map(formatDuration) ?? "-").leftPadded(width) }

    /// The latency histogram of the window, one row per power of two; returns the next row.
    private func drawHistogram(_ s: inout ScreenModel, _ area: Rect, _ y0: Int, _ l: LatencySummary) -> Int {
        var y = y0
        s.heading(area.x, y, "── Latency histogram (\(window.rawValue), \(l.count) completions) ", width: area.width); y += 1
        let rows = l.octaves
        if rows.isEmpty {
            let text = "no completions in this window — run  :write 0 4M  or a job\(window == .lastSecond ? " (w shows the whole job)" : "")"
            // Wrapped at the clause when it is wider than the screen.
            let lines = text.count <= area.width - 2 ? [text] : text.components(separatedBy: " (").enumerated().map { $0.offset == 0 ? $0.element : "(" + $0.element }
            for l in lines { s.put(area.x + 2, y, l, CellStyle(.dim), maxWidth: area.width - 2); y += 1 }
            return y
        }
        let peak = max(1, rows.map(\.count).max() ?? 1)
        let room = max(1, area.maxY - y - 5)
        // The `room` adjacent rows that hold the most completions.
        var first = 0, best: UInt64 = 0
        for i in 0...max(0, rows.count - room) {
            let n = rows[i..<min(rows.count, i + room)].reduce(UInt64(0)) { $0 + UInt64($1.count) }
            if n > best { best = n; first = i }
        }
        for r in rows[first..<min(rows.count, first + room)] {
            s.put(area.x, y, ("<" + formatDuration(r.upper)).leftPadded(10), CellStyle(.dim))
            let n = Int(Double(r.count) / Double(peak) * Double(max(1, area.width - 24)))
            s.put(area.x + 11, y, String(repeating: "█", count: n), CellStyle(.bar))
            s.put(area.x + 12 + n, y, "\(r.count)", CellStyle(.dim))
            y += 1
        }
        return y
    }

    /// Completions per 100 ms and CQ batch sizes, each with its scale; returns the next row.
    @discardableResult
    private func drawSparklines(_ s: inout ScreenModel, _ area: Rect, _ y0: Int, _ live: LiveModel) -> Int {
        var y = y0
        let w = max(10, area.width - 48)
        s.heading(area.x, y, "── CQ drains (newest right) ", width: area.width); y += 1
        let ticks = Array(live.completionsPerTick.suffix(w))
        s.put(area.x, y, "completions/100ms", CellStyle(.dim))
        s.put(area.x + 19, y, sparkline(ticks, width: w).leftPadded(w), CellStyle(.bar))
        s.put(area.x + 20 + w, y, "max \(ticks.max() ?? 0) · span \(fixed(Double(ticks.count) / 10, 1)) s", CellStyle(.dim), maxWidth: area.width - 20 - w)
        y += 1
        let batches = Array(live.drainBatches.suffix(w))
        s.put(area.x, y, "batch size", CellStyle(.dim))
        s.put(area.x + 19, y, sparkline(batches, width: w).leftPadded(w), CellStyle(.bar))
        s.put(area.x + 20 + w, y, "max \(batches.max() ?? 0) · last \(batches.count) drains", CellStyle(.dim), maxWidth: area.width - 20 - w)
        y += 1
        let all = live.drainBatches
        let avg = all.isEmpty ? 0 : Double(all.reduce(0, +)) / Double(all.count)
        s.put(area.x, y, "mean batch \(fixed(avg, 1))   completion events seen \(live.completedRequests)", CellStyle(.normal), maxWidth: area.width)
        return y + 1
    }

    /// Per-queue tables from the queues' counters: counts and rates, then engine and
    /// end-to-end latencies; returns the next row.
    private func drawQueues(_ s: inout ScreenModel, _ area: Rect, _ y0: Int, _ app: AppState) -> Int {
        var y = y0
        let rows = app.queueRates.rows(window)
        guard y < area.maxY, !rows.isEmpty else { return y }
        // The name column takes the width the figures leave, less one column so a row never
        // touches the right edge (where a cut would show); a longer name (an IPv6 client,
        // "(closed)") gets a line of its own above its figures.
        let nw = max(22, area.width - 54)
        func full(_ r: QueueWindowRow) -> String { r.name + (r.open ? "" : " (closed)") }
        func name(_ r: QueueWindowRow) -> String { full(r).count > nw ? String(repeating: " ", count: nw) : full(r).padded(nw) }
        func ownLine(_ r: QueueWindowRow) {
            guard full(r).count > nw, y < area.maxY else { return }
            s.put(area.x, y, full(r), CellStyle(.normal), maxWidth: area.width); y += 1
        }
        s.heading(area.x, y, "── Per queue (\(window.rawValue); engine counters) ", width: area.width); y += 1
        s.put(area.x, y, "queue".padded(nw) + "    reads   writes flushes errors    IOPS   bandwidth", CellStyle(.dim)); y += 1
        for r in rows where y < area.maxY {
            ownLine(r)
            guard y < area.maxY else { break }
            let f = r.figures
            let line = "\(name(r)) \(String(f.reads).leftPadded(8)) \(String(f.writeOps).leftPadded(8)) \(String(f.flushes).leftPadded(7)) \(String(f.errors).leftPadded(6)) \(fixed(r.iops, 0).leftPadded(7)) \((formatBytes(r.bandwidth) + "/s").leftPadded(11))"
            s.put(area.x, y, line, CellStyle(.normal), maxWidth: area.width); y += 1
        }
        guard y < area.maxY else { return y }
        s.put(area.x, y, "latency".padded(nw) + ["eng p50", "p99", "max", "e2e p50", "p99"].map { " " + $0.leftPadded(9) }.joined(), CellStyle(.dim), maxWidth: area.width)
        y += 1
        for r in rows where y < area.maxY {
            ownLine(r)
            guard y < area.maxY else { break }
            let e = r.figures.engine, t = r.figures.endToEnd
            let cells = [e.percentile(50), e.percentile(99), e.count > 0 ? e.maxNs : nil, r.served ? t.percentile(50) : nil, r.served ? t.percentile(99) : nil]
            s.put(area.x, y, name(r) + cells.map { " " + d($0, 9) }.joined(), CellStyle(.normal), maxWidth: area.width)
            y += 1
        }
        if y < area.maxY {
            s.put(area.x, y, "eng: accepted → completion handed back · e2e: request read → reply sent", CellStyle(.dim), maxWidth: area.width)
            y += 1
        }
        return y
    }

    /// The virtqueues of a vhost-user front end (`tui --serve vhost-user:`): ring
    /// occupancy, indexes and notifications as the server publishes them; returns the next row.
    private func drawVirtqueues(_ s: inout ScreenModel, _ area: Rect, _ y0: Int, _ app: AppState) -> Int {
        var y = y0
        // Open rings only: a closed one (a guest reset, a VM gone) is history.
        let rows = app.queueRates.virtqueues().filter(\.open)
        guard y < area.maxY, !rows.isEmpty else { return y }
        s.heading(area.x, y, "── Virtqueues (rings; kicks/calls per second over the last 1 s) ", width: area.width); y += 1
        s.put(area.x, y, "queue        size avail  used taken  in ring    kicks/s   calls/s suppr/s", CellStyle(.dim), maxWidth: area.width); y += 1
        for r in rows where y < area.maxY {
            let g = r.ring, p = r.perSecond
            func rate(_ v: Double?) -> String { v.map { fixed($0, 0) } ?? "-" }
            let cells = [r.name.padded(11), String(g.size).leftPadded(5), String(g.availIndex).leftPadded(5),
                         String(g.usedIndex).leftPadded(5), String(g.chains).leftPadded(5), String(g.inFlight).leftPadded(8),
                         rate(p?.kicks).leftPadded(10), rate(p?.calls).leftPadded(9), rate(p?.suppressed).leftPadded(7)]
            s.put(area.x, y, cells.joined(separator: " "), CellStyle(.normal), maxWidth: area.width); y += 1
        }
        if y < area.maxY {
            s.put(area.x, y, "in all: \(rows.reduce(0) { $0 + $1.ring.kicks }) kicks, \(rows.reduce(0) { $0 + $1.ring.calls }) calls, \(rows.reduce(0) { $0 + $1.ring.suppressed }) calls suppressed by the driver (EVENT_IDX)", CellStyle(.dim), maxWidth: area.width)
            y += 1
        }
        return y
    }

    /// `w` switches the window.
    package func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        guard e == .char("w") else { return false }
        window = window == .lastSecond ? .whole : .lastSecond
        app.sayInView("Completions over: \(window.rawValue)", .ok)
        return true
    }
}

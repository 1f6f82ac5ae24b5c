import BlockCore

/// Completions: every figure over one named window (`w` toggles "last 1 s" and "whole
/// job"), split by direction; latency percentiles and histogram from the completion events
/// seen; rates per direction and per queue from the engine's own counters (exact); CQ
/// drains as sparklines with their scale (largest value and time span); after a job, fio's
/// summary line.
public final class CompletionsView: TUIView {
    /// "Completions".
    public let title = "Completions"
    /// Footer keys.
    public let keys: [(String, String)] = [("w", "window"), (":", "write 0 4M"), ("space", "pause")]
    /// The window every figure is over.
    public private(set) var window: StatsWindow = .lastSecond

    /// Creates the view.
    public init() {}

    /// The direction rows: name and the directions they cover.
    static let rows: [(String, Set<Direction>)] = [("read", [.read]), ("write", [.write]), ("flush", [.sync]), ("all", [.read, .write, .sync])]

    /// Draws the window line, the direction table, the histogram, the sparklines and the per-queue table.
    public func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        let live = app.live
        let now = monotonicNanos()
        var y = area.y
        if let j = app.jobSummary ?? app.lastJobLine { s.put(area.x, y, j, CellStyle(.ok), maxWidth: area.width); y += 1 }
        let other = StatsWindow.allCases.first { $0 != window }!
        s.heading(area.x, y, "── Window: \(window.rawValue) (w: \(other.rawValue)) ", width: area.width); y += 1
        // Direction table: rates from the engine's counters (a job) or the events (prompt commands).
        s.put(area.x, y, "dir         seen      IOPS    bandwidth        p50        p99      p99.9        max", CellStyle(.dim)); y += 1
        var allSummary = live.latency.summary(window, [.read, .write, .sync], now: now)
        for (name, dirs) in CompletionsView.rows where y < area.maxY {
            let l = live.latency.summary(window, dirs, now: now)
            if name == "all" { allSummary = l }
            var rate: (iops: Double, bandwidth: Double)? = nil
            if app.hasJobRates {
                var i = 0.0, b = 0.0
                for d in dirs { if let r = app.engineRates.rate(d, window) { i += r.iops; b += r.bandwidth } }
                rate = (i, b)
            }
            if l.count == 0 && (rate?.iops ?? 0) == 0 && name != "all" { continue }
            let cells = [name.padded(8), String(l.count).leftPadded(8),
                         (rate.map { fixed($0.iops, 0) } ?? "-").leftPadded(9),
                         (rate.map { formatBytes($0.bandwidth) + "/s" } ?? "-").leftPadded(12),
                         d(l.p50), d(l.p99), d(l.p999), d(l.max)]
            s.put(area.x, y, cells.joined(separator: " "), CellStyle(name == "all" ? .heading : .normal), maxWidth: area.width); y += 1
        }
        let source = app.hasJobRates ? "IOPS and bandwidth: the engine's counters (exact)" : "IOPS and bandwidth: shown for jobs (the engine's counters)"
        let lat = allSummary.exact ? "percentiles: exact, from the completion events seen" : "percentiles: histogram bounds (±9%), from the completion events seen"
        s.put(area.x, y, "\(source); \(lat)\(app.lostEvents > 0 ? "; \(app.lostEvents) events dropped" : "")", CellStyle(.dim), maxWidth: area.width); y += 1
        if app.hasJobRates {
            s.put(area.x, y, "latency here: the engine's, acceptance → completion; the job line's (fio): issue → reaped by the job thread, queueing in the CQ included", CellStyle(.dim), maxWidth: area.width)
            y += 1
        }
        y += 1
        y = drawHistogram(&s, area, y, allSummary)
        y = drawSparklines(&s, area, y + 1, live)
        drawQueues(&s, area, y + 1, app)
    }

    private func d(_ v: UInt64?) -> String { (v.map(formatDuration) ?? "-").leftPadded(10) }

    /// The latency histogram of the window, one row per power of two; returns the next row.
    private func drawHistogram(_ s: inout ScreenModel, _ area: Rect, _ y0: Int, _ l: LatencySummary) -> Int {
        var y = y0
        s.heading(area.x, y, "── Latency histogram (\(window.rawValue), \(l.count) completions) ", width: area.width); y += 1
        let rows = l.octaves
        if rows.isEmpty {
            s.put(area.x + 2, y, "no completions in this window — run  :write 0 4M  or a job\(window == .lastSecond ? " (w shows the whole job)" : "")", CellStyle(.dim))
            return y + 1
        }
        let peak = max(1, rows.map(\.count).max() ?? 1)
        let room = max(1, area.maxY - y - 10)
        for r in rows.suffix(room) {
            s.put(area.x, y, ("<" + formatDuration(r.upper)).leftPadded(10), CellStyle(.dim))
            let n = Int(Double(r.count) / Double(peak) * Double(max(1, area.width - 24)))
            s.put(area.x + 11, y, String(repeating: "█", count: n), CellStyle(.bar))
            s.put(area.x + 12 + n, y, "\(r.count)", CellStyle(.dim))
            y += 1
        }
        return y
    }

    /// Completions per 100 ms and CQ batch sizes, each with its scale; returns the next row.
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
        s.put(area.x, y, "mean batch \(fixed(avg, 1))   completed \(live.completedRequests) (events seen)", CellStyle(.normal), maxWidth: area.width)
        return y + 1
    }

    /// Per-queue rates: the job's queues from the engine's counters, the prompt's from events.
    private func drawQueues(_ s: inout ScreenModel, _ area: Rect, _ y0: Int, _ app: AppState) {
        var y = y0
        guard y < area.maxY else { return }
        s.heading(area.x, y, "── Per queue (\(window.rawValue)) ", width: area.width); y += 1
        s.put(area.x, y, "queue  job          reads     writes        IOPS    bandwidth   source", CellStyle(.dim)); y += 1
        for r in app.engineRates.rows where y < area.maxY {
            let iops = window == .whole ? r.iopsWhole : r.iopsLastSecond
            let bw = window == .whole ? r.bandwidthWhole : r.bandwidthLastSecond
            let line = "\(String(r.queue).leftPadded(5))  \(String(r.job.prefix(10)).padded(10)) \(String(r.reads).leftPadded(8)) \(String(r.writes).leftPadded(10)) \(fixed(iops, 0).leftPadded(11)) \((formatBytes(bw) + "/s").leftPadded(12))   engine counters"
            s.put(area.x, y, line, CellStyle(.normal), maxWidth: area.width); y += 1
        }
        let jobQueues = Set(app.engineRates.rows.map { Int32($0.queue) })
        for (q, r) in app.live.queues.sorted(by: { $0.key < $1.key }) where y < area.maxY && !jobQueues.contains(q) {
            let line = "\(String(q).leftPadded(5))  \("prompt".padded(10)) \("".leftPadded(8)) \(String(r.ops).leftPadded(10)) \(fixed(r.iops, 0).leftPadded(11)) \((formatBytes(r.bandwidth) + "/s").leftPadded(12))   events (last 1 s)"
            s.put(area.x, y, line, CellStyle(.normal), maxWidth: area.width); y += 1
        }
    }

    /// `w` switches the window.
    public func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        guard e == .char("w") else { return false }
        window = window == .lastSecond ? .whole : .lastSecond
        app.sayInView("Completions over: \(window.rawValue)", .ok)
        return true
    }
}

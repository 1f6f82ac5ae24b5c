import BlockCore

/// In-flight: the guest requests the engine's queues hold now, from their exact snapshot
/// (``AppState/inFlightSnapshot``), each annotated with what the event stream told of it
/// (mapping, PendingIo sub-operations, SQEs); sortable htop-style with `o`; the slowest
/// completed requests; and the explained event log (history only, and it says when it
/// dropped events).
package final class InFlightView: TUIView {
    /// "In-flight".
    package let title = "In-flight"
    /// Footer keys.
    package let keys: [(String, String)] = [("space", "pause"), ("s", "step"), ("c", "finish req"), (">", "next req"), ("o", "sort"), ("/", "filter"), ("↑↓", "scroll log")]
    /// `/` filters the request list as you type (see ``InFlightFilter``).
    package let searchHint: String? = "filter: w r f q1 0x100000-0x200000 >1ms"
    /// The live filter (`/`); Esc in the prompt clears it.
    package private(set) var filter = InFlightFilter()

    /// Sets the filter from the prompt's text (called on every key while `/` is open).
    package func setFilter(_ text: String) { filter = InFlightFilter(text) }
    private var logScroll = 0
    /// The order of the request list; `o` cycles through them.
    package enum SortKey: String, CaseIterable, Sendable {
        /// Oldest first: the longest latency so far first.
        case age
        /// Newest first.
        case newest
        /// By queue, then age.
        case queue
        /// By kind (read, write, fsync, zero, discard), then age.
        case kind
        /// By guest offset.
        case offset
    }
    /// The current order.
    package private(set) var sort: SortKey = .age

    /// Creates the view.
    package init() {}

    /// The requests in the current order.
    func ordered(_ reqs: [OutstandingRequest]) -> [OutstandingRequest] {
        switch sort {
        case .age: return reqs.sorted { ($0.acceptedNs, $0.queue) < ($1.acceptedNs, $1.queue) }
        case .newest: return reqs.sorted { ($0.acceptedNs, $0.queue) > ($1.acceptedNs, $1.queue) }
        case .queue: return reqs.sorted { ($0.queue, $0.acceptedNs) < ($1.queue, $1.acceptedNs) }
        case .kind: return reqs.sorted { ($0.op.rawValue, $0.acceptedNs) < ($1.op.rawValue, $1.acceptedNs) }
        case .offset: return reqs.sorted { ($0.offset, $0.queue) < ($1.offset, $1.queue) }
        }
    }

    /// The tree as (indent text, style) lines: every request the engine holds, in the
    /// current order, each on two lines (what it is and its age; its client, the client's
    /// tag and its mapping), with the sub-operations the events reported for it.
    package func treeLines(_ app: AppState, now: UInt64 = monotonicNanos()) -> [(String, Role)] {
        var out: [(String, Role)] = []
        let shown = filter.isActive ? app.inFlightSnapshot.filter { filter.matches($0, now: now) } : app.inFlightSnapshot
        for o in ordered(shown) {
            let age = formatDuration(now > o.acceptedNs ? now - o.acceptedNs : 0)
            let read = o.receivedNs > 0 ? " (read \(formatDuration(now > o.receivedNs ? now - o.receivedNs : 0)) ago)" : ""
            let replying = o.handedBackNs > 0 ? "  done, reply pending" : ""
            let r = app.live.inFlight[o.userData].flatMap { Int($0.queue) == o.queue ? $0 : nil }
            out.append(("\(Explain.req(o.userData))  \(o.op) \(hex(o.offset))+\(o.length)  age \(age)\(read)\(replying)", o.handedBackNs > 0 ? .ok : .inflight))
            let tag = o.clientTag.map { " \(app.queueRates.tagName(queue: o.queue) ?? "tag") \(hex($0))" } ?? ""
            out.append(("  \(o.client ?? "queue \(o.queue)")\(tag) · q\(o.queue)\(r?.mapping.map { "  → \($0)" } ?? "")", .dim))
            guard let r else { continue }
            out += Self.engineLines(r, now: now)
        }
        return out
    }

    /// A request's PendingIo trackers and SQEs as the events reported them, as tree lines
    /// under the request (the Virtqueue view shows a chain's the same way).
    static func engineLines(_ r: GuestRequestState, indent: String = "  ", now: UInt64) -> [(String, Role)] {
        var out: [(String, Role)] = []
        for (pi, p) in r.pending.enumerated() {
            let last = pi == r.pending.count - 1
            let state = p.result.map { $0 == 0 ? "done" : "failed \($0)" } ?? "waiting"
            out.append(("\(indent)\(last ? "└─" : "├─") \(Explain.req(r.request)).\(pi + 1): PendingIo of \(p.subOps) sub-op\(p.subOps == 1 ? "" : "s"), \(state)", p.result == nil ? .warning : .ok))
            if pi == 0 { out += sqeLines(r.sqes, prefix: indent + (last ? "   " : "│  "), now: now) }
        }
        if r.pending.isEmpty { out += sqeLines(r.sqes, prefix: indent, now: now) }
        return out
    }

    private static func sqeLines(_ sqes: [SqeState], prefix: String, now: UInt64) -> [(String, Role)] {
        sqes.enumerated().map { i, q in
            let branch = i == sqes.count - 1 ? "└─" : "├─"
            let state = q.result.map { $0 >= 0 ? "CQE \($0)" : "CQE error \($0)" } ?? "in kernel, age \(formatDuration(now > q.submitted ? now - q.submitted : 0))"
            return ("\(prefix)\(branch) SQE \(q.opcode) user_data \(Explain.tag(q.userData))  host \(hex(q.hostOffset))+\(q.length)  \(state)",
                    q.result == nil ? .inflight : (q.result! >= 0 ? .ok : .error))
        }
    }

    /// Draws the summary, the tree, the slowest requests and the log.
    package func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        let live = app.live
        let mode = app.stepMode ? "STEP" : app.paused ? "PAUSED" : app.busy || !app.inFlightSnapshot.isEmpty || app.inFlightPeak > 0 ? "running" : "idle"
        let shownNote = filter.isActive ? "   filter '\(filter.text)': \(app.inFlightSnapshot.filter { filter.matches($0, now: monotonicNanos()) }.count) shown" + (filter.unknown.isEmpty ? "" : " (ignored: \(filter.unknown.joined(separator: " ")))") : ""
        let replying = app.inFlightSnapshot.reduce(0) { $0 + ($1.handedBackNs > 0 ? 1 : 0) }
        let summary = "in flight \(app.inFlightSnapshot.count) (held by the engine now)   completed \(app.queueRates.completed)   engine \(mode)"
        s.put(area.x, area.y, summary, CellStyle(.heading), maxWidth: area.width)
        // A client that sends in bursts leaves nothing held at some instants: say the peak.
        var notes: [String] = []
        if app.inFlightPeak > app.inFlightSnapshot.count { notes.append("up to \(app.inFlightPeak) since the last frame") }
        if replying > 0 { notes.append("\(replying) done, reply pending") }
        notes.append("sort: \(sort == .age ? "age (latency so far)" : sort.rawValue) (o)")
        // Wrapped onto a second row when it is wider than the screen.
        var y = area.y + 1
        for line in TextWrap.lines(notes.joined(separator: " · ") + shownNote, width: area.width).prefix(2) {
            s.put(area.x, y, line, CellStyle(.dim), maxWidth: area.width); y += 1
        }
        if let j = app.jobSummary { s.put(area.x, y, j, CellStyle(.ok), maxWidth: area.width); y += 1 }
        if app.stepMode {
            // Wrapped (at most three lines): a step's words end with what matters most often
            // ("release pending (next flush)", "FAILED with ENOSPC"), which a cut line would lose.
            for line in TextWrap.lines("step: " + (app.lastStep ?? "press s to let the next event through"), width: area.width).prefix(3) {
                s.put(area.x, y, line, CellStyle(.selected), maxWidth: area.width); y += 1
            }
            if let held = app.heldEvent {
                for line in TextWrap.lines("next: " + held, width: area.width).prefix(2) {
                    s.put(area.x, y, line, CellStyle(.dim), maxWidth: area.width); y += 1
                }
            } else { y += 1 }
        }
        let tree = InFlightView.wrapped(treeLines(app), width: area.width)
        let treeHeight = max(3, (area.maxY - y) / 2 - (live.slowest.isEmpty ? 0 : 2))
        if tree.isEmpty {
            let idle = app.inFlightPeak > 0 ? "none held at this instant (up to \(app.inFlightPeak) since the last frame: a client between bursts)"
                : "nothing in flight — start a workload from the prompt, e.g.  :write 0 1M"
            for (k, line) in TextWrap.lines(idle, width: area.width - 2).prefix(2).enumerated() {
                s.put(area.x + 2, y + k, line, CellStyle(.dim), maxWidth: area.width - 2)
            }
        }
        for (i, l) in tree.prefix(treeHeight).enumerated() { s.put(area.x, y + i, l.0, CellStyle(l.1), maxWidth: area.width) }
        if tree.count > treeHeight { s.put(area.x, y + treeHeight - 1, "  … \(tree.count - treeHeight + 1) more lines".padded(area.width), CellStyle(.dim)) }
        y += treeHeight
        if !live.slowest.isEmpty {
            // As many of the slowest as fit whole: none is cut.
            var line = "slowest completed:"
            for r in live.slowest {
                let item = " \(Explain.req(r.request)) \(r.op) \(hex(r.offset))+\(r.length) q\(r.queue) \(formatDuration(r.latencyNs))"
                if line.count + item.count + 2 > area.width && !line.hasSuffix(":") { break }
                line += (line.hasSuffix(":") ? "" : " ·") + item
            }
            s.put(area.x, y, line, CellStyle(.dim), maxWidth: area.width)
            y += 2
        }
        let dropped = app.lostEvents > 0 ? "; \(app.lostEvents) dropped: gaps here, the list is exact" : ""
        s.heading(area.x, y, "── Events (newest last\(dropped)) ", width: area.width)
        y += 1
        let rows = max(0, area.maxY - y)
        logScroll = max(0, min(logScroll, max(0, live.logCount - rows)))
        // Long lines wrap (continuations indented); the newest whole lines are the ones shown.
        var log: [(String, Role)] = []
        for l in live.logTail(rows, skippingNewest: logScroll).reversed() {
            let w = InFlightView.wrapped([(l, l.hasPrefix("error") ? Role.error : .normal)], width: area.width)
            if log.count + w.count > rows { break }
            log.insert(contentsOf: w, at: 0)
        }
        for (i, l) in log.enumerated() {
            s.put(area.x, y + i, l.0, CellStyle(l.1), maxWidth: area.width)
        }
    }

    /// `lines` wrapped to `width` columns: a line wider than that goes on over following
    /// lines, indented three columns past its own indent, in its own role.
    static func wrapped(_ lines: [(String, Role)], width: Int) -> [(String, Role)] {
        lines.flatMap { line, role -> [(String, Role)] in
            guard line.count > width else { return [(line, role)] }
            let lead = String(line.prefix { $0 == " " })
            let indent = lead + "   "
            let rows = TextWrap.lines(String(line.dropFirst(lead.count)), width: max(1, width - indent.count))
            let head = lead + rows[0]
            let cont = rows.dropFirst().map { (indent + $0, role) }
            return [(head, role)] + cont
        }
    }

    /// Scrolls the log; `o` changes the order of the request list.
    package func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        switch e {
        case .up, .char("k"): logScroll += 1
        case .down, .char("j"): logScroll -= 1
        case .pageUp: logScroll += 10
        case .pageDown: logScroll -= 10
        case .end: logScroll = 0
        case let .wheel(up, _, _): logScroll += up ? 3 : -3
        case .char("o"):
            let all = SortKey.allCases
            sort = all[(all.firstIndex(of: sort)! + 1) % all.count]
            app.say("in-flight sorted by \(sort.rawValue)", .ok)
        default: return false
        }
        logScroll = max(0, logScroll)
        return true
    }

    /// `/` sets the live filter of the request list (the log is searched with `n`/`N`
    /// after a filter is set: they find the filter's text in the log).
    package func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        if filter.text != text {
            setFilter(text)
            let n = app.inFlightSnapshot.filter { filter.matches($0, now: monotonicNanos()) }.count
            return SearchOutcome("filter '\(text)': \(n) of \(app.inFlightSnapshot.count) requests" + (filter.unknown.isEmpty ? "" : "; not understood: \(filter.unknown.joined(separator: " ")) (try w r f q1 0x100000-0x200000 >1ms)"), found: filter.unknown.isEmpty)
        }
        return searchLog(text, direction, app)
    }

    /// Finds a log line containing `text`: forward (`n`) goes to older lines, up the
    /// log; backward (`N`) to newer ones; both wrap around.
    func searchLog(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        let log = app.live.log
        let t = text.lowercased()
        let current = max(0, log.count - 1 - logScroll)
        // The first search starts below the newest line, so it finds the newest match.
        let from = logScroll == 0 && direction == .forward ? log.count : current
        guard !log.isEmpty, let hit = scanWrapping(count: log.count + 1, from: from, direction == .forward ? .backward : .forward, {
            $0 < log.count && log[$0].localizedLowercase.contains(t)
        }) else { return SearchOutcome("'\(text)' not in the event log", found: false) }
        logScroll = max(0, log.count - 1 - hit.index)
        return SearchOutcome(log[hit.index], found: true, wrapped: hit.wrapped)
    }
}

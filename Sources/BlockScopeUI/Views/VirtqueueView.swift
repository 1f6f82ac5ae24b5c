import BlockCore

/// Virtqueue (shown with `tui --serve vhost-user:`): each virtqueue's split ring as its
/// server counts it (indexes, occupancy, kicks and calls, the notifications EVENT_IDX saved),
/// and the descriptor chain of every request the rings hold, each under the request id
/// In-flight, the events and step mode use, with its PendingIo and SQEs. Enter on a chain
/// opens In-flight filtered to that request.
///
/// Everything here is what the server published (``FrontEndQueue/Ring``, sampled once a
/// pump into ``QueueRates``) and what the engine's events told (``LiveModel``): the view
/// counts nothing itself.
package final class VirtqueueView: TUIView {
    /// "Virtqueue".
    package let title = "Virtqueue"
    /// Footer keys.
    package let keys: [(String, String)] = [("↑↓", "select chain"), ("enter", "request in In-flight"), ("s", "step"), ("space", "pause")]
    private var cursor = ListCursor()
    /// The chains listed at the last draw, in order (Enter opens the selected one).
    private var listed: [(queue: String, chain: VirtqChain)] = []
    private var lineTop = 0

    /// Creates the view.
    package init() {}

    /// The table's column heads, aligned with ``row(_:)``.
    static let header = "queue        size avail  used  last  ring held    kicks   /s    calls   /s  no-call   /s  no-kick"

    /// Where ``header`` splits when the screen is narrower than it: ring indexes, then
    /// notifications, each table led by the queue's name.
    static let split = 47

    /// One virtqueue's counters as a table row.
    static func row(_ r: QueueRates.VirtqueueRow) -> String {
        let g = r.ring, p = r.perSecond
        func rate(_ v: Double?) -> String { v.map { fixed($0, 0) } ?? "-" }
        let cells = [r.name.padded(11), String(g.size).leftPadded(5), String(g.availIndex).leftPadded(5), String(g.usedIndex).leftPadded(5),
                     String(g.lastAvail).leftPadded(5), String(g.availIndex &- g.usedIndex).leftPadded(5), String(g.lastAvail &- g.usedIndex).leftPadded(4),
                     String(g.kicks).leftPadded(8), rate(p?.kicks).leftPadded(4), String(g.calls).leftPadded(8), rate(p?.calls).leftPadded(4),
                     String(g.suppressed).leftPadded(8), rate(p?.suppressed).leftPadded(4),
                     (g.eventIdx ? String(g.pastAvailEvent) : "-").leftPadded(8)]
        return cells.joined(separator: " ")
    }

    /// The table as lines for `width` columns: one table when it fits, else the indexes and
    /// the notifications as two tables (80 columns).
    static func table(_ rows: [QueueRates.VirtqueueRow], width: Int) -> [String] {
        let lines = rows.map(row)
        if width >= header.count { return [header] + lines }
        func left(_ l: String) -> String { String(l.prefix(split)) }
        func right(_ l: String) -> String { String(l.prefix(12)) + String(l.dropFirst(split)) }
        return [left(header)] + lines.map(left) + [right(header)] + lines.map(right)
    }

    /// The lines of the chain list: per held chain its request line, one line per
    /// descriptor, then its PendingIo and SQEs; with the index of each chain's first line.
    func chainLines(_ app: AppState, now: UInt64 = monotonicNanos()) -> (lines: [(String, Role)], starts: [Int]) {
        var lines: [(String, Role)] = [], starts: [Int] = []
        listed = []
        for r in app.queueRates.virtqueues() where r.open {
            let q = app.queueRates.queues.first { $0.open && $0.name == r.name }?.queue
            for c in r.ring.held {
                listed.append((r.name, c))
                starts.append(lines.count)
                let held = app.inFlightSnapshot.first { $0.userData == c.userData && $0.queue == q }
                var what = held.map { "\($0.op) \(hex($0.offset))+\($0.length)  age \(formatDuration(now > $0.acceptedNs ? now - $0.acceptedNs : 0))" }
                    ?? "not in the engine (being decoded, answered at once, or its used entry is being written)"
                if let h = held, h.handedBackNs > 0 { what += "  done, used entry pending" }
                lines.append(("\(r.name) head \(c.head)  \(Explain.req(c.userData))  \(what)  \(c.segments.count) descriptor\(c.segments.count == 1 ? "" : "s")", held == nil ? .dim : .inflight))
                for (i, d) in c.segments.enumerated() {
                    let dir = d.writable ? "W device writes" : "R device reads"
                    let kind = d.isIndirectTable ? "  INDIRECT table of \(d.length / 16)" : d.inIndirectTable ? "  (in the indirect table)" : ""
                    lines.append(("    desc \(i)  gpa \(hex(d.address))  len \(d.length)  \(dir)\(kind)", .normal))
                }
                if let e = app.live.inFlight[c.userData], q.map({ Int(e.queue) == $0 }) ?? true {
                    lines += InFlightView.engineLines(e, indent: "    ", now: now)
                }
            }
        }
        return (lines, starts)
    }

    /// Draws the counters table, the step lines (in step mode) and the chains.
    package func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        var y = area.y
        let rows = app.queueRates.virtqueues().filter(\.open)
        s.heading(area.x, y, "── Virtqueues (the server's counters; /s over the last 1 s) ", width: area.width); y += 1
        if rows.isEmpty {
            for line in TextWrap.lines("no virtqueue running: start a guest on the vhost-user socket (see the user guide, tui --serve vhost-user:)", width: area.width - 2).prefix(2) {
                s.put(area.x + 2, y, line, CellStyle(.dim), maxWidth: area.width - 2); y += 1
            }
        } else {
            for l in Self.table(rows, width: area.width) where y < area.maxY {
                s.put(area.x, y, l, CellStyle(l.hasPrefix("queue ") ? .dim : .normal), maxWidth: area.width); y += 1
            }
            let legend = "last = next avail entry the device takes; ring = made available and not yet used (avail − used); held = taken by the device, not yet in the used ring (last − used); "
                + "no-call = calls the guest's used_event (EVENT_IDX) made unnecessary; no-kick = chains taken past the avail_event the device published (no kick needed)"
            // A small screen keeps its rows for the chains: the short legend (the user guide has the long one).
            let short = "ring = avail − used · held = last − used · no-call, no-kick: notifications EVENT_IDX saved"
            let text = area.width < Self.header.count || area.height < 30 ? short : legend
            for line in TextWrap.lines(text, width: area.width).prefix(3) where y < area.maxY {
                s.put(area.x, y, line, CellStyle(.dim), maxWidth: area.width); y += 1
            }
        }
        if app.stepMode && y < area.maxY {
            for line in TextWrap.lines("step: " + (app.lastStep ?? "press s to let the next event through"), width: area.width).prefix(3) where y < area.maxY {
                s.put(area.x, y, line, CellStyle(.selected), maxWidth: area.width); y += 1
            }
            if let held = app.heldEvent {
                for line in TextWrap.lines("next: " + held, width: area.width).prefix(3) where y < area.maxY {
                    s.put(area.x, y, line, CellStyle(.dim), maxWidth: area.width); y += 1
                }
            }
        }
        guard y < area.maxY else { return }
        let (lines, starts) = chainLines(app)
        s.heading(area.x, y, "── Descriptor chains held: \(starts.count) (↑↓ select, Enter: the request in In-flight) ", width: area.width); y += 1
        let visible = max(1, area.maxY - y)
        guard !starts.isEmpty else {
            s.put(area.x + 2, y, "none held at this instant", CellStyle(.dim), maxWidth: area.width - 2)
            return
        }
        cursor.clamp(count: starts.count, visible: starts.count)
        // Scroll by lines so the selected chain's first line is on screen.
        let sel = starts[cursor.selected]
        let end = cursor.selected + 1 < starts.count ? starts[cursor.selected + 1] : lines.count
        if sel < lineTop { lineTop = sel }
        if end > lineTop + visible { lineTop = min(sel, end - visible) }
        lineTop = max(0, min(lineTop, max(0, lines.count - visible)))
        let top = min(lineTop, sel)
        for (i, l) in lines[top...].prefix(visible).enumerated() {
            let line = top + i
            let selected = line >= sel && line < end
            s.put(area.x, y + i, (selected && line == sel ? "▶ " : "  ") + l.0, CellStyle(selected && line == sel ? .selected : l.1), maxWidth: area.width)
        }
    }

    /// ↑↓ select a chain; Enter opens In-flight filtered to its request.
    package func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        if e == .enter {
            guard cursor.selected < listed.count else { app.sayInView("no chain selected: none held", .dim); return true }
            let c = listed[cursor.selected].chain
            app.pendingInFlightFilter = "id=\(hex(c.userData))"
            app.requestedView = "inflight"
            return true
        }
        return cursor.handle(e, count: listed.count, visible: max(1, listed.count))
    }
}

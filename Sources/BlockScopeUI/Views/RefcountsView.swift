import BlockCore
import BlockInspect

/// Refcounts: the format's per-host-unit bookkeeping (``InspectHostUnits``: a refcount
/// table and blocks): its table, a histogram of the references the walk found, the walk's
/// verdict, and one row per host unit with leaks and over-references highlighted.
package final class RefcountsView: TUIView {
    /// "Refcounts".
    package let title = "Refcounts"
    /// Footer keys.
    package let keys: [(String, String)] = [("↑↓", "select cluster"), ("Enter", "hex of cluster")]
    /// "find" (`/leaked` finds the next leaked cluster).
    package let searchHint: String? = "find (leaked)"
    /// Host offsets: each row is a host unit.
    package let gotoSpace: AddressSpace? = .host
    private var cursor = ListCursor()
    private var visible = 10

    /// A view with the first unit selected.
    package init() {}

    /// The row of host unit `i`, as the format words it.
    func clusterRow(_ q: any ImageInspector, _ i: Int) -> (String, Role) {
        guard let u = q.hostUnits() else { return ("", .normal) }
        let c = u.row(i)
        return (c.text, c.tone.role)
    }

    private func none(_ app: AppState) -> [String] {
        ["no reference counts", "this \(app.image.format.rawValue) image keeps no per-cluster reference counts."]
    }

    /// Draws the table summary, histogram and per-unit list.
    package func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        guard let u = app.image.inspector?.hostUnits() else { s.centred(area, none(app)); return }
        var y = area.y
        s.heading(area.x, y, "── \(u.heading) ", width: area.width)
        y += 1
        for l in u.lines {
            s.put(area.x + 1, y, l.text, CellStyle(l.tone.role), maxWidth: area.width)
            y += 1
        }
        y += 1
        if let h = u.histogramHeading {
            s.heading(area.x, y, "── \(h) ", width: area.width)
            y += 1
            let peak = max(1, u.histogram.map(\.units).max() ?? 1)
            for bar in u.histogram.prefix(6) {
                s.put(area.x, y, bar.label.leftPadded(12), CellStyle(.dim))
                let n = max(1, bar.units * max(1, area.width - 30) / peak)
                s.put(area.x + 13, y, String(repeating: "█", count: n), CellStyle(bar.tone == .free ? .free : .bar))
                s.put(area.x + 14 + n, y, "\(bar.units)", CellStyle(.normal))
                y += 1
            }
            if let line = u.summary {
                let end = s.put(area.x, y, line.text, CellStyle(line.tone.role), maxWidth: area.width)
                if let st = u.status { s.put(max(area.x + 60, end + 2), y, st, CellStyle(.dim), maxWidth: max(0, area.x + area.width - max(area.x + 60, end + 2))) }
            }
            for p in u.problems {
                y += 1
                // Wrapped: the reader's error is as long as it needs to be.
                let lines = TextWrap.lines(p, width: area.width).prefix(3)
                for (k, l) in lines.enumerated() { s.put(area.x, y + k, l, CellStyle(.error), maxWidth: area.width) }
                y += lines.count - 1
            }
        } else {
            s.put(area.x, y, u.status ?? "", CellStyle(.dim), maxWidth: area.width)
        }
        y += 2
        s.heading(area.x, y, "── \(u.listHeading) ", width: area.width)
        y += 1
        visible = s.listRows(area.x, y, width: area.width, maxY: area.maxY, count: u.count, cursor: &cursor) { let c = u.row($0); return (c.text, c.tone.role) }
    }

    /// Selection and Enter (hex of the unit).
    package func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        guard let u = app.image.inspector?.hostUnits() else { return false }
        if e == .enter {
            app.pendingHex = (UInt64(cursor.selected) * u.unit, true)
            app.requestedView = "hex"
            return true
        }
        return cursor.handle(e, count: u.count, visible: visible)
    }

    /// Selects the host unit holding a host offset (clamped to the last unit).
    package func goto(_ offset: UInt64, _ app: AppState) -> Notice {
        guard let q = app.image.inspector, let u = q.hostUnits() else { return Notice(none(app)[0], .error) }
        let count = u.count
        guard count > 0 else { return Notice("no host clusters", .warning) }
        let cs = max(1, u.unit)
        let i = Int(min(offset / cs, UInt64(count - 1)))
        cursor.selected = i
        cursor.clamp(count: count, visible: visible)
        if offset / cs >= UInt64(count) {
            return Notice("host \(hex(offset)) is beyond the \(formatBytes(Double(q.hostSize))) file: clamped to the last cluster, \(i) at host \(hex(UInt64(i) * cs))", .warning)
        }
        return Notice("host \(hex(offset)) is in cluster \(i)", .ok)
    }

    /// Finds the next (or previous) unit whose use matches `text`, wrapping around: what
    /// matches is the format's (with refcounts: "leak", "over", "mismatch" find counts that differ
    /// from the walk's; otherwise a kind name such as "l2" or "data").
    package func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        guard let u = app.image.inspector?.hostUnits() else { return SearchOutcome(none(app)[0], found: false) }
        guard let match = u.matcher(text) else { return SearchOutcome(u.status ?? "the walk is not done", found: false) }
        guard let hit = scanWrapping(count: u.count, from: cursor.selected, direction, match) else {
            return SearchOutcome("no cluster matches '\(text)'", found: false)
        }
        cursor.selected = hit.index; cursor.clamp(count: u.count, visible: visible)
        return SearchOutcome(u.row(hit.index).text, found: true, wrapped: hit.wrapped)
    }
}

/// BAT: a block allocation table and the headers above it (the format's
/// ``ImageInspector/allocationSections()`` and its ``InspectTableRole/allocation`` table).
package final class BatView: TUIView {
    /// The format's name for its allocation table (``ImageInspector/tabTitle(_:)``: "BAT"),
    /// "Alloc" when it has none.
    package let title: String
    /// Footer keys.
    package let keys: [(String, String)] = [("↑↓", "select entry"), ("Enter", "hex of block")]
    /// "find state".
    package let searchHint: String? = "find state"
    private var cursor = ListCursor()
    private var visible = 10

    /// A view with the first entry selected, titled `title` (the inspector's words; nil: "Alloc").
    package init(title: String? = nil) { self.title = title ?? "Alloc" }

    private func none(_ app: AppState) -> [String] {
        ["no block allocation table", "this \(app.image.format.rawValue) image has no block allocation table."]
    }

    /// Draws the sections and the entry list.
    package func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        guard let q = app.image.inspector, let t = q.table(.allocation) else { s.centred(area, none(app)); return }
        var y = area.y
        for sec in q.allocationSections() where y < area.maxY - 4 {
            s.heading(area.x, y, "── " + sec.title + " ", width: area.width); y += 1
            y = s.rows(area.x + 1, y, InfoSection(sec).rows, labelWidth: 22, width: area.width - 1, maxY: area.maxY - 4)
        }
        s.heading(area.x, y, "── \(t.heading) ", width: area.width); y += 1
        visible = s.listRows(area.x, y, width: area.width, maxY: area.maxY, count: t.count, cursor: &cursor, squeezeAll: area.width < 100) {
            let e = t.entry($0)
            return (e.line(widths: t.widths), e.tone.role)
        }
    }

    /// Selection; Enter opens the selected block's guest bytes in Hex (Esc comes back).
    package func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        guard let t = app.image.inspector?.table(.allocation) else { return false }
        if e == .enter {
            if cursor.selected < t.count, let off = t.entry(cursor.selected).guestOffset {
                app.pendingHex = (off, false)
                app.requestedView = "hex"
            } else {
                app.sayInView("\(t.name)[\(cursor.selected)] maps no guest data (a bookkeeping entry)", .dim)
            }
            return true
        }
        return cursor.handle(e, count: t.count, visible: visible)
    }

    /// Selects entry `index` (the entry a step changed), scrolled into view.
    package func select(entry index: Int, _ app: AppState) {
        guard let t = app.image.inspector?.table(.allocation), index < t.count else { return }
        cursor.selected = index
        cursor.clamp(count: t.count, visible: visible)
    }

    /// Finds the next (or previous) entry whose row contains `text`, wrapping around.
    package func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        guard let t = app.image.inspector?.table(.allocation) else { return SearchOutcome(none(app)[0], found: false) }
        let q = text.lowercased()
        guard let hit = scanWrapping(count: t.count, from: cursor.selected, direction, { t.entry($0).line(widths: t.widths).lowercased().contains(q) }) else {
            return SearchOutcome("no \(t.name) entry matches '\(text)'", found: false)
        }
        cursor.selected = hit.index; cursor.clamp(count: t.count, visible: visible)
        return SearchOutcome(t.entry(hit.index).line(widths: t.widths), found: true, wrapped: hit.wrapped)
    }
}

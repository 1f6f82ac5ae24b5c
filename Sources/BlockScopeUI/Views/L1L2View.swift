import BlockCore
import BlockInspect

/// L1/L2: a two-level map's directory table (an L1 table, a grain directory); Enter opens the
/// leaf table an entry points to, with each entry's host offset, state, flags and whatever
/// else the format words per entry. Everything shown is the format's ``InspectTable``s.
package final class L1L2View: TUIView {
    /// The format's name for its two-level tables (``ImageInspector/tabTitle(_:)``: "L1/L2",
    /// "GD/GT"), "Tables" when it has none.
    package let title: String
    /// Footer keys.
    package let keys: [(String, String)] = [("↑↓", "select"), ("Enter", "open table / hex"), ("Esc", "back")]
    /// "find".
    package let searchHint: String? = "find"
    /// Guest offsets (a path through the tables is a guest address).
    package let gotoSpace: AddressSpace? = .guest
    private var l1Cursor = ListCursor()
    private var l2Cursor = ListCursor()
    /// The open leaf table's directory index, if one is open.
    package private(set) var openL1: Int?
    private var visible = 20

    /// A view with nothing selected, titled `title` (the inspector's words; nil: "Tables").
    package init(title: String? = nil) { self.title = title ?? "Tables" }

    /// The directory rows.
    func l1Rows(_ q: any ImageInspector) -> [(String, Role)] {
        guard let t = q.table(.directory) else { return [] }
        return (0..<t.count).map { row(t.entry($0), t.widths) }
    }

    /// The row of directory entry `i`.
    func l1Row(_ q: any ImageInspector, _ i: Int) -> (String, Role) {
        guard let t = q.table(.directory), i < t.count else { return ("", .normal) }
        return row(t.entry(i), t.widths)
    }

    /// The rows of the leaf table under directory entry `i`.
    func l2Rows(_ q: any ImageInspector, _ i: Int) -> [(String, Role)] {
        guard let t = q.table(.leaf(i)) else { return [] }
        return (0..<t.count).map { row(t.entry($0), t.widths) }
    }

    /// The row of entry `j` of the leaf table under directory entry `i`; `compact` narrows the
    /// columns (for screens under 90 columns).
    func l2Row(_ q: any ImageInspector, _ i: Int, _ j: Int, compact: Bool = false) -> (String, Role) {
        guard let t = q.table(.leaf(i)), j < t.count else { return ("", .normal) }
        return row(t.entry(j), compact ? t.compactWidths : t.widths)
    }

    private func row(_ e: InspectEntry, _ widths: [Int]) -> (String, Role) { (e.line(widths: widths), e.tone.role) }

    /// Says the image has no two-level table.
    private func none(_ app: AppState) -> [String] {
        ["no two-level tables", "this \(app.image.format.rawValue) image has no directory of tables to show."]
    }

    /// Draws the directory or the open leaf table.
    package func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        guard let q = app.image.inspector, let dir = q.table(.directory) else { s.centred(area, none(app)); return }
        visible = max(1, area.height - 2)
        if let i = openL1, let leaf = q.table(.leaf(i)) {
            s.put(area.x, area.y, leaf.heading + "   (Esc: back)", CellStyle(.heading), maxWidth: area.width)
            // Narrower columns below 90 columns: the last column stays on the row.
            let widths = area.width < 90 ? leaf.compactWidths : leaf.widths
            visible = s.listRows(area.x, area.y + 2, width: area.width, maxY: area.maxY, count: leaf.count, cursor: &l2Cursor) { row(leaf.entry($0), widths) }
        } else if let why = dir.error {
            s.put(area.x, area.y, dir.heading, CellStyle(.error), maxWidth: area.width)
            s.put(area.x, area.y + 2, why, CellStyle(.error), maxWidth: area.width)
            for (k, n) in dir.errorNotes.enumerated() { s.put(area.x, area.y + 3 + k, n, CellStyle(.dim), maxWidth: area.width) }
        } else {
            s.put(area.x, area.y, dir.heading, CellStyle(.heading), maxWidth: area.width)
            visible = s.listRows(area.x, area.y + 2, width: area.width, maxY: area.maxY, count: dir.count, cursor: &l1Cursor) { row(dir.entry($0), dir.widths) }
        }
    }

    /// Selection, Enter to open, Esc to go back.
    package func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        guard let q = app.image.inspector, let dir = q.table(.directory) else { return false }
        if let i = openL1 {
            if e == .escape || e == .backspace || e == .left { openL1 = nil; return true }
            guard let leaf = q.table(.leaf(i)) else { openL1 = nil; return true }
            if e == .enter {
                if l2Cursor.selected < leaf.count, let g = leaf.entry(l2Cursor.selected).guestOffset {
                    app.pendingHex = (g, false)
                    app.requestedView = "hex"
                }
                return true
            }
            return l2Cursor.handle(e, count: leaf.count, visible: visible)
        }
        if e == .enter || e == .right {
            let i = l1Cursor.selected
            guard i < dir.count else { return true }
            let entry = dir.entry(i)
            let child = dir.childName ?? "lower"
            if let err = entry.childError { app.sayInView("\(dir.name)[\(i)]: the \(child) table is unreadable: \(err)", .error) }
            else if entry.child != nil { openL1 = i; l2Cursor = ListCursor() }
            else { app.sayInView("\(dir.name)[\(i)] has no \(child) table: that guest range is unallocated", .dim) }
            return true
        }
        return l1Cursor.handle(e, count: dir.count, visible: visible)
    }

    /// Selects the directory and leaf entries that map a guest offset (clamped to the last unit).
    package func goto(_ offset: UInt64, _ app: AppState) -> Notice {
        guard let q = app.image.inspector, let dir = q.table(.directory) else { return Notice(none(app)[0], .error) }
        let size = q.guestSize
        let target = size > 0 ? min(offset, size - 1) : 0
        let path = q.path(toGuest: target)
        guard let top = path.first else { return Notice("no table maps guest \(hex(offset))", .warning) }
        l1Cursor.selected = top.row
        l1Cursor.clamp(count: dir.count, visible: visible)
        let child = dir.childName ?? "lower"
        var where_ = "\(dir.name)[\(top.row)]"
        let entry = top.row < dir.count ? dir.entry(top.row) : nil
        if let err = entry?.childError {
            openL1 = nil
            where_ += " (\(child) table unreadable: \(err))"
        } else if entry?.child != nil, path.count > 1, let leaf = q.table(path[1].table) {
            openL1 = top.row
            l2Cursor.selected = path[1].row
            l2Cursor.clamp(count: leaf.count, visible: visible)
            where_ += " \(leaf.name)[\(path[1].row)]"
        } else {
            openL1 = nil
            where_ += " (no \(child) table: unallocated)"
        }
        if offset >= size && size > 0 {
            let unit = max(1, dir.childSpan)
            return Notice("\(hex(offset)) is beyond the \(formatBytes(Double(size))) disk: clamped to the last cluster, guest \(hex(target / unit * unit)), \(where_)", .warning)
        }
        return Notice("at guest \(hex(offset)): \(where_)", .ok)
    }

    /// Selects a row a step changed (a directory row, or a leaf row, opening its table).
    package func select(_ link: InspectLink, _ app: AppState) {
        guard let q = app.image.inspector, let dir = q.table(.directory) else { return }
        switch link.table.role {
        case .directory:
            openL1 = nil
            l1Cursor.selected = link.row
            l1Cursor.clamp(count: dir.count, visible: visible)
        case .leaf:
            guard let leaf = q.table(link.table) else { return }
            l1Cursor.selected = link.table.index
            l1Cursor.clamp(count: dir.count, visible: visible)
            openL1 = link.table.index
            l2Cursor.selected = link.row
            l2Cursor.clamp(count: leaf.count, visible: visible)
        case .allocation:
            return
        }
    }

    /// Finds the next (or previous) row containing `text` (e.g. `compressed`, `zero`,
    /// `0x50000`) in the open leaf table or the directory, wrapping around.
    package func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        guard let q = app.image.inspector, let dir = q.table(.directory) else { return SearchOutcome(none(app)[0], found: false) }
        let t = text.lowercased()
        if let i = openL1, let leaf = q.table(.leaf(i)) {
            let rows = l2Rows(q, i)
            guard let hit = scanWrapping(count: rows.count, from: l2Cursor.selected, direction, { rows[$0].0.lowercased().contains(t) }) else {
                return SearchOutcome("'\(text)' not found in this \(leaf.name) table", found: false)
            }
            l2Cursor.selected = hit.index; l2Cursor.clamp(count: rows.count, visible: visible)
            return SearchOutcome(rows[hit.index].0, found: true, wrapped: hit.wrapped)
        }
        let rows = l1Rows(q)
        guard let hit = scanWrapping(count: rows.count, from: l1Cursor.selected, direction, { rows[$0].0.lowercased().contains(t) }) else {
            return SearchOutcome("'\(text)' not found in the \(dir.name) table", found: false)
        }
        l1Cursor.selected = hit.index; l1Cursor.clamp(count: rows.count, visible: visible)
        return SearchOutcome(rows[hit.index].0, found: true, wrapped: hit.wrapped)
    }
}

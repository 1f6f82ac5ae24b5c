import BlockCore
import BlockInspect

/// Map: the guest space and the host file drawn as grids of cells, each cell a run of bytes
/// coloured by what it holds; a cursor names the cell; `+`/`-` zoom; cells written during
/// the session are tinted. On a coloured background (the cursor, "written now") a cell
/// shows its kind as a letter (D data, C compressed, Z zero, B backing), so it stays
/// legible in every theme and in monochrome.
package final class MapView: TUIView {
    /// "Map".
    package let title = "Map"
    /// Footer keys.
    package let keys: [(String, String)] = [("←→↑↓", "move"), ("+/-/0", "zoom"), ("t", "guest/host"), ("Enter", "hex")]
    /// "find kind".
    package let searchHint: String? = "find kind"

    /// Which grid the cursor is in.
    package enum Grid: Sendable { case guest, host }
    /// The grid with the cursor.
    package private(set) var focus: Grid = .guest
    /// Cursor cell index per grid.
    private var cursor: [Grid: Int] = [.guest: 0, .host: 0]
    /// log2 of bytes per cell per grid (nil: fit the whole range).
    private var zoom: [Grid: Int] = [:]
    private var top: [Grid: Int] = [.guest: 0, .host: 0]
    private var cache: [Grid: (key: String, cells: [(Role, String)])] = [:]
    private var lastLayout: [Grid: (rect: Rect, perRow: Int, bytesPerCell: UInt64)] = [:]
    /// An offset `goto` was asked for before the grid was ever drawn (its cell size unknown
    /// until then): the next draw puts the cursor on it.
    private var gotoBeforeDraw: [Grid: UInt64] = [:]

    /// Glyph per role.
    static func glyph(_ r: Role) -> Character {
        switch r {
        case .data: return "█"
        case .compressed: return "▓"
        case .backing: return "▒"
        case .zero: return "░"
        case .header: return "H"
        case .l1: return "1"
        case .l2: return "2"
        case .refcount: return "R"
        case .snapshot: return "S"
        case .error: return "!"
        case .warning: return "~"
        default: return "·"
        }
    }

    /// The glyph of a cell a Diagnosis finding touches (its host or guest ranges).
    static let findingGlyph: Character = "X"
    /// A finding cell's style: the error colour, bold (the glyph tells it apart in monochrome).
    static let findingStyle = CellStyle(.error, [.bold])

    /// Moves the cursor to the grid of `space` (a jump to a host cell turns to the host grid).
    package func focus(on space: AddressSpace) { focus = space == .guest ? .guest : .host }

    /// The cursor cell's style: the selection colours, bold and underlined (underline keeps
    /// it apart from "written now" in monochrome, where both are reverse video).
    static let cursorStyle = CellStyle(.selected, [.bold, .underline])

    /// Creates the view.
    package init() {}

    private func size(_ g: Grid, _ app: AppState) -> UInt64 {
        g == .guest ? app.image.guestSize : (app.image.inspector?.hostSize ?? 0)
    }

    /// Bytes per cell for a grid with `cells` cells: a power of two, at least 512.
    func bytesPerCell(_ g: Grid, _ app: AppState, cells: Int) -> UInt64 {
        if let z = zoom[g] { return UInt64(1) << UInt64(z) }
        let total = max(1, size(g, app))
        var b: UInt64 = 512
        while b * UInt64(max(1, cells)) < total { b <<= 1 }
        return b
    }

    private func cells(_ g: Grid, _ app: AppState, bytesPerCell: UInt64, first: Int, count: Int) -> [(Role, String)] {
        let key = "\(bytesPerCell)/\(first)/\(count)/\(app.layoutVersion)/\(app.live.metadataVersion)"
        if let c = cache[g], c.key == key { return c.cells }
        guard let insp = app.image.inspector else { return [] }
        let total = size(g, app)
        var out: [(Role, String)] = []
        for i in first..<(first + count) {
            let start = UInt64(i) * bytesPerCell
            if start >= total { break }
            let len = min(bytesPerCell, total - start)
            let c = g == .guest ? insp.guestCell(start, len) : insp.hostCell(start, len)
            out.append((c.tone.role, c.text))
        }
        cache[g] = (key, out)
        return out
    }

    /// Draws the guest grid above the host grid, a legend and the cursor line.
    package func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        guard app.image.inspector != nil else {
            s.centred(area, ["No layout available for this image.", app.image.openError ?? ""]); return
        }
        var items: [(Character, CellStyle, String)] = MapLegend.items(app.image.inspector?.legend ?? [])
            .map { (MapView.glyph($0.0), CellStyle($0.0), $0.1) }
        items.append(("D", CellStyle(.written), "written now"))
        let diagnosis = app.diagnosis
        if diagnosis.report?.findings.isEmpty == false { items.append((MapView.findingGlyph, MapView.findingStyle, "finding (Diagnosis)")) }
        items.append(("D", MapView.cursorStyle, "cursor (letter = kind)"))
        // The grids leave room for the whole legend and a cursor line of two rows.
        let legendNeeded = MapView.legendRows(items.map(\.2), width: area.width)
        let gridRows = max(2, (area.height - legendNeeded - 4) / 2)
        drawGrid(.guest, &s, Rect(x: area.x, y: area.y, width: area.width, height: gridRows + 1), app)
        drawGrid(.host, &s, Rect(x: area.x, y: area.y + gridRows + 1, width: area.width, height: gridRows + 1), app)
        // Legend: the format's region kinds, then the session's marks; wraps to a second row.
        let ly = area.y + 2 * (gridRows + 1)
        // The cursor line wraps onto a second row when its words need it (at 80 columns a
        // long explanation would be cut); the legend gives that row up.
        let info = cursorDescription(app).map { Array(TextWrap.lines($0, width: area.width).prefix(2)) } ?? []
        let legendRows = max(1, area.maxY - ly - max(1, info.count))
        var x = area.x, y = ly
        for (g, st, name) in items {
            if x > area.x && x + name.count + 3 > area.x + area.width {
                guard y + 1 < ly + legendRows else { break }
                y += 1; x = area.x
            }
            x = s.put(x, y, String(g), st)
            x = s.put(x + 1, y, name, CellStyle(.dim)) + 2
        }
        // Cursor line.
        for (i, line) in info.enumerated() {
            s.put(area.x, area.maxY - info.count + i, line, CellStyle(.selected), maxWidth: area.width)
        }
    }

    /// The rows the legend's items (`names`) take at `width`, laid out as ``draw`` lays them.
    static func legendRows(_ names: [String], width: Int) -> Int {
        var x = 0, rows = 1
        for name in names {
            if x > 0 && x + name.count + 3 > width { rows += 1; x = 0 }
            x += name.count + 4
        }
        return rows
    }

    private func drawGrid(_ g: Grid, _ s: inout ScreenModel, _ r: Rect, _ app: AppState) {
        let labelW = 14
        let perRow = max(8, r.width - labelW - 1)
        let rows = max(1, r.height - 1)
        let bpc = bytesPerCell(g, app, cells: perRow * rows)
        let total = size(g, app)
        let cellCount = Int((total + bpc - 1) / bpc)
        if let o = gotoBeforeDraw.removeValue(forKey: g) { cursor[g] = Int(o / bpc) }
        var cur = min(cursor[g] ?? 0, max(0, cellCount - 1))
        cur = max(0, cur)
        cursor[g] = cur
        var t = top[g] ?? 0
        let curRow = cur / perRow
        if curRow < t { t = curRow }
        if curRow >= t + rows { t = curRow - rows + 1 }
        top[g] = t
        lastLayout[g] = (Rect(x: r.x + labelW, y: r.y + 1, width: perRow, height: rows), perRow, bpc)
        let name = g == .guest ? "Guest space" : "Host file"
        let head = "\(name): \(formatBytes(Double(total))), 1 cell = \(formatBytes(Double(bpc)))\(zoom[g] == nil ? " (fit)" : "")"
        s.put(r.x, r.y, head.padded(r.width), CellStyle(.heading, focus == g ? [.underline] : []))
        let cells = cells(g, app, bytesPerCell: bpc, first: t * perRow, count: rows * perRow)
        let written = g == .guest ? app.live.writtenGuest : app.live.writtenHost
        for row in 0..<rows {
            let first = (t + row) * perRow
            if first >= cellCount { break }
            s.put(r.x, r.y + 1 + row, hex(UInt64(first) * bpc).leftPadded(labelW - 1), CellStyle(.dim))
            for col in 0..<perRow {
                let idx = first + col
                let ci = idx - t * perRow
                guard idx < cellCount, ci < cells.count else { break }
                let role = cells[ci].0
                var cell = Cell(MapView.glyph(role), CellStyle(role))
                if idx == cur && focus == g {
                    cell = Cell(MapLegend.letter(role), MapView.cursorStyle)
                } else if written.intersects(UInt64(idx) * bpc, length: bpc) {
                    cell = Cell(MapLegend.letter(role), CellStyle(.written))
                } else if g == .host ? app.diagnosis.marksHost(UInt64(idx) * bpc, bpc) : app.diagnosis.marksGuest(UInt64(idx) * bpc, bpc) {
                    cell = Cell(MapView.findingGlyph, MapView.findingStyle)
                }
                s.set(r.x + labelW + col, r.y + 1 + row, cell)
            }
        }
    }

    /// "guest 0x10000+64 KiB: data at host 0x50000" for the cell under the cursor.
    package func cursorDescription(_ app: AppState) -> String? {
        guard let l = lastLayout[focus], let insp = app.image.inspector else { return nil }
        let idx = cursor[focus] ?? 0
        let start = UInt64(idx) * l.bytesPerCell
        let total = size(focus, app)
        guard start < total else { return nil }
        let len = min(l.bytesPerCell, total - start)
        let c = focus == .guest ? insp.guestCell(start, len) : insp.hostCell(start, len)
        let (role, text) = (c.tone.role, c.text)
        let w = (focus == .guest ? app.live.writtenGuest : app.live.writtenHost).intersects(start, length: len) ? " (written this session)" : ""
        let f = app.diagnosis.finding(at: start, len, guest: focus == .guest).map { "; finding: \($0.findingClass.rawValue)" } ?? ""
        return " \(focus == .guest ? "guest" : "host") \(hex(start))+\(formatBytes(Double(len))): \(MapView.glyph(role)) \(text)\(w)\(f) "
    }

    /// Cursor movement, zoom, grid switch, clicks.
    package func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        let perRow = lastLayout[focus]?.perRow ?? 64
        var c = cursor[focus] ?? 0
        switch e {
        case .left, .char("h"): c -= 1
        case .right, .char("l"): c += 1
        case .up, .char("k"): c -= perRow
        case .down, .char("j"): c += perRow
        case .pageUp: c -= perRow * 8
        case .pageDown: c += perRow * 8
        case .home: c = 0
        case .char("t"): focus = focus == .guest ? .host : .guest; return true
        case .char("+"), .char("="): setZoom(-1, app); return true
        case .char("-"): setZoom(+1, app); return true
        case .char("0"): zoom[focus] = nil; return true
        case .enter:
            if let l = lastLayout[focus] {
                let off = UInt64(c) * l.bytesPerCell
                app.requestedView = "hex"
                app.pendingHex = (off, focus == .host)
            }
            return true
        case let .wheel(up, _, _): c += up ? -perRow * 3 : perRow * 3
        case let .click(x, y):
            for (g, l) in lastLayout where l.rect.contains(x: x, y: y) {
                focus = g
                c = ((top[g] ?? 0) + (y - l.rect.y)) * l.perRow + (x - l.rect.x)
            }
        default: return false
        }
        cursor[focus] = max(0, c)
        return true
    }

    private func setZoom(_ delta: Int, _ app: AppState) {
        guard let l = lastLayout[focus] else { return }
        let off = UInt64(cursor[focus] ?? 0) * l.bytesPerCell
        var z = 0
        while (UInt64(1) << UInt64(z)) < l.bytesPerCell { z += 1 }
        z = max(9, min(50, z + delta))
        zoom[focus] = z
        cursor[focus] = Int(off >> UInt64(z))
    }

    /// The grid with the cursor decides: guest offsets in the guest grid, host offsets in the host grid.
    package var gotoSpace: AddressSpace? { focus == .guest ? .guest : .host }

    /// Puts the cursor on the cell holding an offset of the focused grid, clamped to its last cell.
    package func goto(_ offset: UInt64, _ app: AppState) -> Notice {
        let total = size(focus, app)
        let space = focus == .guest ? "guest" : "host"
        guard total > 0 else { return Notice("the \(space) grid is empty", .warning) }
        let bpc = lastLayout[focus]?.bytesPerCell ?? bytesPerCell(focus, app, cells: 1024)
        let target = min(offset, total - 1)
        cursor[focus] = Int(target / bpc)
        if lastLayout[focus] == nil { gotoBeforeDraw[focus] = target }
        let cellStart = target / bpc * bpc
        if offset >= total {
            return Notice("\(hex(offset)) is beyond the \(formatBytes(Double(total))) \(space) \(focus == .guest ? "disk" : "file"): clamped to the last cell, \(space) \(hex(cellStart))", .warning)
        }
        return Notice("at \(space) \(hex(offset)) (cell \(hex(cellStart))+\(formatBytes(Double(bpc))))", .ok)
    }

    /// Finds the next (or previous) cell of a kind ("data", "compressed", "zero", "l2", ...)
    /// from the cursor, wrapping around the grid.
    package func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        guard let l = lastLayout[focus], let insp = app.image.inspector else { return SearchOutcome("no map", found: false) }
        let t = text.lowercased()
        let total = size(focus, app)
        let count = Int((total + l.bytesPerCell - 1) / l.bytesPerCell)
        // A kind's name finds cells of that kind only ("zero" is not "unallocated: reads as zeroes").
        let byRole = Role.allCases.contains { $0.rawValue.lowercased() == t }
        let hit = scanWrapping(count: count, from: cursor[focus] ?? 0, direction) { i in
            let off = UInt64(i) * l.bytesPerCell
            let c = focus == .guest ? insp.guestCell(off, l.bytesPerCell) : insp.hostCell(off, l.bytesPerCell)
            let (role, desc) = (c.tone.role, c.text)
            return byRole ? role.rawValue.lowercased() == t : desc.lowercased().contains(t)
        }
        guard let hit else { return SearchOutcome("no \(focus == .guest ? "guest" : "host") cell matches '\(text)'", found: false) }
        cursor[focus] = hit.index
        return SearchOutcome("found \(t) at \(focus == .guest ? "guest" : "host") \(hex(UInt64(hit.index) * l.bytesPerCell))", found: true, wrapped: hit.wrapped)
    }
}

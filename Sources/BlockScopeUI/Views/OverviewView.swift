import BlockInspect
import Foundation
import BlockCore

/// Overview: format, sizes, header fields, feature bits, extensions, backing chain,
/// snapshots, dirty/corrupt state and warnings, in one or two columns. Long keys get a
/// line of their own and values wrap at word boundaries, so nothing is cut mid-word.
package final class OverviewView: TUIView {
    /// "Overview".
    package let title = "Overview"
    /// Footer keys.
    package let keys: [(String, String)] = [("↑↓", "scroll")]
    /// "find".
    package let searchHint: String? = "find"
    private var scroll = 0
    /// The (section, row) the last search matched; drawn selected and scrolled into view.
    private var match: (section: Int, row: Int)?
    private var scrollToMatch = false
    private var lastSections: [InfoSection] = []
    private var cacheKey: (version: Int, time: UInt64) = (-1, 0)

    /// Creates the view.
    package init() {}

    /// The sections shown: the image, qemu-img info's fields, then the inspector's.
    package func sections(_ app: AppState) -> [InfoSection] {
        let img = app.image
        var main: [(String, String, Role)] = [
            ("file", img.path, .normal),
            ("format", img.format.rawValue, .heading),
            ("virtual size", "\(formatBytes(Double(img.guestSize))) (\(img.guestSize) bytes)", .normal),
        ]
        if let d = img.disk {
            if let p = try? d.physicalSize() { main.append(("disk size", formatBytes(Double(p)), .normal)) }
            main.append(("mode", d.isWritable ? "read-write (--write)" : "read-only", d.isWritable ? .warning : .ok))
            let t = d.topology
            main.append(("block sizes", "logical \(t.logicalBlockSize), physical \(t.physicalBlockSize), optimal \(t.optimalIoSize)", .dim))
        } else if let i = img.inspector {
            main.append(("host file size", formatBytes(Double(i.hostSize)), .normal))
        }
        if let e = img.openError { main.append(("I/O", "not available: \(e)", .warning)) }
        for w in img.disk?.warnings ?? [] { main.append(("warning", w, .warning)) }
        var out = [InfoSection("Image", main)]
        out += (img.inspector?.overviewSections() ?? []).map(InfoSection.init)
        if let info = img.info() {
            var rows: [(String, String, Role)] = []
            flatten(info, prefix: "", into: &rows)
            // The inspector shows the format's own fields and snapshots; keep qemu-img's other keys here.
            let skipOwn = img.inspector?.showsFormatInfoFields ?? false
            let shown = rows.filter {
                !["filename", "format", "virtual-size"].contains($0.0) && !(skipOwn && ($0.0.hasPrefix("blockscope.") || $0.0.hasPrefix("snapshots[")))
            }
            if !shown.isEmpty { out.append(InfoSection("qemu-img info fields", shown)) }
        }
        return out
    }

    private func flatten(_ v: JSONValue, prefix: String, into rows: inout [(String, String, Role)]) {
        switch v {
        case let .object(kv):
            for (k, x) in kv { flatten(x, prefix: prefix.isEmpty ? k : prefix + "." + k, into: &rows) }
        case let .array(a):
            if a.isEmpty { rows.append((prefix, "[]", .dim)) }
            if a.allSatisfy({ if case .object = $0 { return false }; return true }) {
                rows.append((prefix, a.map { $0.render(pretty: false).replacingOccurrences(of: "\"", with: "") }.joined(separator: ", "), .normal))
            } else {
                for (i, x) in a.prefix(8).enumerated() { flatten(x, prefix: "\(prefix)[\(i)]", into: &rows) }
            }
        case let .bool(b): rows.append((prefix, b ? "true" : "false", prefix.contains("corrupt") && b ? .error : .normal))
        default: rows.append((prefix, v.render(pretty: false).replacingOccurrences(of: "\"", with: ""), .normal))
        }
    }

    /// One drawn line: a heading, a blank, or part of a row (label on its first line only).
    private enum Line {
        case heading(String)
        case blank
        case row(label: String, value: String, role: Role, id: (section: Int, row: Int), labelWidth: Int)
    }

    /// The lines of one row, wrapped to the column: the label padded to `labelWidth` with the
    /// value beside it, or alone on a line when longer, the value below it.
    private func rowLines(_ label: String, _ value: String, _ role: Role, id: (Int, Int), labelWidth: Int, width: Int) -> [Line] {
        let valueWidth = max(8, width - labelWidth - 1)
        var out: [Line] = []
        var labelText = label
        if label.count > labelWidth {
            for part in TextWrap.lines(label, width: width) { out.append(.row(label: part, value: "", role: role, id: id, labelWidth: labelWidth)) }
            labelText = ""
        }
        for (i, v) in TextWrap.lines(value, width: valueWidth).enumerated() {
            out.append(.row(label: i == 0 ? labelText : "", value: v, role: role, id: id, labelWidth: labelWidth))
        }
        return out
    }

    /// Draws the sections in one column, or two from 150 columns; long keys and values wrap.
    package func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        // info() and the inspector's sections are not free: rebuild once a second or after a reload.
        let now = monotonicNanos()
        if cacheKey.version != app.layoutVersion || now - cacheKey.time > 1_000_000_000 {
            lastSections = sections(app)
            cacheKey = (app.layoutVersion, now)
        }
        let columns = area.width >= 150 ? 2 : 1
        let colWidth = (area.width - (columns - 1) * 2) / columns
        // Sections into columns (the second starts once the first holds half the rows).
        var bySection: [[Int]] = Array(repeating: [], count: columns)
        let total = lastSections.reduce(0) { $0 + $1.rows.count + 2 }
        var col = 0, count0 = 0
        for (i, sec) in lastSections.enumerated() {
            if columns > 1 && col == 0 && count0 >= total / 2 { col = 1 }
            bySection[col].append(i)
            if col == 0 { count0 += sec.rows.count + 2 }
        }
        var lines: [[Line]] = Array(repeating: [], count: columns)
        for c in 0..<columns {
            // One key width per column for the usual short keys; a section with longer keys
            // widens as far as values keep 30 columns; keys longer still get a line of their own.
            let short = bySection[c].flatMap { lastSections[$0].rows.map(\.0.count) }.filter { $0 <= 16 }.max() ?? 12
            for si in bySection[c] {
                let sec = lastSections[si]
                let labelWidth = max(8, min(max(12, short, sec.rows.map(\.0.count).max() ?? 0), colWidth - 32))
                lines[c].append(.heading(sec.title))
                for (ri, r) in sec.rows.enumerated() {
                    lines[c] += rowLines(r.0, r.1, r.2, id: (si, ri), labelWidth: labelWidth, width: colWidth - 1)
                }
                lines[c].append(.blank)
            }
        }
        let maxLines = lines.map(\.count).max() ?? 0
        if scrollToMatch, let m = match {
            scrollToMatch = false
            for c in 0..<columns {
                if let i = lines[c].firstIndex(where: { if case let .row(_, _, _, id, _) = $0 { return id == m }; return false }),
                   i < scroll || i >= scroll + area.height {
                    scroll = max(0, i - area.height / 3)
                }
            }
        }
        scroll = max(0, min(scroll, maxLines - area.height))
        for c in 0..<columns {
            let x = area.x + c * (colWidth + 2)
            for (i, l) in lines[c].dropFirst(scroll).prefix(area.height).enumerated() {
                let y = area.y + i
                switch l {
                case let .heading(t): s.heading(x, y, "── " + t + " ", width: colWidth)
                case .blank: break
                case let .row(label, value, role, id, labelWidth):
                    let hit = match.map { $0 == id } ?? false
                    if hit { s.fill(Rect(x: x, y: y, width: colWidth, height: 1), " ", CellStyle(.selected)) }
                    s.put(x + 1, y, label, CellStyle(hit ? .selected : .dim), maxWidth: colWidth - 1)
                    if !value.isEmpty {
                        s.put(x + 2 + labelWidth, y, value, CellStyle(hit ? .selected : role), maxWidth: max(0, colWidth - labelWidth - 2))
                    }
                }
            }
        }
    }

    /// Scrolls.
    package func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        switch e {
        case .up, .char("k"): scroll -= 1
        case .down, .char("j"): scroll += 1
        case .pageUp: scroll -= 10
        case .pageDown: scroll += 10
        case .home: scroll = 0
        case let .wheel(up, _, _): scroll += up ? -3 : 3
        default: return false
        }
        scroll = max(0, scroll)
        return true
    }

    /// Finds the next (or previous) row whose label or value contains `text`, wrapping
    /// around; the row is drawn selected and scrolled into view.
    package func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        let t = text.lowercased()
        if lastSections.isEmpty { lastSections = sections(app) }
        let rows = lastSections.enumerated().flatMap { si, sec in sec.rows.indices.map { (si, $0) } }
        let fresh = match == nil
        let from = match.flatMap { m in rows.firstIndex { $0 == m } } ?? (direction == .forward ? rows.count - 1 : 0)
        guard let hit = scanWrapping(count: rows.count, from: from, direction, { i in
            let r = lastSections[rows[i].0].rows[rows[i].1]
            return r.0.lowercased().contains(t) || r.1.lowercased().contains(t)
        }) else { return SearchOutcome("'\(text)' not found", found: false) }
        let (si, ri) = rows[hit.index]
        match = (si, ri)
        scrollToMatch = true
        let r = lastSections[si].rows[ri]
        // The first search starts from the top (or the bottom) and does not count as wrapping.
        return SearchOutcome("\(lastSections[si].title): \(r.0) = \(r.1)", found: true, wrapped: hit.wrapped && !fresh)
    }
}

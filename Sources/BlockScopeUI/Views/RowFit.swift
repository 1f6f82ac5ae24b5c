import Foundation

/// Fitting one-line list rows into a narrow screen without losing words: a row wider than
/// the screen first gives up its column padding (runs of spaces narrowed to two, then to
/// one); a row still too wide ends in `…` in the list, and the selected row is shown whole,
/// wrapped, on detail lines under the list.
enum RowFit {
    /// `text` narrowed to `width` columns: unchanged when it fits; else with runs of spaces
    /// narrowed (`whole` true); else cut to `width - 1` columns and `…` (`whole` false).
    static func fit(_ text: String, _ width: Int) -> (text: String, whole: Bool) {
        if text.count <= width { return (text, true) }
        let two = text.replacingOccurrences(of: " {3,}", with: "  ", options: .regularExpression)
        if two.count <= width { return (two, true) }
        let one = squeezed(text)
        if one.count <= width { return (one, true) }
        return (String(one.prefix(max(0, width - 1))) + "…", false)
    }

    /// `text` with every run of spaces narrowed to one and no leading spaces.
    static func squeezed(_ text: String) -> String {
        var s = text.replacingOccurrences(of: " {2,}", with: " ", options: .regularExpression)
        while s.first == " " { s.removeFirst() }
        return s
    }
}

extension ScreenModel {
    /// Draws a list of `count` one-line rows from `(x, y)` down to `maxY` (exclusive), each
    /// fitted to `width` (``RowFit``); the selected row in the selected style. When the
    /// selected row does not fit whole, up to three detail lines at the bottom show it
    /// wrapped (the list gives up those rows). Returns the number of list rows shown, for
    /// the cursor's paging.
    @discardableResult
    mutating func listRows(_ x: Int, _ y: Int, width: Int, maxY: Int, count: Int, cursor: inout ListCursor, row: (Int) -> (String, Role)) -> Int {
        var visible = max(1, maxY - y)
        cursor.clamp(count: count, visible: visible)
        var detail: [String] = []
        var detailRole = Role.normal
        if count > 0 {
            let sel = row(cursor.selected)
            if !RowFit.fit(sel.0, width).whole {
                detail = Array(TextWrap.lines(RowFit.squeezed(sel.0), width: max(1, width - 2)).prefix(3))
                detailRole = sel.1
            }
        }
        if !detail.isEmpty, visible > detail.count + 1 {
            visible -= detail.count
            cursor.clamp(count: count, visible: visible)
        } else { detail = [] }
        for k in 0..<min(visible, max(0, count - cursor.top)) {
            let i = cursor.top + k
            let r = row(i)
            put(x, y + k, RowFit.fit(r.0, width).text.padded(width), i == cursor.selected ? CellStyle(.selected) : CellStyle(r.1), maxWidth: width)
        }
        for (k, l) in detail.enumerated() {
            put(x, y + visible + k, ("  " + l).padded(width), CellStyle(detailRole == .normal ? .dim : detailRole), maxWidth: width)
        }
        return visible
    }
}

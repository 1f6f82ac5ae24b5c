import Foundation

/// Fitting one-line list rows into a narrow screen without losing words: a row wider than
/// the screen first gives up its column padding (runs of spaces narrowed to two, then to
/// one); a row still too wide goes on over the following lines (``ScreenModel/listRows``).
enum RowFit {
    /// `text` narrowed to `width` columns: unchanged when it fits; else with runs of spaces
    /// narrowed (`whole` true); else cut to `width - 1` columns and `…` (`whole` false: the
    /// caller wraps it instead).
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
    /// Draws a list of `count` rows from `(x, y)` down to `maxY` (exclusive), each fitted to
    /// `width` (``RowFit``; `squeezeAll` narrows every row's padding, for rows whose columns
    /// are too wide for the screen), the selected row in the selected style. A row that still
    /// does not fit goes on over the following lines, indented, so no word is cut; the list
    /// scrolls so the selected row is whole on screen. Returns the number of rows shown, for
    /// the cursor's paging.
    @discardableResult
    mutating func listRows(_ x: Int, _ y: Int, width: Int, maxY: Int, count: Int, cursor: inout ListCursor, squeezeAll: Bool = false, row: (Int) -> (String, Role)) -> Int {
        let room = max(1, maxY - y)
        func lines(_ i: Int) -> [String] {
            var text = row(i).0
            if squeezeAll { text = text.replacingOccurrences(of: " {3,}", with: "  ", options: .regularExpression) }
            let f = RowFit.fit(text, width)
            if f.whole { return [f.text] }
            let w = TextWrap.lines(RowFit.squeezed(text), width: max(1, width - 2))
            return Array(([w[0]] + w.dropFirst().map { "  " + $0 }).prefix(room))
        }
        cursor.clamp(count: count, visible: room)
        // The rows that fit from `top`, each with its lines.
        func layout(_ top: Int) -> [(Int, [String])] {
            var out: [(Int, [String])] = [], used = 0
            var i = top
            while i < count {
                let l = lines(i)
                if used + l.count > room && !out.isEmpty { break }
                out.append((i, l)); used += l.count; i += 1
            }
            return out
        }
        var rows = layout(cursor.top)
        while let last = rows.last?.0, cursor.selected > last, cursor.top < cursor.selected {
            cursor.top += 1
            rows = layout(cursor.top)
        }
        var yy = y
        for (i, ls) in rows {
            let style = i == cursor.selected ? CellStyle(.selected) : CellStyle(row(i).1)
            for l in ls where yy < maxY {
                put(x, yy, l.padded(width), style, maxWidth: width)
                yy += 1
            }
        }
        return max(1, rows.count)
    }
}

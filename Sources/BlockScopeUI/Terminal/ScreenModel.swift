/// One character cell of the screen: a character and its style.
package struct Cell: Sendable, Hashable {
    /// The character shown (one column wide; wide characters are not used by the views).
    package var character: Character
    /// How it looks.
    package var style: CellStyle

    /// Creates a cell.
    package init(_ character: Character = " ", _ style: CellStyle = .normal) {
        self.character = character
        self.style = style
    }
}

/// A rectangle of cells in screen coordinates (column `x`, row `y`, zero-based).
package struct Rect: Sendable, Hashable {
    /// Left column.
    package var x: Int
    /// Top row.
    package var y: Int
    /// Width in columns.
    package var width: Int
    /// Height in rows.
    package var height: Int

    /// Creates a rectangle.
    package init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = max(0, width); self.height = max(0, height)
    }

    /// Whether the point lies inside.
    package func contains(x px: Int, y py: Int) -> Bool {
        px >= x && px < x + width && py >= y && py < y + height
    }

    /// The bottom edge (exclusive).
    package var maxY: Int { y + height }
}

/// A grid of styled cells that views draw into.
///
/// The screen model knows nothing of terminals: the curses layer copies it to the screen,
/// and tests render it to plain text (``text``) to assert what a view shows. Writes outside
/// the grid are clipped, so views never need to bounds-check.
package struct ScreenModel: Sendable {
    /// Width in columns.
    package private(set) var width: Int
    /// Height in rows.
    package private(set) var height: Int
    /// Cells row by row (`y * width + x`).
    package private(set) var cells: [Cell]
    /// Texts ``put(_:_:_:_:maxWidth:)`` had to cut (the screen's right edge or `maxWidth`
    /// came before their last non-blank character), with their row; at most 64 kept. Tests
    /// read it to prove a layout fits its width.
    package private(set) var clipped: [(y: Int, text: String)] = []

    /// Creates a blank screen of the given size.
    package init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        self.cells = Array(repeating: Cell(), count: self.width * self.height)
    }

    /// The whole screen as a rectangle.
    package var bounds: Rect { Rect(x: 0, y: 0, width: width, height: height) }

    /// Clears every cell to a blank of `style`.
    package mutating func clear(_ style: CellStyle = .normal) {
        for i in cells.indices { cells[i] = Cell(" ", style) }
    }

    /// The cell at a position, or nil outside the grid.
    package subscript(x: Int, y: Int) -> Cell? {
        guard x >= 0, y >= 0, x < width, y < height else { return nil }
        return cells[y * width + x]
    }

    /// Sets one cell (clipped).
    package mutating func set(_ x: Int, _ y: Int, _ cell: Cell) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        cells[y * width + x] = cell
    }

    /// Writes `text` starting at (`x`, `y`), clipped to the screen and to `maxWidth` columns.
    /// Returns the column after the last character written.
    @discardableResult
    package mutating func put(_ x: Int, _ y: Int, _ text: String, _ style: CellStyle = .normal, maxWidth: Int = Int.max) -> Int {
        var cx = x
        var n = 0
        for (i, ch) in zip(text.indices, text) {
            if n >= maxWidth || cx >= width {
                if y >= 0, y < height, clipped.count < 64, text[i...].contains(where: { $0 != " " }) { clipped.append((y, text)) }
                break
            }
            let c: Character = (ch == "\n" || ch == "\t") ? " " : ch
            set(cx, y, Cell(c, style))
            cx += 1
            n += 1
        }
        return cx
    }

    /// Fills a rectangle with `character` in `style`.
    package mutating func fill(_ rect: Rect, _ character: Character = " ", _ style: CellStyle = .normal) {
        for yy in rect.y..<rect.maxY {
            for xx in rect.x..<(rect.x + rect.width) { set(xx, yy, Cell(character, style)) }
        }
    }

    /// Changes the style of the cells in a rectangle, keeping their characters.
    package mutating func restyle(_ rect: Rect, _ style: CellStyle) {
        for yy in rect.y..<rect.maxY {
            for xx in rect.x..<(rect.x + rect.width) {
                if let c = self[xx, yy] { set(xx, yy, Cell(c.character, style)) }
            }
        }
    }

    /// One row as plain text, trailing spaces kept.
    package func line(_ y: Int) -> String {
        guard y >= 0, y < height else { return "" }
        return String(cells[(y * width)..<(y * width + width)].map(\.character))
    }

    /// The whole screen as plain text, one line per row, trailing spaces trimmed.
    package var text: String {
        (0..<height).map { line($0).trimmingTrailingSpaces() }.joined(separator: "\n")
    }

    /// Whether any row contains `needle`.
    package func contains(_ needle: String) -> Bool {
        (0..<height).contains { line($0).contains(needle) }
    }

    /// The positions of cells whose style has `role`.
    package func cells(with role: Role) -> [(x: Int, y: Int)] {
        var out: [(x: Int, y: Int)] = []
        for y in 0..<height {
            for x in 0..<width where cells[y * width + x].style.role == role { out.append((x, y)) }
        }
        return out
    }
}

extension String {
    /// The string without trailing spaces.
    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }

    /// The string cut or padded with spaces to exactly `n` columns.
    func padded(_ n: Int) -> String {
        if count >= n { return String(prefix(n)) }
        return self + String(repeating: " ", count: n - count)
    }

    /// The string right-aligned in `n` columns.
    func leftPadded(_ n: Int) -> String {
        if count >= n { return self }
        return String(repeating: " ", count: n - count) + self
    }
}

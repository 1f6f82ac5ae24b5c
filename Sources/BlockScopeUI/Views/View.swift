import BlockCore

/// One tab of the TUI: draws into a ``ScreenModel`` area and handles the keys it owns.
///
/// Views keep their own cursor and scroll state and read everything else from the
/// ``AppState`` they are handed, so tests can draw any view without a terminal.
package protocol TUIView: AnyObject {
    /// The tab label and the name `view NAME` accepts (lower-cased, `/` removed).
    var title: String { get }
    /// The keys that matter in this view, for the footer: (key, what it does). Search (`/`,
    /// `n`/`N`) and goto (`g`) are added by the app when the view offers them.
    var keys: [(String, String)] { get }
    /// Draws the view into `area`.
    func draw(_ screen: inout ScreenModel, _ area: Rect, _ app: AppState)
    /// Handles a key or mouse event; returns false to let the app handle it (Esc then goes
    /// back to the view Enter came from).
    func handle(_ event: InputEvent, _ app: AppState) -> Bool
    /// The space `g`/`goto` offsets are in right now (a view with a guest/host toggle
    /// answers by its toggle); nil when the view has no offsets and hands goto to Hex.
    var gotoSpace: AddressSpace? { get }
    /// Moves to an offset in ``gotoSpace``, clamping to the last byte, cell or cluster;
    /// the notice says where the cursor went and whether it was clamped.
    func goto(_ offset: UInt64, _ app: AppState) -> Notice
    /// What `/` finds here for the footer ("find kind"); nil when the view has no search.
    var searchHint: String? { get }
    /// Moves to the next (or previous) match of `text` after the cursor, wrapping around
    /// the end; only called when ``searchHint`` is not nil.
    func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome
}

extension TUIView {
    /// Views without offsets hand `goto` to Hex.
    package var gotoSpace: AddressSpace? { nil }
    /// Views without offsets ignore `goto`.
    package func goto(_ offset: UInt64, _ app: AppState) -> Notice { Notice("\(title) has no offsets", .dim) }
    /// Views without searchable content.
    package var searchHint: String? { nil }
    /// Views without searchable content say so.
    package func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        SearchOutcome("search is not available in \(title)", found: false)
    }
    /// Searches forward and returns the status message (the `/` prompt's behaviour).
    package func search(_ text: String, _ app: AppState) -> String { search(text, .forward, app).message }
}

/// Guest space (what the VM sees) or the host file (where the format stores it).
package enum AddressSpace: String, Sendable {
    /// Guest offsets.
    case guest
    /// Host-file offsets.
    case host
}

/// A status-line message with its role (ok, warning when clamped, error).
package struct Notice: Sendable, Equatable {
    /// The message.
    package var text: String
    /// How the status line colours it.
    package var role: Role
    /// Creates a notice.
    package init(_ text: String, _ role: Role = .ok) { self.text = text; self.role = role }
}

/// Which way `n` (forward) and `N` (backward) move through matches.
package enum SearchDirection: Sendable {
    /// Towards higher offsets, later rows.
    case forward
    /// Towards lower offsets, earlier rows.
    case backward
}

/// What a search did: the status message, whether it matched, and whether it passed the
/// end (or the start, backwards) and continued from the other side.
package struct SearchOutcome: Sendable, Equatable {
    /// The status-line message (the matching row, or where the match is).
    package var message: String
    /// Whether the cursor moved to a match.
    package var found: Bool
    /// Whether the search wrapped around.
    package var wrapped: Bool
    /// Creates an outcome.
    package init(_ message: String, found: Bool, wrapped: Bool = false) {
        self.message = message; self.found = found; self.wrapped = wrapped
    }
}

/// Finds the next index matching `match` after `from` (before it, backward) among
/// `0..<count`, continuing from the other end; `from` itself is tried last. Nil when
/// nothing matches.
func scanWrapping(count: Int, from: Int, _ direction: SearchDirection, _ match: (Int) -> Bool) -> (index: Int, wrapped: Bool)? {
    guard count > 0 else { return nil }
    let start = max(0, min(from, count - 1))
    for k in 1...count {
        let i = direction == .forward ? start + k : start - k
        let wrapped = i >= count || i < 0
        let j = ((i % count) + count) % count
        if match(j) { return (j, wrapped) }
    }
    return nil
}

/// A scrolling list position: the selected row and the first visible row.
package struct ListCursor: Sendable {
    /// Selected row.
    package var selected = 0
    /// First visible row.
    package var top = 0

    /// Creates a cursor at the top.
    package init() {}

    /// Applies a navigation key for a list of `count` rows with `visible` rows shown.
    package mutating func handle(_ e: InputEvent, count: Int, visible: Int) -> Bool {
        switch e {
        case .up, .char("k"): selected -= 1
        case .down, .char("j"): selected += 1
        case .pageUp: selected -= max(1, visible - 1)
        case .pageDown: selected += max(1, visible - 1)
        case .home: selected = 0
        case .end: selected = count - 1
        case let .wheel(up, _, _): selected += up ? -3 : 3
        default: return false
        }
        clamp(count: count, visible: visible)
        return true
    }

    /// Keeps the selection in range and visible.
    package mutating func clamp(count: Int, visible: Int) {
        selected = max(0, min(selected, count - 1))
        if selected < top { top = selected }
        if visible > 0 && selected >= top + visible { top = selected - visible + 1 }
        top = max(0, min(top, max(0, count - visible)))
    }
}

extension ScreenModel {
    /// Draws a heading line: bold text over the full width.
    mutating func heading(_ x: Int, _ y: Int, _ text: String, width: Int) {
        put(x, y, text.padded(width), CellStyle(.heading))
    }

    /// Draws label/value rows; returns the next free row.
    @discardableResult
    mutating func rows(_ x: Int, _ y: Int, _ rows: [(String, String, Role)], labelWidth: Int, width: Int, maxY: Int) -> Int {
        var yy = y
        for (label, value, role) in rows {
            if yy >= maxY { break }
            put(x, yy, label.padded(labelWidth), CellStyle(.dim), maxWidth: width)
            put(x + labelWidth + 1, yy, value, CellStyle(role), maxWidth: max(0, width - labelWidth - 1))
            yy += 1
        }
        return yy
    }

    /// Draws a message centred in an area (e.g. "no two-level tables").
    mutating func centred(_ area: Rect, _ lines: [String], _ role: Role = .dim) {
        let y0 = area.y + max(0, (area.height - lines.count) / 2)
        for (i, l) in lines.enumerated() {
            put(area.x + max(0, (area.width - l.count) / 2), y0 + i, l, CellStyle(role), maxWidth: area.width)
        }
    }
}

/// Sparkline glyphs, lowest to highest.
let sparkGlyphs: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

/// A sparkline of `values` scaled to their maximum, the newest at the right; at most `width` glyphs.
func sparkline(_ values: [Int], width: Int) -> String {
    let v = values.suffix(width)
    let m = max(1, v.max() ?? 1)
    return String(v.map { $0 == 0 ? " " : sparkGlyphs[min(7, ($0 * 8 - 1) / m)] })
}

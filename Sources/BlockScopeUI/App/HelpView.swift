/// The key and command reference shown by `?`, F1 or `:help`: a bordered box over the
/// current view whose lines wrap to its width and scroll (↑↓ PgUp PgDn Home End, wheel).
///
/// The box fits any terminal from 50x12 up; the bottom border says which lines show and
/// how to scroll, so the last line is always reachable.
package struct HelpScreen: Sendable {
    /// First content line shown.
    package private(set) var scroll = 0
    /// Content lines the last draw had room for (the page size for PgUp/PgDn).
    package private(set) var visibleLines = 10
    /// Content lines at the last draw's width.
    package private(set) var lineCount = 0

    /// Creates the help scrolled to the top.
    package init() {}

    /// Every key of the TUI, grouped: (key, what it does); a row with an empty description is a heading.
    package static let keys: [(String, String)] = [
        ("General", ""),
        ("? / F1", "this help; ↑↓ PgUp PgDn Home End scroll it, any other key closes it"),
        ("q, Ctrl-C", "quit: stop the workload, flush and close the image (progress shows), restore the terminal"),
        ("Views", ""),
        ("1 … 9, 0, Tab", "switch view: Overview, L1/L2, Refcounts, Map, BAT, Hex, In-flight, Completions, Diagnosis, 0 Virtqueue (vhost-user)"),
        ("Enter", "open: an L2 table (L1/L2), the hex of a map cell, an L2 entry, a cluster, a BAT block, a finding's place"),
        ("Esc", "back: close the L2 table (also ← or Backspace), or return to the view Enter came from (cursor kept)"),
        ("mouse", "click a tab or a map cell; the wheel scrolls (SGR 1006 reports, X10 fallback)"),
        ("x", "stop the whole-image walk the footer shows (\"walking host clusters 42% ...\"): views keep the last finished walk; x again walks anew"),
        ("Search and go to", ""),
        ("/", "search the current view (Map: a kind like compressed; Hex: text or 0xHEX; L1/L2, Refcounts, BAT, Overview: text)"),
        ("n / N", "next / previous match; wraps around the end and says \"search wrapped\""),
        ("g", "go to an offset in the view's space: guest, or host when the view shows the host (Map host grid, Hex after m, Refcounts); clamped to the last byte or cluster, and says so"),
        ("Map", ""),
        ("↑ ↓ ← → / h j k l", "move the cursor; PgUp PgDn page, Home first cell"),
        ("+ - 0", "zoom in, out, fit the whole range"),
        ("t", "switch between the guest and the host grid"),
        ("Hex", ""),
        ("m", "switch guest / host bytes: a guest offset jumps to its real host location (data, compressed bytes, or the L2 entry of a zero or unallocated cluster)"),
        ("↑ ↓ ← → / h j k l", "move the cursor byte; PgUp PgDn page, Home the first byte, the wheel scrolls"),
        ("Lists (L1/L2, Refcounts, BAT, Overview, In-flight log)", ""),
        ("↑ ↓ / j k, PgUp PgDn Home End", "move the selection or scroll"),
        ("/ (In-flight)", "live filter: w r f zero discard, q1, 0x100000-0x200000, >1ms, id=0x…; Esc clears; o sorts"),
        ("w (Completions)", "window: last 1 s / whole job"),
        ("9, Enter (Virtqueue)", "with --serve vhost-user: rings and held chains; Enter opens the chain's request in In-flight"),
        ("Workload", ""),
        ("space", "pause / resume (a time_based job's clock stops)"),
        ("s, c, >", "step mode: one event per s, c runs the request to completion, > to the next request; held time is not latency"),
        ("any key", "continues a script waiting at `pause`"),
        ("Prompt (:)", ""),
        ("Tab", "complete a command name, a view or theme name, or a file path (job FILE)"),
        ("↑ ↓", "browse the command history"),
        ("Enter / Esc", "run / cancel"),
    ]

    /// The content lines at an inner width: headings, then key and description rows whose
    /// descriptions wrap under themselves. Each line is (key column, text, is heading).
    static func content(width: Int) -> [(key: String, text: String, heading: Bool)] {
        let keyWidth = width >= 70 ? 24 : 16
        var out: [(key: String, text: String, heading: Bool)] = []
        func row(_ k: String, _ v: String) {
            if k.count >= keyWidth - 1 {
                out.append((k, "", false))
                for l in TextWrap.lines(v, width: max(10, width - keyWidth)) { out.append(("", l, false)) }
                return
            }
            for (i, l) in TextWrap.lines(v, width: max(10, width - keyWidth)).enumerated() { out.append((i == 0 ? k : "", l, false)) }
        }
        for (k, v) in keys {
            if v.isEmpty {
                if !out.isEmpty { out.append(("", "", false)) }
                for l in TextWrap.lines(k, width: width) { out.append((l, "", true)) }
            } else {
                row(k, v)
            }
        }
        out.append(("", "", false))
        for l in TextWrap.lines("Commands (: prompt, tui --script; OFF and LEN take k/M/G or 0x)", width: width) { out.append((l, "", true)) }
        for c in PromptCommand.reference { row(":" + c.usage, c.summary) }
        return out
    }

    /// Applies a key: scrolling keys scroll and return true; any other key returns false
    /// (the app closes the help).
    package mutating func handle(_ e: InputEvent) -> Bool {
        switch e {
        case .up, .char("k"): scroll -= 1
        case .down, .char("j"): scroll += 1
        case .pageUp: scroll -= max(1, visibleLines - 1)
        case .pageDown, .char(" "): scroll += max(1, visibleLines - 1)
        case .home: scroll = 0
        case .end: scroll = lineCount
        case let .wheel(up, _, _): scroll += up ? -3 : 3
        case .resize: break
        default: return false
        }
        scroll = max(0, min(scroll, max(0, lineCount - visibleLines)))
        return true
    }

    /// Draws the bordered box in `area` at the current scroll: one column up to 120 wide;
    /// from 144 columns two columns side by side (split at a section heading), so at 160x50
    /// and wider every key and command shows without scrolling.
    package mutating func draw(_ s: inout ScreenModel, _ area: Rect) {
        let twoColumns = area.width >= 144
        let w = twoColumns ? min(area.width, 200) : min(area.width, 120), h = area.height
        guard w >= 20, h >= 5 else { return }
        let box = Rect(x: area.x + (area.width - w) / 2, y: area.y, width: w, height: h)
        let inner = w - 4
        let colWidth = twoColumns ? (inner - 3) / 2 : inner
        let lines = HelpScreen.content(width: colWidth)
        var columns = [lines[...]]
        if twoColumns {
            // Split at the section heading nearest the middle.
            let headings = lines.indices.filter { lines[$0].heading && $0 > 0 }
            let k = headings.min { abs($0 - lines.count / 2) < abs($1 - lines.count / 2) } ?? lines.count
            columns = [lines[..<k], lines[k...]]
        }
        lineCount = columns.map(\.count).max() ?? 0
        visibleLines = h - 2
        scroll = max(0, min(scroll, max(0, lineCount - visibleLines)))
        let border = CellStyle(.heading)
        s.fill(box, " ", CellStyle(.normal))
        for y in box.y..<box.maxY {
            s.set(box.x, y, Cell("│", border))
            s.set(box.x + w - 1, y, Cell("│", border))
        }
        for x in box.x..<(box.x + w) {
            s.set(x, box.y, Cell("─", border))
            s.set(x, box.maxY - 1, Cell("─", border))
        }
        s.set(box.x, box.y, Cell("┌", border)); s.set(box.x + w - 1, box.y, Cell("┐", border))
        s.set(box.x, box.maxY - 1, Cell("└", border)); s.set(box.x + w - 1, box.maxY - 1, Cell("┘", border))
        s.put(box.x + 2, box.y, " blockscope keys and commands ", CellStyle(.tabActive), maxWidth: w - 4)
        let keyWidth = colWidth >= 70 ? 24 : 16
        for (c, column) in columns.enumerated() {
            let x0 = box.x + 2 + c * (colWidth + 3)
            for (i, l) in column.dropFirst(scroll).prefix(visibleLines).enumerated() {
                let y = box.y + 1 + i
                if l.heading {
                    s.put(x0, y, l.key, CellStyle(.heading), maxWidth: colWidth)
                } else {
                    s.put(x0, y, l.key, CellStyle(.key), maxWidth: colWidth)
                    s.put(x0 + keyWidth, y, l.text, CellStyle(.normal), maxWidth: colWidth - keyWidth)
                }
            }
        }
        let last = min(lineCount, scroll + visibleLines)
        let more = last < lineCount ? "↓ more" : "end"
        let footer = " lines \(scroll + 1)-\(last) of \(lineCount), \(more) · ↑↓ PgDn scroll · Esc close "
        s.put(box.x + max(1, w - 1 - footer.count), box.maxY - 1, footer, CellStyle(.footer), maxWidth: w - 2)
    }
}

import BlockInspect
import BlockCore
import Foundation

extension TUIApp {
    /// Draws a whole frame: title, tabs, the current view, overlays (help, a waiting
    /// `pause`), completion candidates, the status or prompt line, and the footer.
    package func render(width: Int, height: Int) -> ScreenModel {
        var s = ScreenModel(width: width, height: height)
        guard width >= 20, height >= 6 else {
            s.put(0, 0, "window too small", CellStyle(.warning)); return s
        }
        let img = state.image
        let mode = state.stepMode ? " STEP " : state.paused ? " PAUSED " : state.busy ? " RUNNING " : scriptHeld.map { " \($0) " } ?? ""
        let title = titleText(width: width - mode.count - 1)
        s.put(0, 0, title.padded(width), CellStyle(.footer))
        if !mode.isEmpty { s.put(max(0, width - mode.count - 1), 0, mode, CellStyle(state.stepMode || state.paused || scriptHeld != nil ? .warning : .ok, [.reverse])) }
        // Tab bar: every tab on one line, the longest inactive titles abbreviated to fit.
        var x = 0
        var hits: [(Range<Int>, Int)] = []
        for (i, label) in tabLabels(width: width).enumerated() {
            let start = x
            x = s.put(x, 1, label, CellStyle(i == current ? .tabActive : .tabInactive))
            hits.append((start..<x, i))
            x = s.put(x, 1, " ", CellStyle(.normal))
        }
        setTabHits(hits)
        let area = Rect(x: 0, y: 2, width: width, height: height - 4)
        currentView.draw(&s, area, state)
        if let text = pauseText { drawPause(&s, area, text) }
        if var h = help {
            h.draw(&s, area)
            help = h
        }
        // Status or prompt line (with the completion candidates of the last Tab above it).
        if let p = prompt {
            let line = p.label + p.text
            s.put(0, height - 2, line.padded(width), CellStyle(.prompt))
            let cx = min(width - 1, line.count)
            if p.kind == .command, let more = completer.suggestion(p.text) {
                s.put(cx + 1, height - 2, more + "  (Tab)", CellStyle(.prompt, [.underline]), maxWidth: max(0, width - cx - 1))
            }
            s.set(cx, height - 2, Cell("▏", CellStyle(.prompt, [.bold])))
            if !p.candidates.isEmpty {
                let list = "Tab: " + p.candidates.joined(separator: "  ")
                s.put(0, height - 3, list.padded(width), CellStyle(.footer), maxWidth: width)
            }
        } else {
            // A status longer than the line wraps upwards over the view's last rows (three at most).
            let lines = state.status.text.count <= width ? [state.status.text] : Array(TextWrap.lines(state.status.text, width: width).prefix(3))
            for (k, l) in lines.enumerated() {
                let y = height - 1 - lines.count + k
                s.put(0, y, k == lines.count - 1 ? l : l.padded(width), CellStyle(state.status.role), maxWidth: width)
            }
        }
        drawFooter(&s, width: width, height: height)
        return s
    }

    /// The title line, shortened to `width` by dropping the least useful words first (the
    /// colour depth, then the version, then the program name; never NO_COLOR or the mode).
    func titleText(width: Int) -> String {
        let img = state.image
        let name = URL(fileURLWithPath: img.path).lastPathComponent
        let rest = "\(name)  \(img.format.rawValue) \(formatBytes(Double(img.guestSize)))  \(img.writable ? "read-write" : "read-only")  theme \(state.themeName)"
        let colour = state.noColor ? " (NO_COLOR)" : state.colorDepth.isEmpty ? "" : " (\(state.colorDepth))"
        let kept = state.noColor ? colour : ""
        let program = " blockscope \(BlockScopeUI.version)  "
        let choices = [program + rest + colour, program + rest + kept, " blockscope  " + rest + kept, " " + rest + kept]
        return choices.first { $0.count <= width } ?? choices.last!
    }

    /// Short tab titles for narrow terminals (each a prefix `:view` accepts).
    static let shortTabTitles = ["Overview": "Overv", "Tables": "Tabl", "Refcounts": "Refc", "In-flight": "In-fl", "Completions": "Compl", "Diagnosis": "Diag"]

    /// The tab bar's labels (" 1 Overview "), each followed by one space when drawn. When the
    /// whole titles do not fit in `width`, inactive tabs take their short titles, longest
    /// first, until the bar fits (the current tab keeps its whole title); then inactive tabs
    /// show only their numbers, longest first; then the current tab takes its short title.
    func tabLabels(width: Int) -> [String] {
        var titles = views.map(\.title)
        func total() -> Int { titles.enumerated().reduce(0) { $0 + " \($1.offset + 1) \($1.element) ".count + 1 } - 1 }
        let order = titles.indices.filter { Self.shortTabTitles[titles[$0]] != nil }
            .sorted { (titles[$0].count, $1) > (titles[$1].count, $0) }
        for i in order where i != current && total() > width { titles[i] = Self.shortTabTitles[titles[i]]! }
        let inactive = titles.indices.filter { $0 != current }.sorted { (titles[$0].count, $1) > (titles[$1].count, $0) }
        for i in inactive where total() > width { titles[i] = "" }
        if total() > width, let short = Self.shortTabTitles[titles[current]] { titles[current] = short }
        if total() > width { titles = titles.indices.map { $0 == current ? titles[$0] : "" } }
        return titles.enumerated().map { $0.element.isEmpty ? " \($0.offset + 1) " : " \($0.offset + 1) \($0.element) " }
    }

    /// The footer: a running whole-image walk's progress and `x stop walk` first, the view's
    /// keys, then the global ones that apply here (search and goto only where the view has
    /// them); `? help  q quit` always fits at the right.
    func drawFooter(_ s: inout ScreenModel, width: Int, height: Int) {
        s.fill(Rect(x: 0, y: height - 1, width: width, height: 1), " ", CellStyle(.footer))
        let tail: [(String, String)] = help != nil ? [("Esc", "close help")] : pauseText != nil ? [("any key", "continue")] : [("?", "help"), ("q", "quit")]
        let tailWidth = tail.reduce(0) { $0 + $1.0.count + $1.1.count + 3 }
        var fx = 0
        if help == nil, pauseText == nil, let walk = state.image.inspector?.backgroundProgress {
            // A whole-image walk runs: its progress first, then the key that stops it.
            fx = s.put(fx, height - 1, " " + walk.text + " ", CellStyle(.warning, [.reverse]), maxWidth: max(0, width - tailWidth - 14))
            fx = s.put(fx, height - 1, " x", CellStyle(.key))
            fx = s.put(fx, height - 1, " stop walk ", CellStyle(.footer))
        }
        var global: [(String, String)] = []
        if !backStack.isEmpty { global.append(("Esc", "back to \(views[backStack.last!].title)")) }
        if let hint = currentView.searchHint {
            global.append(("/", hint))
            if lastSearch != nil { global.append(("n/N", "next/prev")) }
        }
        global.append(("g", currentView.gotoSpace.map { "goto \($0.rawValue)" } ?? "goto (hex)"))
        global += [(views.count > 9 ? "1-9,0/Tab" : "1-\(views.count)/Tab", "views"), (":", "cmd")]
        var items = currentView.keys + global
        if help != nil { items = [("↑↓ PgUp PgDn Home End", "scroll the help")] }
        if pauseText != nil { items = [("q", "quit")] }
        var seen = Set<String>()
        for (k, d) in items where !seen.contains(k) {
            seen.insert(k)
            if fx + k.count + d.count + 3 > width - tailWidth { break }
            fx = s.put(fx, height - 1, " " + k, CellStyle(.key))
            fx = s.put(fx, height - 1, " " + d + " ", CellStyle(.footer))
        }
        fx = max(fx, width - tailWidth)
        for (k, d) in tail {
            fx = s.put(fx, height - 1, " " + k, CellStyle(.key))
            fx = s.put(fx, height - 1, " " + d + " ", CellStyle(.footer))
        }
    }

    /// A `pause` box at the bottom of the view: its text wrapped, and how to go on.
    func drawPause(_ s: inout ScreenModel, _ area: Rect, _ text: String) {
        let w = min(area.width, 100)
        let lines = TextWrap.lines(text, width: w - 4)
        let h = min(area.height, lines.count + 3)
        let box = Rect(x: area.x + (area.width - w) / 2, y: area.maxY - h, width: w, height: h)
        s.fill(box, " ", CellStyle(.prompt))
        for (i, l) in lines.prefix(h - 3).enumerated() { s.put(box.x + 2, box.y + 1 + i, l, CellStyle(.prompt, [.bold]), maxWidth: w - 4) }
        s.put(box.x + 2, box.maxY - 1, "press any key to continue (q quits)", CellStyle(.prompt), maxWidth: w - 4)
    }
}

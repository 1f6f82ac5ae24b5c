import BlockCore
import Foundation

extension TUIApp {
    /// Draws a whole frame: title, tabs, the current view, status or prompt line, footer.
    public func render(width: Int, height: Int) -> ScreenModel {
        var s = ScreenModel(width: width, height: height)
        guard width >= 20, height >= 6 else {
            s.put(0, 0, "window too small", CellStyle(.warning)); return s
        }
        let img = state.image
        let mode = state.stepMode ? " STEP " : state.paused ? " PAUSED " : state.busy ? " RUNNING " : ""
        let title = " blockscope \(BlockScopeUI.version)  \(URL(fileURLWithPath: img.path).lastPathComponent)  \(img.format.rawValue) \(formatBytes(Double(img.guestSize)))  \(img.writable ? "read-write" : "read-only")  theme \(state.themeName)\(state.colorDepth.isEmpty ? "" : " (\(state.colorDepth))")"
        s.put(0, 0, title.padded(width), CellStyle(.footer))
        if !mode.isEmpty { s.put(max(0, width - mode.count - 1), 0, mode, CellStyle(state.stepMode || state.paused ? .warning : .ok, [.reverse])) }
        // Tab bar.
        var x = 0
        var hits: [(Range<Int>, Int)] = []
        for (i, v) in views.enumerated() {
            let label = " \(i + 1) \(v.title) "
            let start = x
            x = s.put(x, 1, label, CellStyle(i == current ? .tabActive : .tabInactive))
            hits.append((start..<x, i))
            x = s.put(x, 1, " ", CellStyle(.normal))
        }
        setTabHits(hits)
        let area = Rect(x: 0, y: 2, width: width, height: height - 4)
        currentView.draw(&s, area, state)
        if helpShown { HelpScreen.draw(&s, area) }
        // Status or prompt line.
        if let p = promptState {
            let line = p.kind.rawValue + p.text
            s.put(0, height - 2, line.padded(width), CellStyle(.prompt))
            s.set(min(width - 1, line.count), height - 2, Cell("▏", CellStyle(.prompt, [.bold])))
        } else {
            s.put(0, height - 2, state.status.text, CellStyle(state.status.role), maxWidth: width)
        }
        // Footer: the view's keys from the left, then the global ones; `? help  q quit` always fits at the right.
        s.fill(Rect(x: 0, y: height - 1, width: width, height: 1), " ", CellStyle(.footer))
        let tail: [(String, String)] = [("?", "help"), ("q", "quit")]
        let tailWidth = tail.reduce(0) { $0 + $1.0.count + $1.1.count + 3 }
        var fx = 0
        let global: [(String, String)] = [("1-8/Tab", "views"), (":", "cmd"), ("/", "find"), ("g", "goto")]
        var seen = Set<String>()
        for (k, d) in currentView.keys + global where !seen.contains(k) {
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
        return s
    }
}

/// The key reference shown by `?` or F1, drawn over the current view.
public enum HelpScreen {
    /// Every key of the TUI, grouped.
    public static let lines: [(String, String)] = [
        ("Views", ""),
        ("1 … 8, Tab, Shift-Tab", "switch view (Overview, L1/L2, Refcounts, Map, BAT, Hex, In-flight, Completions)"),
        ("mouse", "click a tab or a map cell; the wheel scrolls"),
        ("Commands", ""),
        (":", "command prompt: write OFF LEN [PAT], read OFF LEN [PAT], zero, discard, fsync, goto OFF, view NAME, theme NAME, job FILE"),
        ("/", "search in the current view (Map: a kind like compressed; Hex: text or 0xHEX)"),
        ("g", "go to a guest offset (Map, Hex, L1/L2)"),
        ("Workload", ""),
        ("space", "pause / resume the running workload"),
        ("s", "step mode: each press lets one event through and explains it; space or Esc leaves"),
        ("Navigation", ""),
        ("↑ ↓ ← → / h j k l", "move; PgUp PgDn Home End page"),
        ("Enter / Esc", "open (L2 table, hex at a map cell) / go back"),
        ("+ - 0, t", "Map: zoom in, out, fit; switch guest/host grid"),
        ("m", "Hex: switch between guest and host bytes"),
        ("General", ""),
        ("? / F1", "this help (any key closes it)"),
        ("q, Ctrl-C", "quit: stop the workload, flush and close the image, restore the terminal"),
    ]

    /// Draws the help box centred in `area`.
    public static func draw(_ s: inout ScreenModel, _ area: Rect) {
        let w = min(area.width - 4, 118), h = min(area.height - 2, lines.count + 4)
        let box = Rect(x: area.x + (area.width - w) / 2, y: area.y + 1, width: w, height: h)
        s.fill(box, " ", CellStyle(.normal))
        s.put(box.x, box.y, " blockscope keys ".padded(w), CellStyle(.tabActive))
        var y = box.y + 2
        for (k, v) in lines where y < box.maxY - 1 {
            if v.isEmpty {
                s.put(box.x + 2, y, k, CellStyle(.heading))
            } else {
                s.put(box.x + 4, y, k, CellStyle(.key))
                s.put(box.x + 28, y, v, CellStyle(.normal), maxWidth: w - 30)
            }
            y += 1
        }
        s.put(box.x, box.maxY - 1, " press any key ".padded(w), CellStyle(.footer))
    }
}

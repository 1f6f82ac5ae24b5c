import CNCurses
#if canImport(Glibc)
import Glibc
#endif

/// The terminal, through ncurses: set-up and restore, drawing a ``ScreenModel``, reading input.
///
/// All curses calls and C globals stay inside this type (reached through CNCurses' accessor
/// functions, which Swift 6 can call safely). Curses is not thread-safe: the owner uses one
/// `Terminal` from one thread (the UI loop).
package final class Terminal {
    private let window: UnsafeMutablePointer<WINDOW>
    private var theme: Theme
    /// The colour depth in use.
    package private(set) var depth: ColorDepth
    /// Whether mouse reporting is on.
    package let mouse: Bool
    /// How mouse reports arrive: "SGR 1006" (columns beyond 223 work), decoded by curses
    /// when terminfo's `kmous` asks for it, else by ``read(timeoutMs:)`` after enabling mode
    /// 1006 itself; a terminal without 1006 keeps sending X10 reports, which curses decodes.
    package private(set) var mouseEncoding = "off"
    /// Whether this type decodes SGR reports itself (terminfo expects X10).
    private var decodeSGR = false
    private var ended = false
    private var wideBuffer: [wchar_t] = []

    /// Initialises curses: locale, raw keys, no echo, keypad, hidden cursor, colours, mouse.
    ///
    /// The corresponding C functions are `setlocale`, `initscr`, `cbreak`, `noecho`,
    /// `keypad`, `start_color`, `use_default_colors` and `mousemask`. With `noColor`
    /// (`NO_COLOR`) no colour pairs are used, only attributes. Call ``end()`` (or let the
    /// object go) to restore the terminal.
    package init(theme: Theme, mouse: Bool, noColor: Bool = false) throws(BlockScopeUIError) {
        setlocale(LC_ALL, "")
        if getenv("ESCDELAY") == nil { setenv("ESCDELAY", "25", 0) }
        guard let w = initscr() else { throw BlockScopeUIError("cannot initialise the terminal (is TERM set?)") }
        window = w
        self.theme = theme
        self.mouse = mouse
        raw()
        noecho()
        nonl()
        keypad(w, true)
        curs_set(0)
        wtimeout(w, 50)
        var d = ColorDepth.monochrome
        if has_colors() {
            start_color()
            use_default_colors()
            d = ColorDepth(colors: Int(bs_colors()))
        }
        if noColor { d = .monochrome }
        depth = d
        if mouse {
            mousemask(bs_click_and_wheel_mask(), nil)
            mouseinterval(0)
            if bs_key_defined("\u{1b}[<") == bs_key_mouse() {
                mouseEncoding = "SGR 1006"
            } else {
                // terminfo says X10 (tmux-256color, screen): ask for SGR 1006 and decode it here.
                Terminal.writeControl("\u{1b}[?1006h")
                decodeSGR = true
                mouseEncoding = "SGR 1006, X10 fallback"
            }
        }
        applyTheme(theme)
    }

    deinit { end() }

    /// Restores the terminal (the corresponding C function is `endwin`); safe to call twice.
    package func end() {
        if ended { return }
        ended = true
        if mouse { mousemask(0, nil) }
        if decodeSGR { Terminal.writeControl("\u{1b}[?1006l") }
        endwin()
    }

    /// Current size in columns and rows.
    ///
    /// Checks the real size with `TIOCGWINSZ` first and calls `resizeterm` when curses
    /// missed a change, so a resize always redraws at the right size.
    package var size: (width: Int, height: Int) {
        if bs_sync_size() != 0 { clearok(window, true) }
        return (Int(bs_cols()), Int(bs_lines()))
    }

    /// Switches themes: defines one colour pair per ``Role``.
    package func applyTheme(_ theme: Theme) {
        self.theme = theme
        guard depth != .monochrome else { return }
        for (i, role) in Role.allCases.enumerated() {
            let (fg, bg) = depth.pair(theme.style(role), darkTerminal: theme.darkTerminal)
            _ = bs_init_pair(Int32(i + 1), fg, bg)
        }
    }

    private func attributes(_ style: CellStyle) -> (attrs: UInt32, pair: Int32) {
        let rs = theme.style(style.role)
        var a = rs.attributes.union(style.attributes)
        var pair: Int32 = 0
        if depth == .monochrome {
            a.formUnion(Theme.monochromeFallback(style.role).attributes)
        } else {
            pair = Int32(Role.allCases.firstIndex(of: style.role)! + 1)
        }
        var bits: UInt32 = 0
        if a.contains(.bold) { bits |= bs_a_bold() }
        if a.contains(.reverse) { bits |= bs_a_reverse() }
        if a.contains(.underline) { bits |= bs_a_underline() }
        return (bits, pair)
    }

    /// Copies a screen model to the terminal and refreshes (the corresponding C functions are
    /// `wattr_set`, `mvwaddnwstr` and `wrefresh`; curses sends only what changed).
    package func present(_ screen: ScreenModel) {
        let (w, h) = size
        werase(window)
        for y in 0..<min(h, screen.height) {
            var x = 0
            let rowWidth = min(w, screen.width)
            while x < rowWidth {
                let style = screen[x, y]!.style
                var end = x
                wideBuffer.removeAll(keepingCapacity: true)
                while end < rowWidth, let c = screen[end, y], c.style == style {
                    // The bottom-right cell cannot be written without scrolling: leave it.
                    if y == h - 1 && end == w - 1 { break }
                    let scalar = c.character.unicodeScalars.first ?? " "
                    wideBuffer.append(wchar_t(bitPattern: scalar.value))
                    end += 1
                }
                if end == x { break }
                let (attrs, pair) = attributes(style)
                _ = bs_set_style(window, attrs, pair)
                wideBuffer.append(0)
                _ = wideBuffer.withUnsafeBufferPointer { bs_put_wide(window, Int32(y), Int32(x), $0.baseAddress, Int32(end - x)) }
                x = end
            }
        }
        _ = bs_set_style(window, 0, 0)
        wrefresh(window)
    }

    /// Waits up to `timeoutMs` for input; nil when none came.
    package func read(timeoutMs: Int32) -> InputEvent? {
        wtimeout(window, timeoutMs)
        var ch: UInt32 = 0
        let r = bs_get_wch(window, &ch)
        if r == ERR { return Terminal.inputGone() ? .hangup : nil }
        if r == bs_key_code_yes() { return functionKey(Int32(bitPattern: ch)) }
        switch ch {
        case 3: return .char("\u{03}")
        case 9: return .tab
        case 10, 13: return .enter
        case 27:
            guard decodeSGR else { return .escape }
            switch readSGRMouse() {
            case let .event(e): return e
            case .ignored: return nil
            case .notMouse: return .escape
            }
        case 8, 127: return .backspace
        default:
            guard let s = Unicode.Scalar(ch), ch >= 32 else { return nil }
            return .char(Character(s))
        }
    }

    /// Writes a control sequence straight to the terminal (mode switches curses does not know).
    private static func writeControl(_ s: String) {
        var bytes = Array(s.utf8)
        _ = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
    }

    /// What followed an ESC: an SGR mouse report, a report to ignore (motion, release), or
    /// not a mouse report (then the ESC was the Escape key; what was read is pushed back).
    enum SGRRead {
        case event(InputEvent)
        case ignored
        case notMouse
    }

    /// Reads `[<b;x;yM` (or `m`) after an ESC: curses has usually queued the rest already;
    /// a report split across reads gets 15 ms per character to arrive.
    private func readSGRMouse() -> SGRRead {
        var consumed: [UInt32] = []
        func next() -> UInt32? {
            wtimeout(window, 15)
            var ch: UInt32 = 0
            let r = bs_get_wch(window, &ch)
            guard r != ERR, r != bs_key_code_yes() else { return nil }
            consumed.append(ch)
            return ch
        }
        func giveBack() -> SGRRead {
            for c in consumed.reversed() { _ = bs_unget_wch(c) }
            return .notMouse
        }
        guard next() == 0x5b, next() == 0x3c else { return giveBack() }   // "[<"
        var body = ""
        while body.count < 24, let c = next() {
            if c == 0x4d || c == 0x6d {   // 'M' press, 'm' release
                return Terminal.decodeSGRMouse(body, pressed: c == 0x4d).map { .event($0) } ?? .ignored
            }
            guard let u = Unicode.Scalar(c), u == ";" || ("0"..."9").contains(u) else { return giveBack() }
            body.unicodeScalars.append(u)
        }
        return giveBack()
    }

    /// Decodes the body of an SGR 1006 mouse report (`b;x;y`, 1-based cells) into a click
    /// (button 1 pressed) or a wheel turn; nil for releases, motion and other buttons.
    static func decodeSGRMouse(_ body: String, pressed: Bool) -> InputEvent? {
        let f = body.split(separator: ";").compactMap { Int($0) }
        guard f.count == 3, f[1] >= 1, f[2] >= 1 else { return nil }
        let (b, x, y) = (f[0], f[1] - 1, f[2] - 1)
        if b & 64 != 0 { return pressed ? .wheel(up: b & 1 == 0, x: x, y: y) : nil }
        if b & 32 != 0 || !pressed { return nil }
        return b & 3 == 0 ? .click(x: x, y: y) : nil
    }

    /// Whether the terminal on stdin hung up or closed (a killed tmux pane, a lost ssh
    /// session): curses then returns ERR at once forever, so the app would spin.
    static func inputGone() -> Bool {
        var p = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, 0) < 0 { return false }
        return p.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0
    }

    private func functionKey(_ k: Int32) -> InputEvent? {
        switch k {
        case bs_key_up(): return .up
        case bs_key_down(): return .down
        case bs_key_left(): return .left
        case bs_key_right(): return .right
        case bs_key_ppage(): return .pageUp
        case bs_key_npage(): return .pageDown
        case bs_key_home(): return .home
        case bs_key_end(): return .end
        case bs_key_backspace(): return .backspace
        case bs_key_enter(): return .enter
        case bs_key_btab(): return .backTab
        case bs_key_resize(): return .resize
        case bs_key_mouse():
            var ev = MEVENT()
            guard getmouse(&ev) == OK else { return nil }
            let x = Int(ev.x), y = Int(ev.y)
            if ev.bstate & bs_button4_pressed() != 0 { return .wheel(up: true, x: x, y: y) }
            if ev.bstate & bs_button5_pressed() != 0 { return .wheel(up: false, x: x, y: y) }
            if ev.bstate & bs_button1_clicked() != 0 { return .click(x: x, y: y) }
            return nil
        default:
            for n in 1...12 where k == bs_key_f(Int32(n)) { return .function(n) }
            return nil
        }
    }
}

/// An error of the terminal UI (terminal set-up, bad arguments), with a message for the user.
package struct BlockScopeUIError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    package var description: String
    /// Creates an error.
    package init(_ message: String) { description = message }
}

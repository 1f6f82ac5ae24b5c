/// How many colours the terminal can show; themes written in 24-bit degrade to it.
package enum ColorDepth: Sendable, Equatable {
    /// No colours: attributes only.
    case monochrome
    /// The eight ANSI colours.
    case ansi8
    /// The xterm 256-colour palette.
    case ansi256
    /// 24-bit colour (terminfo `*-direct`, where a colour number is `0xRRGGBB`).
    case direct

    /// The depth for a terminal reporting `colors` colours (curses' `COLORS`).
    package init(colors: Int) {
        if colors >= 0x1000000 { self = .direct }
        else if colors >= 256 { self = .ansi256 }
        else if colors >= 8 { self = .ansi8 }
        else { self = .monochrome }
    }

    static let basic: [(UInt8, UInt8, UInt8)] = [
        (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
        (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    ]

    /// The curses colour number for a theme colour at this depth; -1 is the terminal default.
    package func index(_ color: ThemeColor) -> Int32 {
        guard case let .rgb(r, g, b) = color else { return -1 }
        switch self {
        case .monochrome: return -1
        case .direct: return Int32(r) << 16 | Int32(g) << 8 | Int32(b)
        case .ansi8:
            return Int32(ColorDepth.nearest(r, g, b, in: ColorDepth.basic))
        case .ansi256:
            let levels: [Int] = [0, 95, 135, 175, 215, 255]
            func cubeIndex(_ v: UInt8) -> Int {
                var best = 0
                for (i, l) in levels.enumerated() where abs(l - Int(v)) < abs(levels[best] - Int(v)) { best = i }
                return best
            }
            let (ci, cj, ck) = (cubeIndex(r), cubeIndex(g), cubeIndex(b))
            let cube = (levels[ci], levels[cj], levels[ck])
            let avg = (Int(r) + Int(g) + Int(b)) / 3
            let grayStep = max(0, min(23, (avg - 8 + 5) / 10))
            let gray = 8 + 10 * grayStep
            let dc = ColorDepth.dist(r, g, b, cube.0, cube.1, cube.2)
            let dg = ColorDepth.dist(r, g, b, gray, gray, gray)
            return dg < dc ? Int32(232 + grayStep) : Int32(16 + 36 * ci + 6 * cj + ck)
        }
    }

    static func dist(_ r: UInt8, _ g: UInt8, _ b: UInt8, _ x: Int, _ y: Int, _ z: Int) -> Int {
        let dr = Int(r) - x, dg = Int(g) - y, db = Int(b) - z
        return dr * dr + dg * dg + db * db
    }

    static func nearest(_ r: UInt8, _ g: UInt8, _ b: UInt8, in palette: [(UInt8, UInt8, UInt8)]) -> Int {
        var best = 0
        var bestD = Int.max
        for (i, p) in palette.enumerated() {
            let d = dist(r, g, b, Int(p.0), Int(p.1), Int(p.2))
            if d < bestD { best = i; bestD = d }
        }
        return best
    }

    /// Foreground and background numbers for a role, adjusted so text never disappears:
    /// when degrading maps the foreground onto the background (e.g. dark grey to black on a
    /// dark terminal), the foreground becomes the terminal default.
    package func pair(_ style: RoleStyle, darkTerminal: Bool) -> (fg: Int32, bg: Int32) {
        var fg = index(style.foreground)
        let bg = index(style.background)
        if self == .ansi8 || self == .ansi256 {
            let effectiveBg = bg >= 0 ? bg : (darkTerminal ? 0 : 7)
            if fg >= 0 && (fg == effectiveBg || (fg == 0 && effectiveBg == 16) || (fg == 16 && effectiveBg == 0)) {
                fg = -1
                if bg >= 0 { fg = (bg == 0 || bg == 16 || (bg >= 232 && bg < 244)) ? 7 : 0 }
            }
        }
        return (fg, bg)
    }
}

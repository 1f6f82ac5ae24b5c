import Foundation

/// A colour in a theme: the terminal's default, or a 24-bit RGB value.
package enum ThemeColor: Sendable, Hashable {
    /// The terminal's own foreground or background.
    case terminalDefault
    /// A 24-bit colour.
    case rgb(UInt8, UInt8, UInt8)

    /// The eight basic colour names and their conventional RGB values; `bright-` prefixes add intensity.
    static let named: [String: (UInt8, UInt8, UInt8)] = [
        "black": (0, 0, 0), "red": (205, 49, 49), "green": (13, 188, 121), "yellow": (229, 229, 16),
        "blue": (36, 114, 200), "magenta": (188, 63, 188), "cyan": (17, 168, 205), "white": (229, 229, 229),
        "bright-black": (102, 102, 102), "bright-red": (241, 76, 76), "bright-green": (35, 209, 139),
        "bright-yellow": (245, 245, 67), "bright-blue": (59, 142, 234), "bright-magenta": (214, 112, 214),
        "bright-cyan": (41, 184, 219), "bright-white": (255, 255, 255),
    ]

    /// Parses `default`, `#rrggbb` or a colour name; nil when malformed.
    package init?(parsing text: String) {
        let t = text.lowercased()
        if t == "default" || t == "none" { self = .terminalDefault; return }
        if t.hasPrefix("#"), t.count == 7, let v = UInt32(t.dropFirst(), radix: 16) {
            self = .rgb(UInt8(v >> 16), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)); return
        }
        if let (r, g, b) = ThemeColor.named[t] { self = .rgb(r, g, b); return }
        return nil
    }

    /// WCAG relative luminance (0 black ... 1 white); nil for the terminal default.
    package var luminance: Double? {
        guard case let .rgb(r, g, b) = self else { return nil }
        func lin(_ c: UInt8) -> Double {
            let s = Double(c) / 255
            return s <= 0.03928 ? s / 12.92 : pow((s + 0.055) / 1.055, 2.4)
        }
        return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    }
}

/// The foreground, background and attributes a theme gives one ``Role``.
package struct RoleStyle: Sendable, Hashable {
    /// Text colour.
    package var foreground: ThemeColor
    /// Cell background.
    package var background: ThemeColor
    /// Attributes (bold, reverse, underline).
    package var attributes: TextAttributes

    /// Creates a role style.
    package init(foreground: ThemeColor = .terminalDefault, background: ThemeColor = .terminalDefault, attributes: TextAttributes = []) {
        self.foreground = foreground
        self.background = background
        self.attributes = attributes
    }
}

/// A colour theme: a style per role, read from a small `key = value` file in `themes/`.
///
/// File format, one setting a line, `#` starts a comment:
/// ```
/// name = default
/// terminal = dark            # the background the terminal is assumed to have: dark or light
/// normal = #d0d0d0
/// heading = #5fafff bold
/// tabActive = #1c1c1c on #5fafff bold
/// ```
/// Comments start a line with `#` or follow a value as ` # `. A role's value is `FG [on BG] [bold] [reverse] [underline]`; colours are `default`,
/// `#rrggbb` or one of the sixteen ANSI names (`red`, `bright-blue`, ...). Roles a file does
/// not name use the monochrome fallback (terminal colours plus attributes).
public struct Theme: Sendable {
    /// The theme's name.
    package var name: String
    /// Whether the terminal background is assumed dark (for contrast checks against `default`).
    package var darkTerminal: Bool
    /// Styles per role.
    package var styles: [Role: RoleStyle]

    /// Creates a theme.
    package init(name: String, darkTerminal: Bool = true, styles: [Role: RoleStyle] = [:]) {
        self.name = name
        self.darkTerminal = darkTerminal
        self.styles = styles
    }

    /// The style of a role (the monochrome fallback when the theme does not set it).
    package func style(_ role: Role) -> RoleStyle {
        styles[role] ?? Theme.monochromeFallback(role)
    }

    /// Attributes that keep roles apart without colour (used by the monochrome theme and as the fallback).
    static func monochromeFallback(_ role: Role) -> RoleStyle {
        switch role {
        case .heading, .key: return RoleStyle(attributes: .bold)
        case .tabActive, .selected, .footer, .prompt, .written: return RoleStyle(attributes: .reverse)
        case .error, .warning: return RoleStyle(attributes: [.bold, .underline])
        case .l1, .l2, .refcount, .header: return RoleStyle(attributes: .bold)
        case .compressed, .snapshot: return RoleStyle(attributes: .underline)
        default: return RoleStyle()
        }
    }

    /// Parses a theme file. Errors name the line; unknown roles are errors so typos show.
    public static func parse(_ text: String, fallbackName: String = "theme") throws(ThemeError) -> Theme {
        var theme = Theme(name: fallbackName)
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            // Comments: a line starting with '#', or ' # ' after a value ('#' + hex is a colour).
            var line = Substring(raw)
            if line.drop(while: { $0 == " " || $0 == "\t" }).first == "#" { continue }
            if let r = line.range(of: " # ") ?? (line.hasSuffix(" #") ? line.range(of: " #", options: .backwards) : nil) {
                line = line[..<r.lowerBound]
            }
            let t = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.isEmpty { continue }
            guard let eq = t.firstIndex(of: "=") else { throw ThemeError(line: i + 1, message: "expected 'key = value'") }
            let key = t[..<eq].trimmingCharacters(in: .whitespaces)
            let value = t[t.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            switch key {
            case "name": theme.name = value
            case "terminal":
                guard value == "dark" || value == "light" else { throw ThemeError(line: i + 1, message: "terminal must be dark or light") }
                theme.darkTerminal = value == "dark"
            default:
                guard let role = Role(rawValue: key) else {
                    throw ThemeError(line: i + 1, message: "unknown role '\(key)' (roles: \(Role.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                theme.styles[role] = try parseStyle(value, line: i + 1)
            }
        }
        return theme
    }

    static func parseStyle(_ value: String, line: Int) throws(ThemeError) -> RoleStyle {
        var s = RoleStyle()
        let words = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        var i = 0
        var sawForeground = false
        while i < words.count {
            let w = words[i].lowercased()
            switch w {
            case "bold": s.attributes.insert(.bold)
            case "reverse": s.attributes.insert(.reverse)
            case "underline": s.attributes.insert(.underline)
            case "on":
                guard i + 1 < words.count, let c = ThemeColor(parsing: words[i + 1]) else {
                    throw ThemeError(line: line, message: "'on' needs a colour")
                }
                s.background = c
                i += 1
            default:
                guard !sawForeground, let c = ThemeColor(parsing: w) else {
                    throw ThemeError(line: line, message: "'\(words[i])' is not a colour (#rrggbb, default, or an ANSI name) or attribute")
                }
                s.foreground = c
                sawForeground = true
            }
            i += 1
        }
        return s
    }

    /// WCAG contrast ratio of a role's text against its background (the assumed terminal
    /// background when `default`); nil when both are the terminal's defaults.
    package func contrast(_ role: Role) -> Double? {
        let st = style(role)
        let termBg = darkTerminal ? 0.0 : 1.0
        let termFg = darkTerminal ? 1.0 : 0.0
        var fg = st.foreground.luminance ?? termFg
        var bg = st.background.luminance ?? termBg
        if st.foreground == .terminalDefault && st.background == .terminalDefault { return nil }
        if st.attributes.contains(.reverse) { swap(&fg, &bg) }
        let (hi, lo) = fg > bg ? (fg, bg) : (bg, fg)
        return (hi + 0.05) / (lo + 0.05)
    }
}

/// A theme file that could not be read.
public struct ThemeError: Error, CustomStringConvertible, Sendable {
    /// 1-based line number (0 when the file itself is missing).
    public var line: Int
    /// What is wrong.
    public var message: String
    /// "line N: message".
    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}


import Foundation

/// Finds and loads themes by name from the `themes/` folders blockscope knows.
///
/// Search order: `$BLOCKSCOPE_THEMES`, `./themes`, then `themes/` next to or above the
/// executable (a SwiftPM build directory or an install prefix's `share/blockscope/themes`).
/// A name containing `/` or ending `.theme` is a path. The default theme is built in, so the
/// TUI works without any theme files.
package enum ThemeLoader {
    /// The themes bundled in `themes/`.
    package static let bundledNames = ["default", "light", "high-contrast", "okabe-ito", "monochrome"]

    /// Folders searched for `NAME.theme`, in order.
    package static func searchPaths() -> [String] {
        var dirs: [String] = []
        if let env = ProcessInfo.processInfo.environment["BLOCKSCOPE_THEMES"] { dirs.append(env) }
        dirs.append(FileManager.default.currentDirectoryPath + "/themes")
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        var up = exe
        for _ in 0..<4 {
            dirs.append(up.appendingPathComponent("themes").path)
            dirs.append(up.appendingPathComponent("share/blockscope/themes").path)
            up = up.deletingLastPathComponent()
        }
        return dirs
    }

    /// Loads a theme by name or path.
    package static func load(_ name: String) throws(ThemeError) -> Theme {
        if name.contains("/") || name.hasSuffix(".theme") {
            return try loadFile(name)
        }
        for dir in searchPaths() {
            let p = dir + "/" + name + ".theme"
            if FileManager.default.fileExists(atPath: p) { return try loadFile(p) }
        }
        if name == "default" { return builtinDefault }
        if name == "monochrome" { return Theme(name: "monochrome") }
        throw ThemeError(line: 0, message: "theme '\(name)' not found (looked for \(name).theme in \(searchPaths().prefix(3).joined(separator: ", ")), ...; bundled: \(bundledNames.joined(separator: ", ")))")
    }

    /// Loads a theme file.
    package static func loadFile(_ path: String) throws(ThemeError) -> Theme {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ThemeError(line: 0, message: "cannot read theme file \(path)")
        }
        let base = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        do {
            return try Theme.parse(String(decoding: data, as: UTF8.self), fallbackName: base)
        } catch let e {
            throw ThemeError(line: e.line, message: "\(path): \(e.message)")
        }
    }

    /// The built-in dark theme (the same as themes/default.theme).
    package static let builtinDefault: Theme = (try? Theme.parse(builtinDefaultText, fallbackName: "default")) ?? Theme(name: "default")

    static let builtinDefaultText = """
    name = default
    terminal = dark
    normal = #d0d0d0
    dim = #9e9e9e
    heading = #5fafff bold
    tabActive = #1c1c1c on #5fafff bold
    tabInactive = #bcbcbc on #303030
    footer = #d0d0d0 on #303030
    key = #ffd75f on #303030 bold
    prompt = #ffffff on #005f87
    selected = #1c1c1c on #ffd75f
    ok = #5fd75f
    warning = #ffaf00 bold
    error = #ff5f5f bold
    header = #ff87ff bold
    l1 = #87afff bold
    l2 = #5fafff
    refcount = #d7af5f
    data = #5fd75f
    compressed = #00d7d7
    zero = #8a8a8a
    free = #808080
    backing = #af87ff
    snapshot = #ffafd7
    written = #1c1c1c on #ff8700 bold
    inflight = #ffd75f
    bar = #5fafff
    """
}

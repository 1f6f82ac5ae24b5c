import Foundation

/// `Tab` in the `:` prompt, k9s-style: completes the command name, then a view or theme
/// name, or a file path for `job`; the unique completion shows ahead of the cursor, dimmed.
package struct PromptCompleter: Sendable {
    /// Names `view` completes (lower-case, as `view NAME` accepts them).
    package var viewNames: [String]
    /// Names `theme` completes.
    package var themeNames: [String]
    /// The directory relative paths start from.
    package var directory: String

    /// Creates a completer.
    package init(viewNames: [String], themeNames: [String], directory: String = FileManager.default.currentDirectoryPath) {
        self.viewNames = viewNames
        self.themeNames = themeNames
        self.directory = directory
    }

    /// The word being completed, the text before it, and its candidates (full words).
    private func candidates(_ text: String) -> (before: String, word: String, options: [String]) {
        let endsWithSpace = text.last == " "
        var parts = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        let word = endsWithSpace || parts.isEmpty ? "" : parts.removeLast()
        let before = String(text.dropLast(word.count))
        if parts.isEmpty {
            return (before, word, PromptCommand.verbs.filter { $0.hasPrefix(word.lowercased()) })
        }
        guard parts.count == 1 else { return (before, word, []) }
        switch parts[0].lowercased() {
        case "view": return (before, word, viewNames.filter { $0.hasPrefix(word.lowercased()) })
        case "theme": return (before, word, themeNames.filter { $0.hasPrefix(word) } + paths(word).filter { $0.hasSuffix("/") || $0.hasSuffix(".theme") })
        case "job": return (before, word, paths(word))
        default: return (before, word, [])
        }
    }

    /// Files and directories (with a trailing `/`) whose path starts with `word`, sorted.
    func paths(_ word: String) -> [String] {
        let slash = word.lastIndex(of: "/")
        let dirPart = slash.map { String(word[...$0]) } ?? ""
        let prefix = slash.map { String(word[word.index(after: $0)...]) } ?? word
        let expanded = dirPart.hasPrefix("~") ? NSString(string: dirPart).expandingTildeInPath + "/" : dirPart
        let dir = expanded.hasPrefix("/") ? expanded : directory + "/" + expanded
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir) else { return [] }
        return names.filter { $0.hasPrefix(prefix) && (prefix.hasPrefix(".") || !$0.hasPrefix(".")) }.sorted().prefix(200).map { name in
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: dir + name, isDirectory: &isDir)
            return dirPart + name + (isDir.boolValue ? "/" : "")
        }
    }

    /// Applies `Tab`: the text completed as far as the candidates agree (a unique command,
    /// view or theme name gets a trailing space), and the candidates when more than one remain.
    package func complete(_ text: String) -> (text: String, candidates: [String]) {
        let c = candidates(text)
        guard let first = c.options.first else { return (text, []) }
        if c.options.count == 1 {
            return (c.before + first + (first.hasSuffix("/") ? "" : " "), [])
        }
        var common = first
        for o in c.options.dropFirst() {
            while !o.hasPrefix(common) { common.removeLast() }
        }
        return (c.before + (common.count > c.word.count ? common : c.word), c.options)
    }

    /// What `Tab` would add when exactly one candidate fits (drawn dimmed after the cursor).
    package func suggestion(_ text: String) -> String? {
        let c = candidates(text)
        guard c.options.count == 1, let only = c.options.first, only.count > c.word.count, only.hasPrefix(c.word) else { return nil }
        return String(only.dropFirst(c.word.count))
    }
}

import BlockCore

/// One command of blockscope's command language (scripts, `run`, and the TUI's `:` prompt).
public enum ScriptCommand: Sendable, Equatable {
    /// `write OFF LEN [PATTERN]`: write LEN bytes of PATTERN (a byte, default 0xcd).
    case write(offset: UInt64, length: UInt64, pattern: UInt8)
    /// `read OFF LEN [PATTERN]`: read, and verify every byte equals PATTERN when given.
    case read(offset: UInt64, length: UInt64, pattern: UInt8?)
    /// `zero OFF LEN`.
    case zero(offset: UInt64, length: UInt64)
    /// `discard OFF LEN`.
    case discard(offset: UInt64, length: UInt64)
    /// `fsync`.
    case fsync
    /// `job FILE.fio` (TUI and later issues).
    case job(path: String)
    /// `goto OFF` (TUI).
    case goto(offset: UInt64)
    /// `view NAME` (TUI).
    case view(name: String)
    /// `theme NAME` (TUI).
    case theme(name: String)

    /// Whether the command modifies the image (needs `--write`).
    public var isWrite: Bool {
        switch self {
        case .write, .zero, .discard: return true
        case .job: return true
        default: return false
        }
    }
}

/// A parsed command with the line it came from.
public struct ScriptLine: Sendable, Equatable {
    /// 1-based line number.
    public var line: Int
    /// The command.
    public var command: ScriptCommand
}

/// Parses blockscope's command language: one command a line, `#` comments, sizes with
/// k/M/G/T suffixes (powers of 1024) or `0x` hex.
public enum CommandScript {
    /// Parses a size such as `4k`, `1M`, `0x1000`, `512` (see ``parseByteSize(_:)``).
    public static func parseSize(_ s: String) -> UInt64? { parseByteSize(s) }

    /// Parses a whole script. Errors name the source, line and column.
    public static func parse(_ text: String, source: String = "script") throws(BlockError) -> [ScriptLine] {
        var out: [ScriptLine] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if let c = try parseLine(String(raw), line: i + 1, source: source) {
                out.append(ScriptLine(line: i + 1, command: c))
            }
        }
        return out
    }

    /// Parses one line; nil for blank and comment lines.
    public static func parseLine(_ raw: String, line: Int = 1, source: String = "command") throws(BlockError) -> ScriptCommand? {
        var text = raw
        if let hash = text.firstIndex(of: "#") { text = String(text[..<hash]) }
        // Tokens with their 1-based columns.
        var tokens: [(String, Int)] = []
        var cur = ""
        var start = 0
        for (i, ch) in text.enumerated() {
            if ch == " " || ch == "\t" || ch == "\r" {
                if !cur.isEmpty { tokens.append((cur, start + 1)); cur = "" }
            } else {
                if cur.isEmpty { start = i }
                cur.append(ch)
            }
        }
        if !cur.isEmpty { tokens.append((cur, start + 1)) }
        guard let (verb, vcol) = tokens.first else { return nil }

        func fail(_ col: Int, _ msg: String) -> BlockError {
            BlockError(.invalidArgument, "line \(line), column \(col): \(msg)", path: source)
        }
        func size(_ idx: Int, _ what: String) throws(BlockError) -> UInt64 {
            guard idx < tokens.count else {
                throw fail(text.count + 1, "'\(verb)' needs \(what)")
            }
            guard let v = parseSize(tokens[idx].0) else {
                throw fail(tokens[idx].1, "'\(tokens[idx].0)' is not a size (use a number with an optional k/M/G suffix, or 0x hex)")
            }
            return v
        }
        func pattern(_ idx: Int) throws(BlockError) -> UInt8? {
            guard idx < tokens.count else { return nil }
            let t = tokens[idx].0.lowercased()
            let v = t.hasPrefix("0x") ? UInt64(t.dropFirst(2), radix: 16) : UInt64(t)
            guard let v, v <= 255 else { throw fail(tokens[idx].1, "pattern '\(tokens[idx].0)' is not a byte (0..255 or 0x00..0xff)") }
            return UInt8(v)
        }
        func arity(_ n: Int) throws(BlockError) {
            if tokens.count > n { throw fail(tokens[n].1, "unexpected '\(tokens[n].0)' after '\(verb)'") }
        }
        func word(_ what: String) throws(BlockError) -> String {
            guard tokens.count >= 2 else { throw fail(text.count + 1, "'\(verb)' needs \(what)") }
            try arity(2)
            return tokens[1].0
        }

        switch verb.lowercased() {
        case "write":
            let off = try size(1, "an offset"), len = try size(2, "a length")
            let p = try pattern(3)
            try arity(4)
            return .write(offset: off, length: len, pattern: p ?? 0xcd)
        case "read":
            let off = try size(1, "an offset"), len = try size(2, "a length")
            let p = try pattern(3)
            try arity(4)
            return .read(offset: off, length: len, pattern: p)
        case "zero":
            let off = try size(1, "an offset"), len = try size(2, "a length")
            try arity(3)
            return .zero(offset: off, length: len)
        case "discard", "trim":
            let off = try size(1, "an offset"), len = try size(2, "a length")
            try arity(3)
            return .discard(offset: off, length: len)
        case "fsync", "flush":
            try arity(1)
            return .fsync
        case "job": return .job(path: try word("a job file"))
        case "goto", "g": return .goto(offset: try size(1, "an offset"))
        case "view": return .view(name: try word("a view name"))
        case "theme": return .theme(name: try word("a theme name"))
        default:
            throw fail(vcol, "unknown command '\(verb)' (expected write, read, zero, discard, fsync, job, goto, view or theme)")
        }
    }
}

import BlockIO

/// One command of blockscope's command language (scripts, `run`, and the TUI's `:` prompt).
///
/// These are the engine's words: I/O, jobs and pacing. Commands that steer a terminal UI
/// (`goto`, `view`, `theme`, `pause`) belong to that UI's own prompt type, which hands
/// every other line to ``CommandScript/parseLine(_:line:source:)``.
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
    /// `job FILE.fio`: run a fio-style job file (the TUI runs it on a workload; `run` takes
    /// job files as a whole file instead).
    case job(path: String)
    /// `sleep DURATION` (`500ms`, `2s`, `1.5s`, `100us`, `1m`; a bare number is seconds):
    /// wait before the next command, so a script can pace a tour. Nanoseconds.
    case sleep(nanoseconds: UInt64)

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

    /// The verbs ``parseLine(_:line:source:)`` knows, in the order help texts list them.
    public static let verbs = ["write", "read", "zero", "discard", "fsync", "sleep", "job"]

    /// Parses a duration: a number (fractions allowed) with an optional unit `ns`, `us`
    /// (or `µs`), `ms`, `s`, `m`; a bare number is seconds. Nil when malformed, negative or
    /// longer than a day (a typo such as `sleep 500` meant as milliseconds stays visible).
    public static func parseDuration(_ text: String) -> UInt64? {
        let t = text.lowercased()
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9)]
        var number = Substring(t)
        var scale = 1e9
        for (u, f) in units where t.hasSuffix(u) {
            number = t.dropLast(u.count)
            scale = f
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }), let v = Double(number) else { return nil }
        let ns = v * scale
        guard ns.isFinite, ns >= 0, ns <= 86_400e9 else { return nil }
        return UInt64(ns.rounded())
    }

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
        case "sleep":
            let w = try word("a duration such as 500ms or 2s")
            guard let ns = parseDuration(w) else {
                throw fail(tokens[1].1, "'\(w)' is not a duration (use 500ms, 2s, 1.5s, 100us or 1m; at most a day)")
            }
            return .sleep(nanoseconds: ns)
        default:
            throw fail(vcol, "unknown command '\(verb)' (expected \(verbs.dropLast().joined(separator: ", ")) or \(verbs.last!))")
        }
    }
}

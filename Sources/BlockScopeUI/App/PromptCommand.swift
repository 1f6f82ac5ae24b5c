import BlockCore
import BlockEngine

/// One command of the TUI's `:` prompt and of `tui --script` files: the engine's command
/// language (I/O, `sleep`, `job`) plus the words that steer the UI.
///
/// The UI words live here, not in BlockEngine's ``ScriptCommand``: `blockscope run` has no
/// views to switch. ``parse(_:line:source:)`` reads the UI words itself and hands every
/// other line to ``CommandScript/parseLine(_:line:source:)``.
public enum PromptCommand: Sendable, Equatable {
    /// A command of the engine's language (write, read, zero, discard, fsync, sleep, job).
    case engine(ScriptCommand)
    /// `goto OFF`: move the current view to an offset (guest or host, as the view's toggle says).
    case goto(offset: UInt64)
    /// `view NAME`: switch to a view by name prefix.
    case view(name: String)
    /// `theme NAME`: switch themes.
    case theme(name: String)
    /// `pause [TEXT]`: show TEXT (or "paused") and wait for a key before the next script line.
    case pause(text: String?)
    /// `help`: open the key and command reference.
    case help
    /// `quit` (`q`): close the image and leave.
    case quit

    /// What the help and the completion list say about each command: (usage, what it does).
    /// The first word of a usage is the verb `Tab` completes.
    public static let reference: [(usage: String, summary: String)] = [
        ("write OFF LEN [PAT]", "write LEN bytes of byte PAT (default 0xcd) at guest OFF (needs --write)"),
        ("read OFF LEN [PAT]", "read LEN bytes at OFF; with PAT verify every byte"),
        ("zero OFF LEN", "write zeroes (a zero cluster where the format has one)"),
        ("discard OFF LEN", "discard (trim) a range"),
        ("fsync", "flush data and metadata to the file"),
        ("sleep DURATION", "wait (500ms, 2s, 1.5s, 1m) before the next script line"),
        ("job FILE.fio", "run a fio-style job file on the workload (space pauses it)"),
        ("goto OFF", "go to an offset in the view's space (guest, or host when its toggle says so)"),
        ("view NAME", "switch view: overview, l1l2, refcounts, map, bat, hex, inflight, completions"),
        ("theme NAME", "switch theme: default, light, high-contrast, okabe-ito, monochrome, or a .theme path"),
        ("pause [TEXT]", "show TEXT and wait for a key (guided tours)"),
        ("help", "this reference"),
        ("quit", "close the image and leave (also q)"),
    ]

    /// Every verb the prompt accepts, for completion.
    public static var verbs: [String] { reference.map { String($0.usage.split(separator: " ")[0]) } }

    /// Parses one prompt or script line; nil for blank and comment lines. Errors name the
    /// source, line and column as the engine's parser does.
    public static func parse(_ raw: String, line: Int = 1, source: String = "command") throws(BlockError) -> PromptCommand? {
        var text = raw
        if let hash = text.firstIndex(of: "#") { text = String(text[..<hash]) }
        let trimmed = text.drop { $0 == " " || $0 == "\t" }
        let verbEnd = trimmed.firstIndex { $0 == " " || $0 == "\t" || $0 == "\r" } ?? trimmed.endIndex
        let verb = trimmed[..<verbEnd].lowercased()
        let rest = trimmed[verbEnd...].trimmingCharacters(in: .whitespacesAndNewlines)
        let args = rest.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let column = text.count - trimmed.count + 1
        func fail(_ msg: String, column c: Int = column) -> BlockError {
            BlockError(.invalidArgument, "line \(line), column \(c): \(msg)", path: source)
        }
        func one(_ what: String) throws(BlockError) -> String {
            guard let a = args.first else { throw fail("'\(verb)' needs \(what)", column: text.count + 1) }
            if args.count > 1 { throw fail("unexpected '\(args[1])' after '\(verb) \(a)'") }
            return a
        }
        switch verb {
        case "": return nil
        case "goto", "g":
            let a = try one("an offset")
            guard let off = CommandScript.parseSize(a) else { throw fail("'\(a)' is not an offset (try 0x10000 or 64k)") }
            return .goto(offset: off)
        case "view": return .view(name: try one("a view name"))
        case "theme": return .theme(name: try one("a theme name"))
        case "pause": return .pause(text: rest.isEmpty ? nil : rest)
        case "help", "?":
            return .help
        case "quit", "q":
            return .quit
        default:
            guard CommandScript.verbs.contains(verb) || verb == "trim" || verb == "flush" else {
                throw fail("unknown command '\(verb)' (expected \(verbs.dropLast().joined(separator: ", ")) or \(verbs.last!); Tab completes)")
            }
            return try CommandScript.parseLine(raw, line: line, source: source).map { .engine($0) }
        }
    }

    /// Parses a whole `tui --script` file: one command a line, `#` comments.
    public static func parseScript(_ text: String, source: String) throws(BlockError) -> [(line: Int, command: PromptCommand)] {
        var out: [(line: Int, command: PromptCommand)] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if let c = try parse(String(raw), line: i + 1, source: source) { out.append((i + 1, c)) }
        }
        return out
    }
}

import BlockCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension TUIApp {
    /// Runs the TUI on the terminal until `q`: pumps events, draws at least 10 frames a
    /// second (every 50 ms while a workload runs, every 100 ms when idle, at once after a
    /// key), restores the terminal on the way out.
    /// Returns the exit status.
    public func run(mouse: Bool) throws(BlockScopeUIError) -> Int32 {
        guard isatty(1) != 0, isatty(0) != 0 else {
            throw BlockScopeUIError("the TUI needs a terminal on stdin and stdout (use `blockscope info` for text output)")
        }
        let term = try Terminal(theme: theme, mouse: mouse)
        onThemeChange = { term.applyTheme($0) }
        switch term.depth {
        case .monochrome: state.colorDepth = "no colour"
        case .ansi8: state.colorDepth = "8 colours"
        case .ansi256: state.colorDepth = "256 colours"
        case .direct: state.colorDepth = "24-bit colour"
        }
        defer { term.end() }
        let started = monotonicNanos()
        var frames = 0
        while !quitRequested {
            pump()
            let (w, h) = term.size
            term.present(render(width: w, height: h))
            frames += 1
            if let e = term.read(timeoutMs: state.busy ? 50 : 100) {
                handle(e)
                var n = 0
                while n < 64, !quitRequested, let more = term.read(timeoutMs: 0) { handle(more); n += 1 }
            }
        }
        term.end()
        shutdown()
        if let p = options.statsPath {
            let secs = Double(monotonicNanos() - started) / 1e9
            let stats: JSONValue = .object([("frames", .int(Int64(frames))), ("seconds", .double(secs)),
                                            ("fps", .double(secs > 0 ? Double(frames) / secs : 0)),
                                            ("jobs", .array(finishedJobs.map { .string($0) }))])
            FileManager.default.createFile(atPath: p, contents: Data((stats.render(pretty: false) + "\n").utf8))
        }
        return 0
    }
}

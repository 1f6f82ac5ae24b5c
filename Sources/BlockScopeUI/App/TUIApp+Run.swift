import BlockCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension TUIApp {
    /// Runs the TUI on the terminal until `q`: pumps events, draws at least 10 frames a
    /// second (every 50 ms while a workload runs, every 100 ms when idle, at once after a
    /// key). `q` closes the image on another thread while a progress box shows each step
    /// ("flushing metadata… 3/5"), then the terminal is restored; the caller prints
    /// ``closingLine`` after that. SIGINT, SIGTERM and SIGHUP quit the same way (the signal
    /// is kept in ``quitSignal``). Returns the exit status (1 when closing failed).
    package func run(mouse: Bool) throws(BlockScopeUIError) -> Int32 {
        guard isatty(1) != 0, isatty(0) != 0 else {
            throw BlockScopeUIError("the TUI needs a terminal on stdin and stdout (use `blockscope info` for text output)")
        }
        let previousHandlers = QuitSignals.install()
        defer { QuitSignals.restore(previousHandlers) }
        let term = try Terminal(theme: theme, mouse: mouse, noColor: options.noColor)
        onThemeChange = { term.applyTheme($0) }
        switch term.depth {
        case .monochrome: state.colorDepth = "no colour"
        case .ansi8: state.colorDepth = "8 colours"
        case .ansi256: state.colorDepth = "256 colours"
        case .direct: state.colorDepth = "24-bit colour"
        }
        defer { term.end() }
        // No whole-image walk competes with the first frame: views ask for one while the
        // frame is drawn, it starts once the frame is on the terminal.
        state.image.inspector?.holdBackground(true)
        var released = false
        let started = monotonicNanos()
        var lastFrame = ScreenModel(width: 0, height: 0)
        var frames = 0, busyFrames = 0
        var busyNs: UInt64 = 0, pumpNs: UInt64 = 0, drawNs: UInt64 = 0, worstFrameNs: UInt64 = 0
        var last = started
        while !quitRequested {
            if let sig = QuitSignals.take() {
                quitSignal = sig
                quitRequested = true
                break
            }
            let t0 = monotonicNanos()
            if state.busy { busyFrames += 1; busyNs += t0 - last }
            last = t0
            pump()
            let t1 = monotonicNanos()
            let (w, h) = term.size
            lastFrame = render(width: w, height: h)
            term.present(lastFrame)
            if !released { released = true; state.image.inspector?.holdBackground(false) }
            let t2 = monotonicNanos()
            pumpNs += t1 - t0
            drawNs += t2 - t1
            worstFrameNs = max(worstFrameNs, t2 - t0)
            frames += 1
            // Frames every 80 ms while a workload runs (12.5/s: fewer frames cost the job
            // less CPU, docs/PERFORMANCE.md "TUI cost"), 95 ms when idle, measured from the
            // frame's start so drawing time does not push the rate below 10 a second.
            let period: UInt64 = state.busy ? 80_000_000 : 95_000_000
            let spent = monotonicNanos() - t0
            if let e = term.read(timeoutMs: Int32(spent >= period ? 0 : (period - spent) / 1_000_000)) {
                handle(e)
                var n = 0
                while n < 64, !quitRequested, let more = term.read(timeoutMs: 0) { handle(more); n += 1 }
            }
        }
        let secs = Double(monotonicNanos() - started) / 1e9   // the frame loop only, not the close
        closeWithProgress(term, last: lastFrame)
        if let p = options.statsPath {
            let f = Double(max(frames, 1))
            let stats: JSONValue = .object([("frames", .int(Int64(frames))), ("seconds", .double(secs)),
                                            ("fps", .double(secs > 0 ? Double(frames) / secs : 0)),
                                            ("busy_fps", .double(busyNs > 0 ? Double(busyFrames) / (Double(busyNs) / 1e9) : 0)),
                                            ("pump_ms_avg", .double(Double(pumpNs) / f / 1e6)),
                                            ("draw_ms_avg", .double(Double(drawNs) / f / 1e6)),
                                            ("worst_frame_ms", .double(Double(worstFrameNs) / 1e6)),
                                            ("jobs", .array(finishedJobs.map { .string($0) }))])
            FileManager.default.createFile(atPath: p, contents: Data((stats.render(pretty: false) + "\n").utf8))
        }
        return closingLine?.contains("failed") == true ? 1 : 0
    }
}

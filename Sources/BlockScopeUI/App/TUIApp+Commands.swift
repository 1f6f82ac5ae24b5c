import BlockCore
import BlockEngine
import Foundation

extension TUIApp {
    /// Runs one command of the engine's language (from the prompt, a script or a test).
    package func execute(_ cmd: ScriptCommand, source: String = "prompt") {
        execute(.engine(cmd), source: source)
    }

    /// Runs one prompt command: UI words act at once, I/O goes to the worker, `job` to a
    /// workload, `sleep` and `pause` hold the script (a prompt `sleep` only says so).
    package func execute(_ cmd: PromptCommand, source: String = "prompt") {
        switch cmd {
        case let .view(name):
            if !selectView(named: name) { state.say("no view '\(name)' (views: \(views.map(\.title).joined(separator: ", ")))", .error) }
        case let .goto(off):
            goto(off)
        case let .theme(name):
            do {
                theme = try ThemeLoader.load(name)
                state.themeName = theme.name
                onThemeChange?(theme)
                state.say(state.noColor ? "theme \(theme.name) loaded; NO_COLOR is set, so colours stay off" : "theme \(theme.name)", .ok)
            } catch let e { state.say("theme: \(e.description)", .error) }
        case let .pause(text):
            pauseText = text ?? "paused"
        case .help:
            help = HelpScreen()
        case .quit:
            quitRequested = true
        case let .engine(.sleep(ns)):
            sleepUntil = monotonicNanos() + ns
            state.say("sleeping \(formatDuration(ns)) (\(source))", .dim)
        case let .engine(.job(path)):
            guard let disk = state.image.disk else { state.say("I/O unavailable for this image", .error); return }
            if job != nil { state.say("a job is already running (space pauses it)", .warning); return }
            do {
                job = try JobHost(path: path, disk: disk, sink: gate, inFlight: state.engineInFlight)
                state.live.resetWholeWindow()
                state.queueRates.resetWhole()
                state.busy = true
                state.say("started job \(path)", .ok)
            } catch let e { state.say(e.description, .error) }
        case let .engine(io):
            if io.isWrite && !options.writable {
                state.say("refused (\(source)): '\(describe(io))' would modify the image, which is open read-only; restart with --write to allow writes", .error)
                state.live.note("refused (read-only): \(describe(io))")
                return
            }
            guard let worker else {
                state.say("I/O unavailable for this image: \(state.image.openError ?? "not open")", .error); return
            }
            worker.enqueue(io)
            state.busy = true
            state.say("running \(source): \(describe(io))", .dim)
        }
    }

    /// Goes to an offset in the current view's space; views without offsets hand it to Hex
    /// (Esc comes back). The status line says where the cursor went, and when it was clamped.
    func goto(_ off: UInt64) {
        let hex = views.firstIndex { $0 is HexView }
        if currentView.gotoSpace == nil, let hex { open(hex) }
        var n = currentView.goto(off, state)
        if n.role == .error, let hex, hex != current {
            // The view has offsets but not for this format (L1/L2 on a BAT image): Hex has them.
            open(hex)
            n = currentView.goto(off, state)
        }
        state.sayInView(n.text, n.role)
    }

    /// Runs script lines while nothing holds the script: the worker or a job busy, a
    /// `sleep` not yet over, a `pause` waiting for its key.
    func runScript(busy: Bool) {
        if let t = sleepUntil, monotonicNanos() >= t {
            sleepUntil = nil
            if state.status.text.hasPrefix("sleeping") { state.say("", .dim) }
        }
        var workerBusy = busy
        let name = URL(fileURLWithPath: scriptSource).lastPathComponent
        while !workerBusy, job == nil, sleepUntil == nil, pauseText == nil, !quitRequested, !scriptQueue.isEmpty {
            let line = scriptQueue.removeFirst()
            execute(line.command, source: "\(name) line \(line.line)")
            workerBusy = worker?.busy ?? false
            scriptPending = true
        }
        // Once the last line has finished, say so (after its own output).
        if scriptPending, scriptQueue.isEmpty, !workerBusy, job == nil, sleepUntil == nil, pauseText == nil {
            scriptPending = false
            state.say(state.status.text.isEmpty ? "end of \(name)" : "\(state.status.text) · end of \(name)", state.status.role == .error ? .error : .ok)
        }
    }

    /// Whether a `sleep` or `pause` is holding the script (for the title badge).
    var scriptHeld: String? {
        if pauseText != nil { return "WAITING" }
        if sleepUntil != nil { return "SLEEP" }
        return nil
    }

    /// A command as the language spells it.
    func describe(_ cmd: ScriptCommand) -> String {
        switch cmd {
        case let .write(o, l, p): return "write \(hex(o)) \(l) \(hex(UInt64(p)))"
        case let .read(o, l, _): return "read \(hex(o)) \(l)"
        case let .zero(o, l): return "zero \(hex(o)) \(l)"
        case let .discard(o, l): return "discard \(hex(o)) \(l)"
        case .fsync: return "fsync"
        case let .job(p): return "job \(p)"
        case let .sleep(ns): return "sleep \(formatDuration(ns))"
        }
    }
}

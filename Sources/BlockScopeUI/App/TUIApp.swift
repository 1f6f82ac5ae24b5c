import BlockCore
import BlockEngine
import Foundation

/// Options of `blockscope tui`.
public struct TUIOptions: Sendable {
    /// The image to open.
    public var imagePath: String
    /// Open for writing (`--write`): without it, writes from the prompt and scripts are refused.
    public var writable = false
    /// Theme name or path (`--theme`).
    public var themeName = "default"
    /// A command-language script run at start (`--script`).
    public var scriptPath: String?
    /// Mouse reporting (`--no-mouse` turns it off).
    public var mouse = true
    /// The I/O engine for prompt commands.
    public var engine: EngineKind = .auto
    /// Open the image's data with `O_DIRECT` (jobs with `direct=1` then bypass the page cache).
    public var direct = false
    /// Where to write frame and job statistics on exit (JSON; for the UI-cost benchmark).
    public var statsPath: String?

    /// Creates options for an image.
    public init(imagePath: String) { self.imagePath = imagePath }
}

/// The TUI application: views, tab bar, prompt, footer, workload control and the event pump.
///
/// The app is usable without a terminal: ``pump()`` folds events and command output into
/// the state, ``handle(_:)`` applies a key and ``render(width:height:)`` draws a frame into a
/// ``ScreenModel``. ``run()`` adds the curses terminal and the loop (at least 10 frames a
/// second, more while keys arrive).
public final class TUIApp {
    /// Shared state the views read.
    public let state: AppState
    /// The tabs, in number-key order.
    public let views: [TUIView]
    /// Index of the current view.
    public private(set) var current = 0
    /// Whether `q` was pressed.
    public private(set) var quitRequested = false
    /// The final lines of the jobs that finished (for `statsPath`).
    public private(set) var finishedJobs: [String] = []
    /// The theme in use.
    public private(set) var theme: Theme
    let options: TUIOptions
    private let stream = EventStream(queues: 16, capacityPerQueue: 1 << 13)
    let gate: StepGate
    private let subscription: EventSubscription
    private var worker: CommandWorker?
    private var job: JobHost?
    private var prompt: Prompt?
    private var history: [String] = []
    private var historyIndex = 0
    private var showHelp = false
    private var tabHits: [(Range<Int>, Int)] = []
    private var scriptQueue: [ScriptLine] = []
    private var lastReload: UInt64 = 0
    private var seenMetadataVersion = 0
    private var wasBusy = false
    /// Where I/O from outside the app (`tui --serve` clients) publishes its events: the step
    /// gate in front of the views' event stream. Its stream routes queue IDs 0..<16.
    public var eventSink: any IoEventSink { gate }
    /// Called when a `theme` command switches themes (the terminal redefines its colours).
    public var onThemeChange: ((Theme) -> Void)?

    /// Opens the image and sets up views, the event stream and the step gate.
    public init(options: TUIOptions) throws(BlockScopeUIError) {
        self.options = options
        do { theme = try ThemeLoader.load(options.themeName) } catch let e { throw BlockScopeUIError("theme: \(e.description)") }
        gate = StepGate(downstream: stream)
        subscription = stream.subscribe()
        guard FileManager.default.fileExists(atPath: options.imagePath) else {
            throw BlockScopeUIError("\(options.imagePath): no such file")
        }
        let image = ImageModel(path: options.imagePath, writable: options.writable, engine: options.engine, direct: options.direct, sink: gate)
        state = AppState(image: image, themeName: theme.name)
        views = [OverviewView(), L1L2View(), RefcountsView(), MapView(), BatView(), HexView(), InFlightView(), CompletionsView()]
        if let disk = image.disk { worker = CommandWorker(disk: disk, engine: options.engine, sink: gate) }
        if let sp = options.scriptPath {
            do {
                let text = try String(contentsOfFile: sp, encoding: .utf8)
                scriptQueue = try CommandScript.parse(text, source: sp)
                state.say("running script \(sp) (\(scriptQueue.count) commands)", .ok)
            } catch let e as BlockError {
                throw BlockScopeUIError("script: \(e.description)")
            } catch {
                throw BlockScopeUIError("script \(sp): \(error.localizedDescription)")
            }
        } else if let err = image.openError {
            state.say("I/O unavailable: \(err)", .warning)
        } else {
            state.say("\(image.format.rawValue) image opened \(options.writable ? "read-write" : "read-only") — press ? for keys", .dim)
        }
    }

    /// The current view.
    public var currentView: TUIView { views[current] }

    /// Switches to a view by name prefix (`overview`, `l1`, `map`, `inflight`, ...).
    @discardableResult
    public func selectView(named name: String) -> Bool {
        func norm(_ s: String) -> String { s.lowercased().filter { $0.isLetter || $0.isNumber } }
        let n = norm(name)
        guard !n.isEmpty, let i = views.firstIndex(where: { norm($0.title).hasPrefix(n) || (n == "l2" && $0 is L1L2View) }) else { return false }
        current = i
        return true
    }

    /// Folds pending events and worker output into the state, runs the next script line
    /// when the worker is idle, and reloads metadata after changes (at most every 300 ms).
    public func pump() {
        let stepping = state.stepMode
        subscription.drain(maxPerQueue: 4096) { e in
            state.live.apply(e)
            if stepping { state.noteStep(Explain.line(e)) }
        }
        state.lostEvents = subscription.lostEvents
        state.live.tick()
        if state.stepMode {
            state.heldEvent = gate.heldEvent.map(Explain.line)
        }
        for line in worker?.takeOutput() ?? [] {
            state.live.note(line)
            state.say(line, line.hasPrefix("error") ? .error : .ok)
        }
        if let j = job {
            state.jobSummary = j.summary
            if let done = j.finishedLine {
                finishedJobs.append(done)
                state.live.note(done)
                state.say(done, done.hasPrefix("error") ? .error : .ok)
                job = nil
                state.jobSummary = nil
            }
        }
        let busy = (worker?.busy ?? false) || job != nil
        state.busy = busy
        let now = monotonicNanos()
        if (wasBusy && !busy) || (state.live.metadataVersion != seenMetadataVersion && now - lastReload > 300_000_000) {
            seenMetadataVersion = state.live.metadataVersion
            lastReload = now
            state.reloadLayout()
        }
        wasBusy = busy
        while !busy, job == nil, !scriptQueue.isEmpty {
            let line = scriptQueue.removeFirst()
            execute(line.command, source: "script line \(line.line)")
            if worker?.busy ?? false { break }
        }
        if let v = state.requestedView {
            state.requestedView = nil
            selectView(named: v)
            if let h = state.pendingHex, let hv = currentView as? HexView { hv.show(h.offset, host: h.host) }
            state.pendingHex = nil
        }
    }

    /// Runs one command of the language (from the prompt or a script).
    public func execute(_ cmd: ScriptCommand, source: String = "prompt") {
        switch cmd {
        case let .view(name):
            if !selectView(named: name) { state.say("no view '\(name)' (views: \(views.map(\.title).joined(separator: ", ")))", .error) }
        case let .goto(off):
            if !currentView.goto(off, state) {
                selectView(named: "hex")
                _ = currentView.goto(off, state)
            }
            state.say("at guest \(hex(off))", .ok)
        case let .theme(name):
            do {
                theme = try ThemeLoader.load(name)
                state.themeName = theme.name
                onThemeChange?(theme)
                state.say("theme \(theme.name)", .ok)
            } catch let e { state.say("theme: \(e.description)", .error) }
        case let .job(path):
            guard let disk = state.image.disk else { state.say("I/O unavailable for this image", .error); return }
            if job != nil { state.say("a job is already running (space pauses it)", .warning); return }
            do {
                job = try JobHost(path: path, disk: disk, sink: gate)
                state.busy = true
                state.say("started job \(path)", .ok)
            } catch let e { state.say(e.description, .error) }
        default:
            if cmd.isWrite && !options.writable {
                state.say("refused (\(source)): '\(describe(cmd))' would modify the image, which is open read-only; restart with --write to allow writes", .error)
                state.live.note("refused (read-only): \(cmd)")
                return
            }
            guard let worker else {
                state.say("I/O unavailable for this image: \(state.image.openError ?? "not open")", .error); return
            }
            worker.enqueue(cmd)
            state.busy = true
            state.say("running \(source): \(describe(cmd))", .dim)
        }
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
        default: return "\(cmd)"
        }
    }

    /// Applies one key or mouse event.
    public func handle(_ e: InputEvent) {
        if e == .hangup { quitRequested = true; return }
        if showHelp { showHelp = false; return }
        if var p = prompt {
            switch p.handle(e, history: history, historyIndex: &historyIndex) {
            case .editing: prompt = p
            case .cancel: prompt = nil
            case let .submit(text):
                prompt = nil
                submit(p.kind, text)
            }
            return
        }
        if case let .click(x, y) = e, y == 1 {
            if let hit = tabHits.first(where: { $0.0.contains(x) }) { current = hit.1 }
            return
        }
        if currentView.handle(e, state) { pump(); return }
        switch e {
        case let .char(c) where c.isNumber && c != "0":
            let i = Int(String(c))! - 1
            if i < views.count { current = i }
        case .tab: current = (current + 1) % views.count
        case .backTab: current = (current + views.count - 1) % views.count
        case .char("q"), .char("\u{03}"): quitRequested = true
        case .char("?"), .function(1): showHelp = true
        case .char(":"): prompt = Prompt(.command); historyIndex = history.count
        case .char("/"): prompt = Prompt(.search)
        case .char("g"): prompt = Prompt(.goto)
        case .char(" "): togglePause()
        case .char("s"): step()
        case .escape:
            if state.stepMode { leaveStepMode() }
        default: break
        }
    }

    private func submit(_ kind: Prompt.Kind, _ text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard !t.isEmpty else { return }
        switch kind {
        case .command:
            history.append(t)
            if t == "q" || t == "quit" { quitRequested = true; return }
            if t == "help" { showHelp = true; return }
            do {
                if let cmd = try CommandScript.parseLine(t) { execute(cmd) }
            } catch let e { state.say(e.message, .error) }
        case .search:
            state.say(currentView.search(t, state), .normal)
        case .goto:
            guard let off = CommandScript.parseSize(t) else { state.say("'\(t)' is not an offset (try 0x10000 or 64k)", .error); return }
            execute(.goto(offset: off))
        }
    }

    private func togglePause() {
        if state.stepMode { leaveStepMode(); return }
        if state.paused {
            job?.workload.resume()
            gate.disable(); state.paused = false; state.say("resumed", .ok)
        } else if let job {
            job.workload.pause(); state.paused = true; state.say("job paused: requests in flight finish, no new ones start (space resumes)", .warning)
        } else {
            gate.enable(); state.paused = true; state.say("paused: the workload waits at its next event (space resumes, s steps)", .warning)
        }
    }

    private func step() {
        if !state.stepMode {
            state.stepMode = true
            state.paused = false
            gate.enable()
            state.say("step mode: s lets one event through with an explanation; space or Esc leaves", .warning)
        } else {
            gate.step(1)
        }
    }

    private func leaveStepMode() {
        state.stepMode = false
        state.paused = false
        gate.disable()
        state.say("step mode off", .ok)
    }

    /// Whether the help box is open.
    public var helpShown: Bool { showHelp }
    /// The prompt being edited, if any.
    public var promptState: Prompt? { prompt }
    func setTabHits(_ h: [(Range<Int>, Int)]) { tabHits = h }

    /// Stops the workload and closes the image (flushing writes). Call once before exit.
    public func shutdown() {
        gate.disable()
        job?.workload.resume()
        job?.workload.stop()
        worker?.stop()
        worker?.waitIdle(seconds: 5)
        let deadline = monotonicNanos() + 5_000_000_000
        while let j = job, j.finishedLine == nil, monotonicNanos() < deadline { usleep(10_000) }
        subscription.cancel()
        if let d = state.image.disk {
            try? d.close()
        }
    }
}

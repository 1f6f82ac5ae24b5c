import BlockCore
import BlockInspect
import BlockEngine
import Foundation

/// Options of `blockscope tui`.
package struct TUIOptions: Sendable {
    /// The image to open.
    package var imagePath: String
    /// Open for writing (`--write`): without it, writes from the prompt and scripts are refused.
    package var writable = false
    /// Theme name or path (`--theme`).
    package var themeName = "default"
    /// A command-language script run at start (`--script`).
    package var scriptPath: String?
    /// Mouse reporting (`--no-mouse` turns it off).
    package var mouse = true
    /// The I/O engine for prompt commands.
    package var engine: EngineKind = .auto
    /// Open the image's data with `O_DIRECT` (jobs with `direct=1` then bypass the page cache).
    package var direct = false
    /// Where to write frame and job statistics on exit (JSON; for the UI-cost benchmark).
    package var statsPath: String?
    /// Adds the Virtqueue tab (`tui --serve vhost-user:` sets it: a vhost-user-blk server is attached).
    package var virtqueueView = false
    /// Whether colour is off (`NO_COLOR` set and not empty, as no-color.org says): the
    /// monochrome theme is used whatever `themeName` says, and the title says why.
    package var noColor = ProcessInfo.processInfo.environment["NO_COLOR"].map { !$0.isEmpty } ?? false

    /// Creates options for an image.
    package init(imagePath: String) { self.imagePath = imagePath }
}

/// The TUI application: views, tab bar, prompt, footer, workload control and the event pump.
///
/// The app is usable without a terminal: ``pump()`` folds events and command output into
/// the state, ``handle(_:)`` applies a key and ``render(width:height:)`` draws a frame into a
/// ``ScreenModel``. ``run(mouse:)`` adds the curses terminal and the loop (at least 10 frames a
/// second, more while keys arrive). The parts live in `TUIApp+*.swift`: input, commands and
/// script pacing, rendering, closing.
package final class TUIApp {
    /// Shared state the views read.
    package let state: AppState
    /// The tabs, in number-key order.
    package let views: [TUIView]
    /// Index of the current view.
    package internal(set) var current = 0 {
        didSet {
            state.currentViewTitle = views[current].title
            if current != oldValue { highlightSteppedEntry() }
        }
    }
    /// Whether `q` was pressed.
    package internal(set) var quitRequested = false
    /// The final lines of the jobs that finished (for `statsPath`).
    package internal(set) var finishedJobs: [String] = []
    /// The theme in use.
    package internal(set) var theme: Theme
    /// The line to print after the terminal is restored ("closed IMAGE ..."), set by ``shutdown(progress:)``.
    package internal(set) var closingLine: String?
    /// The signal (SIGINT, SIGTERM or SIGHUP) that ended ``run(mouse:)``, if one did: the
    /// app then closed as on `q`.
    package internal(set) var quitSignal: Int32?
    /// Stops I/O that reaches the disk from outside the app (the `tui --serve` NBD server:
    /// no new clients, the connected ones' requests answered); ``shutdown(progress:)`` calls
    /// it first, before the image is flushed and closed. Called at most once.
    package var stopOutsideIO: (() -> Void)?
    let options: TUIOptions
    let stream = EventStream(queues: 16, capacityPerQueue: 1 << 13)
    let gate: StepGate
    let subscription: EventSubscription
    var worker: CommandWorker?
    var job: JobHost?
    var prompt: Prompt?
    var history: [String] = []
    var historyIndex = 0
    var help: HelpScreen?
    var tabHits: [(Range<Int>, Int)] = []
    /// Script lines still to run, with their line numbers.
    var scriptQueue: [(line: Int, command: PromptCommand)] = []
    /// Where the script came from (for messages).
    var scriptSource = "script"
    /// When a `sleep` ends (monotonic ns); the script waits until then.
    var sleepUntil: UInt64?
    /// The text of a `pause` waiting for a key.
    var pauseText: String?
    /// Whether script lines ran and the end of the script has not been announced yet.
    var scriptPending = false
    /// Views to return to with Esc, most recent last (pushed by Enter and goto-to-Hex).
    var backStack: [Int] = []
    /// The last search text (`n`/`N` repeat it).
    var lastSearch: String?
    var lastReload: UInt64 = 0
    var seenMetadataVersion = 0
    var wasBusy = false
    var closed = false
    /// Where I/O from outside the app (`tui --serve` clients) publishes its events: the step
    /// gate in front of the views' event stream. Its stream routes queue IDs 0..<16.
    package var eventSink: any IoEventSink { gate }
    /// Where a front end's queues (`tui --serve` clients) record the requests they hold and
    /// their figures: the registry the prompt's and jobs' queues join, so the In-flight and
    /// Completions views show a served request exactly as a job's.
    package var inFlightRegistry: InFlightRegistry { state.engineInFlight }
    /// Called when a `theme` command switches themes (the terminal redefines its colours).
    package var onThemeChange: ((Theme) -> Void)?

    /// Opens the image and sets up views, the event stream and the step gate.
    package init(options: TUIOptions) throws(BlockScopeUIError) {
        self.options = options
        do { theme = try ThemeLoader.load(options.noColor ? "monochrome" : options.themeName) } catch let e { throw BlockScopeUIError("theme: \(e.description)") }
        gate = StepGate(downstream: stream)
        subscription = stream.subscribe()
        do { try refuseDirectory(options.imagePath) } catch let e { throw BlockScopeUIError(e.description) }
        guard FileManager.default.fileExists(atPath: options.imagePath) else {
            throw BlockScopeUIError("\(options.imagePath): no such file")
        }
        let image = ImageModel(path: options.imagePath, writable: options.writable, engine: options.engine, direct: options.direct, sink: gate)
        state = AppState(image: image, themeName: theme.name)
        state.noColor = options.noColor
        // The table tabs carry the format's own words (its inspector's), not fixed ones.
        views = [OverviewView(), L1L2View(title: image.inspector?.tabTitle(.directory)), RefcountsView(), MapView(),
                 BatView(title: image.inspector?.tabTitle(.allocation)), HexView(), InFlightView(), CompletionsView(), DiagnosisView()]
            + (options.virtqueueView ? [VirtqueueView()] : [])
        state.currentViewTitle = views[0].title
        if let disk = image.disk { worker = CommandWorker(disk: disk, engine: options.engine, sink: gate, inFlight: state.engineInFlight) }
        if let sp = options.scriptPath {
            do {
                let text = try String(contentsOfFile: sp, encoding: .utf8)
                scriptQueue = try PromptCommand.parseScript(text, source: sp)
                scriptSource = sp
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
    package var currentView: TUIView { views[current] }

    /// The index of the view a name prefix selects (`overview`, `l1`, `map`, `inflight`, ...).
    func viewIndex(named name: String) -> Int? {
        func norm(_ s: String) -> String { s.lowercased().filter { $0.isLetter || $0.isNumber } }
        let n = norm(name)
        guard !n.isEmpty else { return nil }
        return views.firstIndex { norm($0.title).hasPrefix(n) || (n == "l2" && $0 is L1L2View) }
    }

    /// Switches to a view by name prefix, as a tab key does (the back-stack starts afresh).
    @discardableResult
    package func selectView(named name: String) -> Bool {
        guard let i = viewIndex(named: name) else { return false }
        switchTo(i)
        return true
    }

    /// Switches tabs by the user's choice (number, Tab, click, `view`): Esc no longer goes back.
    func switchTo(_ i: Int) {
        backStack.removeAll()
        current = i
    }

    /// Opens a view from the current one (Enter, goto handed to Hex): Esc comes back here.
    func open(_ i: Int) {
        guard i != current else { return }
        backStack.append(current)
        if backStack.count > 32 { backStack.removeFirst() }
        current = i
    }

    /// Returns to the view the last Enter came from; false when there is none.
    func goBack() -> Bool {
        guard let i = backStack.popLast() else { return false }
        current = i
        state.sayInView("back to \(views[i].title)", .dim)
        return true
    }

    /// The views Esc would return through, most recent last (titles).
    package var backTrail: [String] { backStack.map { views[$0].title } }

    /// Folds pending events and worker output into the state, runs the next script lines
    /// when the worker is idle and no `sleep` or `pause` holds the script, and reloads
    /// metadata after changes (at most every 300 ms).
    package func pump() {
        let stepping = state.stepMode
        let context = state.live.context
        subscription.drain(maxPerQueue: 4096) { e in
            let op = state.live.op(of: e.request)
            state.live.apply(e)
            if stepping {
                state.noteStep(stepWords(e, context, op: op ?? state.live.op(of: e.request)))
                if case let .tableUpdate(table, index, _, _) = e.payload {
                    state.steppedEntry = (table, index, state.live.inFlight[e.request]?.offset ?? 0)
                }
            }
        }
        state.lostEvents = subscription.lostEvents
        // The engine's exact set, taken after the drain: what it no longer holds is gone,
        // even when the completion event was dropped.
        (state.inFlightSnapshot, state.inFlightPeak) = state.engineInFlight.snapshotWithPeak()
        state.queueRates.update(state.engineInFlight.queues())
        state.live.retainInFlight(Set(state.inFlightSnapshot.map(\.userData)))
        state.live.tick()
        if state.stepMode {
            state.heldEvent = gate.heldEvent.map { stepWords($0, context, op: state.live.op(of: $0.request)) }
            if let g = gate.takeReachedGoal() { state.say(goalText(g), .ok) }
        }
        for line in worker?.takeOutput() ?? [] {
            state.live.note(line)
            state.say(line, line.hasPrefix("error") ? .error : .ok)
        }
        if let j = job {
            state.jobSummary = j.summary
            if let done = j.finishedLine {
                state.lastJobLine = done
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
        if state.image.inspector?.pollBackground() == true { state.layoutVersion += 1 }
        wasBusy = busy
        runScript(busy: busy)
        if let v = state.requestedView {
            state.requestedView = nil
            if let i = viewIndex(named: v) { open(i) }
            applyPendingGoto()
            if let h = state.pendingHex, let hv = currentView as? HexView { hv.show(h.offset, host: h.host) }
            state.pendingHex = nil
            if let f = state.pendingInFlightFilter, let iv = currentView as? InFlightView { iv.setFilter(f); state.sayInView("In-flight filtered to \(f) (/ changes it)", .ok) }
            state.pendingInFlightFilter = nil
        }
    }

    /// Moves the view that came up to the metadata entry the last step changed (L2 or L1
    /// entry, refcount, BAT entry), so it shows selected; says which entry it is.
    func highlightSteppedEntry() {
        guard let (table, index, guest) = state.steppedEntry,
              let (target, name) = state.image.words.target(ofUpdate: table, index: index, guest: guest) else { return }
        let v = views[current]
        switch target {
        case let .entry(link) where link.table.role == .allocation && v is BatView:
            (v as? BatView)?.select(entry: link.row, state)
        case let .entry(link) where link.table.role != .allocation && v is L1L2View:
            (v as? L1L2View)?.select(link, state)
        case let .hostUnit(i) where v is RefcountsView:
            _ = v.goto(UInt64(i) * (state.image.inspector?.hostUnits()?.unit ?? 1), state)
        default:
            return
        }
        state.sayInView("selected \(name): the entry the last step changed", .ok)
    }

    /// Sets the hit boxes of the tab bar (from the last render).
    func setTabHits(_ h: [(Range<Int>, Int)]) { tabHits = h }
}

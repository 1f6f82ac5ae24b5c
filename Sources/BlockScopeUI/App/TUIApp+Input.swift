import BlockCore
import BlockEngine
import Foundation

extension TUIApp {
    /// The completer for the `:` prompt (views, bundled themes, paths from the working directory).
    var completer: PromptCompleter {
        PromptCompleter(viewNames: views.map { $0.title.lowercased().filter { $0.isLetter || $0.isNumber } },
                        themeNames: ThemeLoader.bundledNames)
    }

    /// Applies one key or mouse event. Order: hangup, the help, the prompt, a `pause`
    /// waiting for a key, tab clicks, the current view, then the app's keys (Esc: step mode
    /// off, else back to where Enter came from).
    package func handle(_ e: InputEvent) {
        if e == .hangup { quitRequested = true; return }
        if e == .resize { return }
        if var h = help {
            if h.handle(e) { help = h } else { help = nil }
            return
        }
        if var p = prompt {
            switch p.handle(e, history: history, historyIndex: &historyIndex, completer: completer) {
            case .editing:
                prompt = p
                // The In-flight filter is live: it follows every key typed.
                if p.kind == .search, let v = currentView as? InFlightView { v.setFilter(p.text) }
            case .cancel:
                prompt = nil
                if p.kind == .search, let v = currentView as? InFlightView { v.setFilter(""); state.sayInView("filter cleared", .dim) }
            case let .submit(text):
                prompt = nil
                submit(p.kind, text)
            }
            return
        }
        if pauseText != nil {
            if e == .char("q") || e == .char("\u{03}") { quitRequested = true; return }
            if case .wheel = e { return }
            pauseText = nil
            state.say("", .dim)
            return
        }
        if case let .click(x, y) = e, y == 1 {
            if let hit = tabHits.first(where: { $0.0.contains(x) }) { switchTo(hit.1) }
            return
        }
        if currentView.handle(e, state) { pump(); return }
        switch e {
        case let .char(c) where c.isNumber:
            let i = c == "0" ? 9 : Int(String(c))! - 1
            if i < views.count { switchTo(i) }
        case .tab: switchTo((current + 1) % views.count)
        case .backTab: switchTo((current + views.count - 1) % views.count)
        case .char("q"), .char("\u{03}"): quitRequested = true
        case .char("?"), .function(1): help = HelpScreen()
        case .char(":"): prompt = Prompt(.command); historyIndex = history.count
        case .char("/"):
            if currentView.searchHint != nil { prompt = Prompt(.search) } else { state.sayInView("\(currentView.title) has no search", .dim) }
        case .char("n"): repeatSearch(.forward)
        case .char("N"): repeatSearch(.backward)
        case .char("g"): prompt = Prompt(.goto, label: "goto \((currentView.gotoSpace ?? .guest).rawValue) ")
        case .char(" "): togglePause()
        case .char("s"): step()
        case .char("c"): runStep(toCompletion: true)
        case .char(">"): runStep(toCompletion: false)
        case .char("x"):
            if let said = state.image.inspector?.toggleBackground() { state.say(said, .warning) } else { state.sayInView("no whole-image walk to stop", .dim) }
        case .escape:
            if state.stepMode { leaveStepMode() } else { _ = goBack() }
        default: break
        }
    }

    /// Runs a finished prompt line.
    func submit(_ kind: Prompt.Kind, _ text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard !t.isEmpty else { return }
        switch kind {
        case .command:
            history.append(t)
            do {
                if let cmd = try PromptCommand.parse(t) { execute(cmd) }
            } catch let e { state.say(e.message, .error) }
        case .search:
            lastSearch = t
            search(t, .forward)
        case .goto:
            guard let off = CommandScript.parseSize(t) else { state.sayInView("'\(t)' is not an offset (try 0x10000 or 64k)", .error); return }
            goto(off)
        }
    }

    /// Searches the current view and says what was found, and when the search wrapped.
    func search(_ text: String, _ direction: SearchDirection) {
        let r = currentView.search(text, direction, state)
        let wrapNote = direction == .forward ? "search wrapped to the top" : "search wrapped to the bottom"
        state.sayInView(r.wrapped ? "\(wrapNote): \(r.message)" : r.message, r.found ? (r.wrapped ? .warning : .normal) : .dim)
    }

    /// `n` / `N`: the last search again, forward or backward.
    func repeatSearch(_ direction: SearchDirection) {
        guard currentView.searchHint != nil else { state.sayInView("\(currentView.title) has no search", .dim); return }
        guard let t = lastSearch else { state.sayInView("no search yet: / starts one", .dim); return }
        search(t, direction)
    }

    func togglePause() {
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

    func step() {
        if !state.stepMode {
            state.stepMode = true
            state.paused = false
            gate.enable()
            state.say("step mode: s lets one event through with an explanation; space or Esc leaves", .warning)
        } else {
            gate.step(1)
        }
    }

    /// Step mode's longer strides: `c` runs the held request to its completion, `>` runs to
    /// the next request's first event; the gate holds the event after that, as a press would.
    func runStep(toCompletion: Bool) {
        guard state.stepMode else { state.say("\(toCompletion ? "c" : ">") works in step mode (s starts it)", .dim); return }
        guard let e = gate.heldEvent else { state.say("nothing held yet: start a request, e.g.  :write 0 4k", .dim); return }
        var request = e.request
        if request == 0 {
            // A queue-wide event (a CQ drain): the oldest request that queue holds.
            request = state.inFlightSnapshot.filter { $0.queue == Int(e.queue) }.min { $0.acceptedNs < $1.acceptedNs }?.userData ?? 0
        }
        if toCompletion {
            gate.run(to: .completion(queue: e.queue, request: request))
            state.say("running \(Explain.req(request)) to its completion…", .dim)
        } else {
            gate.run(to: .nextRequest(after: e.queue, request: request))
            state.say("running to the next request…", .dim)
        }
    }

    /// What reaching a step goal means, for the status line.
    func goalText(_ g: StepGate.Goal) -> String {
        switch g {
        case let .completion(_, r): return "\(Explain.req(r)) completed (c); holding the next event — s steps, c/> run on"
        case .nextRequest: return "next request reached (>): holding its first event — s steps"
        }
    }

    func leaveStepMode() {
        state.stepMode = false
        state.paused = false
        gate.disable()
        state.say("step mode off", .ok)
    }

    /// Whether the help box is open.
    package var helpShown: Bool { help != nil }
    /// The prompt being edited, if any.
    package var promptState: Prompt? { prompt }
    /// The text of a `pause` waiting for a key, if any.
    package var waitingPause: String? { pauseText }
}

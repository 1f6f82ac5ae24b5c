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
    public func handle(_ e: InputEvent) {
        if e == .hangup { quitRequested = true; return }
        if e == .resize { return }
        if var h = help {
            if h.handle(e) { help = h } else { help = nil }
            return
        }
        if var p = prompt {
            switch p.handle(e, history: history, historyIndex: &historyIndex, completer: completer) {
            case .editing: prompt = p
            case .cancel: prompt = nil
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
        case let .char(c) where c.isNumber && c != "0":
            let i = Int(String(c))! - 1
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

    func leaveStepMode() {
        state.stepMode = false
        state.paused = false
        gate.disable()
        state.say("step mode off", .ok)
    }

    /// Whether the help box is open.
    public var helpShown: Bool { help != nil }
    /// The prompt being edited, if any.
    public var promptState: Prompt? { prompt }
    /// The text of a `pause` waiting for a key, if any.
    public var waitingPause: String? { pauseText }
}

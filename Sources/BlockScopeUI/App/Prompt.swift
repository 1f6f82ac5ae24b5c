/// The one-line editor used by `:` (commands), `/` (search) and `g` (goto).
package struct Prompt: Sendable {
    /// What the line is for.
    package enum Kind: String, Sendable {
        /// The command language.
        case command = ":"
        /// A search in the current view.
        case search = "/"
        /// An offset to go to.
        case goto = "goto "
    }

    /// The prompt's purpose.
    package var kind: Kind
    /// What is drawn before the text (`:`, `/`, `goto guest `, `goto host `).
    package var label: String
    /// The text typed so far.
    package var text = ""
    /// The candidates the last `Tab` left open (shown above the prompt), empty otherwise.
    package var candidates: [String] = []

    /// Creates an empty prompt; `label` defaults to the kind's.
    package init(_ kind: Kind, label: String? = nil) {
        self.kind = kind
        self.label = label ?? kind.rawValue
    }

    /// The result of a key in the prompt.
    package enum Outcome: Sendable, Equatable {
        /// Keep editing.
        case editing
        /// Enter: run the text.
        case submit(String)
        /// Escape: abandon.
        case cancel
    }

    /// Applies one key; `Tab` asks `completer` (command prompts only).
    package mutating func handle(_ e: InputEvent, history: [String], historyIndex: inout Int, completer: PromptCompleter? = nil) -> Outcome {
        if e != .tab { candidates = [] }
        switch e {
        case let .char(c): text.append(c)
        case .backspace:
            if text.isEmpty { return .cancel }
            text.removeLast()
        case .enter: return .submit(text)
        case .escape: return .cancel
        case .tab:
            if kind == .command, let completer {
                let r = completer.complete(text)
                text = r.text
                candidates = r.candidates
            }
        case .up:
            if !history.isEmpty { historyIndex = max(0, historyIndex - 1); text = history[historyIndex] }
        case .down:
            if historyIndex < history.count - 1 { historyIndex += 1; text = history[historyIndex] } else { historyIndex = history.count; text = "" }
        default: break
        }
        return .editing
    }
}

/// The one-line editor used by `:` (commands), `/` (search) and `g` (goto).
public struct Prompt: Sendable {
    /// What the line is for.
    public enum Kind: String, Sendable {
        /// The command language.
        case command = ":"
        /// A search in the current view.
        case search = "/"
        /// An offset to go to.
        case goto = "goto "
    }

    /// The prompt's purpose.
    public var kind: Kind
    /// The text typed so far.
    public var text = ""

    /// Creates an empty prompt.
    public init(_ kind: Kind) { self.kind = kind }

    /// The result of a key in the prompt.
    public enum Outcome: Sendable, Equatable {
        /// Keep editing.
        case editing
        /// Enter: run the text.
        case submit(String)
        /// Escape: abandon.
        case cancel
    }

    /// Applies one key.
    public mutating func handle(_ e: InputEvent, history: [String], historyIndex: inout Int) -> Outcome {
        switch e {
        case let .char(c): text.append(c)
        case .backspace:
            if text.isEmpty { return .cancel }
            text.removeLast()
        case .enter: return .submit(text)
        case .escape: return .cancel
        case .up:
            if !history.isEmpty { historyIndex = max(0, historyIndex - 1); text = history[historyIndex] }
        case .down:
            if historyIndex < history.count - 1 { historyIndex += 1; text = history[historyIndex] } else { historyIndex = history.count; text = "" }
        default: break
        }
        return .editing
    }
}

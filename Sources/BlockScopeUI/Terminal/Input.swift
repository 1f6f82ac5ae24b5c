/// A key or mouse event, independent of curses' integer codes.
package enum InputEvent: Sendable, Equatable {
    /// A printable character (including space).
    case char(Character)
    /// Enter / Return.
    case enter
    /// Escape.
    case escape
    /// Tab.
    case tab
    /// Shift-Tab.
    case backTab
    /// Backspace.
    case backspace
    /// Arrow up.
    case up
    /// Arrow down.
    case down
    /// Arrow left.
    case left
    /// Arrow right.
    case right
    /// Page up.
    case pageUp
    /// Page down.
    case pageDown
    /// Home.
    case home
    /// End.
    case end
    /// A function key (F1 = 1).
    case function(Int)
    /// The terminal was resized.
    case resize
    /// A mouse click at a screen position.
    case click(x: Int, y: Int)
    /// The mouse wheel turned up (`true`) or down at a position.
    case wheel(up: Bool, x: Int, y: Int)
    /// The terminal went away (hangup, closed pty): the app must quit.
    case hangup
}

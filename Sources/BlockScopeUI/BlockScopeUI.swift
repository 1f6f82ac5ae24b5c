import BlockCore
import BlockEngine

/// The terminal UI module: views of image layout and in-flight I/O drawn with ncurses.
public enum BlockScopeUI {
    /// The module's version string shown in the title bar.
    public static let version = "0.1.0"
}

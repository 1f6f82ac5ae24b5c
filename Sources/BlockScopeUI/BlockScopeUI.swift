import BlockCore
import BlockEngine

/// The terminal UI module: views of image layout and in-flight I/O drawn with ncurses.
package enum BlockScopeUI {
    /// The version shown in the title bar: blockscope's (``BlockCore/blockscopeVersion``).
    package static let version = blockscopeVersion
}

/// A semantic colour role: views say what a cell *is*, the theme says how it looks.
///
/// Keeping views free of concrete colours is what lets one view render in a dark, light,
/// high-contrast, colour-blind-safe or monochrome theme, and in 8, 256 or 24-bit colour.
package enum Role: String, Sendable, CaseIterable, Hashable {
    /// Ordinary text.
    case normal
    /// Secondary text (labels, units, hints).
    case dim
    /// A view's title line and section headings.
    case heading
    /// The tab of the current view.
    case tabActive
    /// The other tabs.
    case tabInactive
    /// The footer bar.
    case footer
    /// A key name inside the footer or help.
    case key
    /// The `:` prompt line and messages.
    case prompt
    /// A selected row or the cell under the cursor.
    case selected
    /// Something good: clean, done, allocated in this image.
    case ok
    /// A warning: dirty, pending, slow.
    case warning
    /// An error: corrupt, failed, leaked.
    case error
    /// Image header / format structures in the host map.
    case header
    /// L1 tables (or a BAT) in the host map.
    case l1
    /// L2 tables in the host map.
    case l2
    /// Refcount table and blocks in the host map.
    case refcount
    /// Guest data clusters.
    case data
    /// Compressed clusters.
    case compressed
    /// Clusters that read as zeroes.
    case zero
    /// Unallocated / free space.
    case free
    /// Data that comes from a backing file.
    case backing
    /// Snapshot tables and clusters referenced only by snapshots.
    case snapshot
    /// Cells written during this session.
    case written
    /// Requests in flight.
    case inflight
    /// Bars of sparklines and histograms.
    case bar
}

/// Text attributes a cell can carry besides its role's colours.
package struct TextAttributes: OptionSet, Sendable, Hashable {
    /// The raw bits.
    package let rawValue: UInt8
    /// Creates attributes from raw bits.
    package init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Bold.
    package static let bold = TextAttributes(rawValue: 1)
    /// Reverse video (swap foreground and background).
    package static let reverse = TextAttributes(rawValue: 2)
    /// Underline.
    package static let underline = TextAttributes(rawValue: 4)
}

/// How one cell looks: a role plus extra attributes.
package struct CellStyle: Sendable, Hashable {
    /// The colour role.
    package var role: Role
    /// Extra attributes on top of the theme's.
    package var attributes: TextAttributes

    /// Creates a style.
    package init(_ role: Role = .normal, _ attributes: TextAttributes = []) {
        self.role = role
        self.attributes = attributes
    }

    /// Plain text.
    package static let normal = CellStyle(.normal)
}

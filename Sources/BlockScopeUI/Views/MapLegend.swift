import BlockCore
import BlockInspect

/// The Map's legend: which glyph means which kind, in the format's own words.
///
/// The roles are shared by every format (``Role/l1`` is one format's L1 table and another's
/// BAT), so the words come from the format's ``ImageInspector/legend``.
enum MapLegend {
    /// (role, name) pairs in the format's legend order.
    static func items(_ legend: [InspectLegendItem]) -> [(Role, String)] {
        legend.map { ($0.tone.role, $0.words) }
    }

    /// The letter a cell shows on a coloured background (the cursor, "written now"): a
    /// block glyph there would paint the whole cell in one colour and hide the background.
    static func letter(_ r: Role) -> Character {
        switch r {
        case .data: return "D"
        case .compressed: return "C"
        case .zero: return "Z"
        case .backing: return "B"
        case .free: return "."
        default: return MapView.glyph(r)
        }
    }
}

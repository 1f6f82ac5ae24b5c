import BlockCore

/// The Map's legend for one image format: which glyph means which region kind there.
///
/// The roles are shared by every format (``Role/l1`` is a QCOW2 L1 table and a VHDX BAT),
/// so the words must come from the format: a VHDX map never says "L2" or "snapshot".
enum MapLegend {
    /// (role, name) pairs in legend order for an image of `format`; `hasBat` tells a
    /// dynamic VHD (BAT, sector bitmaps) from a fixed one (plain data like RAW).
    static func items(format: ImageFormat, hasBat: Bool) -> [(Role, String)] {
        switch format {
        case .qcow2:
            return [(.header, "header"), (.l1, "L1"), (.l2, "L2"), (.refcount, "refcount"), (.data, "data"),
                    (.compressed, "compressed"), (.zero, "zero"), (.backing, "backing"), (.snapshot, "snapshot"),
                    (.warning, Explain.releasePending + " / refs unknown"), (.error, "leaked/corrupt/unreadable"), (.free, "free")]
        case .vhdx:
            return [(.header, "header/region table/metadata"), (.l2, "log"), (.l1, "BAT"), (.refcount, "sector bitmap"),
                    (.data, "payload"), (.backing, "partially present/parent"), (.zero, "zero/unmapped"), (.free, "not present/free")]
        case .vpc where hasBat:
            return [(.header, "footer/dynamic header"), (.l1, "BAT"), (.refcount, "sector bitmap"), (.data, "block data"),
                    (.backing, "parent"), (.free, "unallocated/free")]
        case .vmdk:
            return [(.header, "header/descriptor"), (.l1, "grain directory/tables"), (.data, "grain"), (.compressed, "compressed grain"),
                    (.backing, "parent"), (.free, "unallocated/free")]
        case .raw, .vpc:
            return [(.data, "data"), (.zero, "zero"), (.free, "hole")]
        }
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

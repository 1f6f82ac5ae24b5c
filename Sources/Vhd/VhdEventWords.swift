import BlockIO
import BlockMap
import BlockInspect

/// VHD's words for its queues' events and maps: BAT entries as sector numbers (0xFFFFFFFF:
/// no block), mappings in the BAT's words, a BAT update as a row of the allocation table.
public struct VhdEventWords: FormatEventWords {
    /// Words for any VHD image.
    public init() {}

    /// "block".
    public var allocationUnit: String { "block" }

    /// The BAT entry behind a mapping.
    public func mappingWords(_ kind: RegionKind, host: UInt64, op: GuestOp?) -> String? {
        switch kind {
        case .allocated, .shared:
            return "VHD BAT entry: block data at host \(hex(host)) (its sector bitmap marks these sectors)" + (op == .read ? ": read from there" : op == nil ? "" : ": written there in place")
        case .zero: return "VHD BAT entry 0xFFFFFFFF (no block): reads as zeroes"
        case .unallocated, .backing: return "VHD BAT entry: sectors not in this image: read from the parent"
        case .compressed, .mixed: return "several blocks, first at host \(hex(host))"
        }
    }

    /// A BAT entry: "0xFFFFFFFF (no block)", "sector 8: block at host 0x1000".
    public func entryWords(_ table: MetadataTable, _ value: UInt64) -> String? {
        guard table == .bat else { return nil }
        return value == 0xffff_ffff ? "0xFFFFFFFF (no block)" : "sector \(value): block at host \(hex(value * 512))"
    }

    /// "BAT".
    public func tableName(_ table: MetadataTable) -> String? { table == .bat ? "BAT" : nil }

    /// A BAT update is a row of the allocation table.
    public func target(ofUpdate table: MetadataTable, index: UInt64, guest: UInt64) -> (target: InspectTarget, name: String)? {
        table == .bat ? (.entry(InspectLink(.allocation, Int(index))), "BAT[\(index)]") : nil
    }
}

extension VhdDisk {
    /// A dynamic VHD: footer and dynamic header, BAT, sector bitmaps, block data; a fixed one
    /// is plain data.
    public var batLegend: [InspectLegendItem] {
        guard hasBat else { return [InspectLegendItem(.data, "data"), InspectLegendItem(.zero, "zero"), InspectLegendItem(.free, "hole")] }
        return [InspectLegendItem(.header, "footer/dynamic header"), InspectLegendItem(.table, "BAT"), InspectLegendItem(.counts, "sector bitmap"),
                InspectLegendItem(.data, "block data"), InspectLegendItem(.backing, "parent"), InspectLegendItem(.free, "unallocated/free")]
    }

    /// ``VhdEventWords``.
    public var batEventWords: any FormatEventWords { VhdEventWords() }
}

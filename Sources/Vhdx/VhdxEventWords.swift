import BlockIO
import BlockMap
import BlockInspect

/// VHDX's words for its queues' events and maps: BAT entries in MS-VHDX's state names and
/// FileOffsetMB, mappings in the BAT's words, a BAT update as a row of the allocation table.
public struct VhdxEventWords: FormatEventWords {
    /// Words for any VHDX image.
    public init() {}

    /// "payload block".
    public var allocationUnit: String { "payload block" }

    /// The BAT's states behind a mapping.
    public func mappingWords(_ kind: RegionKind, host: UInt64, op: GuestOp?) -> String? {
        switch kind {
        case .allocated, .shared:
            return "BAT: payload block at host \(hex(host)) (PAYLOAD_BLOCK_FULLY_PRESENT, or PARTIALLY_PRESENT with these sectors marked in the sector bitmap)" + (op == .read ? ": read from there" : op == nil ? "" : ": written there in place")
        case .zero: return "BAT: no payload here (PAYLOAD_BLOCK_NOT_PRESENT, ZERO, UNMAPPED or UNDEFINED): reads as zeroes"
        case .unallocated, .backing: return "BAT: PAYLOAD_BLOCK_PARTIALLY_PRESENT or NOT_PRESENT in a differencing image: these sectors come from the parent"
        case .compressed, .mixed: return "several BAT states (one per block), first at host \(hex(host))"
        }
    }

    /// A BAT entry: "FULLY_PRESENT at 0x300000".
    public func entryWords(_ table: MetadataTable, _ value: UInt64) -> String? {
        guard table == .bat else { return nil }
        let entry = VhdxBatEntry(raw: value)
        let state = entry.state?.name ?? "invalid state \(value & 7)"
        return entry.fileOffset == 0 ? state : "\(state) at \(hex(entry.fileOffset))"
    }

    /// "BAT".
    public func tableName(_ table: MetadataTable) -> String? { table == .bat ? "BAT" : nil }

    /// A BAT update is a row of the allocation table.
    public func target(ofUpdate table: MetadataTable, index: UInt64, guest: UInt64) -> (target: InspectTarget, name: String)? {
        table == .bat ? (.entry(InspectLink(.allocation, Int(index))), "BAT[\(index)]") : nil
    }
}

extension VhdxDisk {
    /// H headers, region tables, metadata; the log; the BAT; sector bitmaps; payload.
    public var batLegend: [InspectLegendItem] {
        [InspectLegendItem(.header, "header/region table/metadata"), InspectLegendItem(.subtable, "log"), InspectLegendItem(.table, "BAT"),
         InspectLegendItem(.counts, "sector bitmap"), InspectLegendItem(.data, "payload"), InspectLegendItem(.backing, "partially present/parent"),
         InspectLegendItem(.zero, "zero/unmapped"), InspectLegendItem(.free, "not present/free")]
    }

    /// ``VhdxEventWords``.
    public var batEventWords: any FormatEventWords { VhdxEventWords() }
}

import BlockIO
import BlockInspect
import BlockMap

extension VhdxDisk: ExplainableDisk {
    /// Headers (file identifier, two headers), region tables, log, metadata region, BAT,
    /// payload blocks (data), sector bitmaps, unused, past the end, holes. `convert` is what
    /// `qemu-img measure` says: QEMU 7.2's VHDX driver reports every guest byte as data.
    public func explain() throws(BlockError) -> ExplainReport {
        try ExplainReport.blockMap(self, file: file, format: "vhdx", kinds: ExplainSpaceKind.vhdx, measureAll: true) { r in
            switch r.kind {
            case .vhdxHeaders: return .formatHeaders
            case .vhdxRegionTable: return .regionTable
            case .vhdxLog: return .log
            case .vhdxMetadata: return .metadata
            case .bat: return .bat
            case .sectorBitmap: return .sectorBitmaps
            default: return .data
            }
        }
    }
}

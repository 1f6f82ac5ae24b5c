import BlockIO
import BlockInspect
import BlockMap

extension VhdDisk: ExplainableDisk {
    /// Footer copy and dynamic header, BAT, block bitmaps, data blocks, unused, past the
    /// end, holes, the footer; a fixed image is data and its footer.
    public func explain() throws(BlockError) -> ExplainReport {
        let size = try file.size()
        return try ExplainReport.blockMap(self, file: file, format: "vpc", kinds: ExplainSpaceKind.vhd) { r in
            switch r.kind {
            case .vhdFooter: return r.offset == 0 && size > 512 ? .formatHeaders : .footer
            case .vhdDynamicHeader: return .formatHeaders
            case .bat: return .bat
            case .vhdBlockBitmap: return .sectorBitmaps
            default: return .data
            }
        }
    }
}

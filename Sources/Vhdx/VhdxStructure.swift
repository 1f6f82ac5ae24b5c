import BlockMap
import BlockIO
import BlockInspect

extension VhdxDisk: StructuredDisk {
    /// 1 MiB: VHDX aligns every region and block to it.
    public var structureUnit: UInt64 { VhdxLayout.mb }

    /// File identifier, headers, region tables, log, BAT and metadata region from
    /// ``VhdxLayout`` and the parsed header and region table; no BAT walk.
    public func hostRegions() -> [HostRegion] {
        let m = metadata
        let h = m.currentHeader
        return [
            HostRegion(kind: .vhdxHeaders, offset: VhdxLayout.identifierOffset, length: VhdxLayout.headerOffsets[0], label: "file identifier"),
            HostRegion(kind: .vhdxHeaders, offset: VhdxLayout.headerOffsets[0], length: VhdxLayout.regionTableOffsets[0] - VhdxLayout.headerOffsets[0], label: "headers"),
            HostRegion(kind: .vhdxRegionTable, offset: VhdxLayout.regionTableOffsets[0], length: UInt64(VhdxLayout.regionTableSize) * 2, label: "region tables"),
            HostRegion(kind: .vhdxLog, offset: h.logOffset, length: UInt64(h.logLength)),
            HostRegion(kind: .bat, offset: m.batRegion.fileOffset, length: UInt64(m.batRegion.length)),
            HostRegion(kind: .vhdxMetadata, offset: m.metadataRegion.fileOffset, length: UInt64(m.metadataRegion.length), label: "metadata region"),
        ]
    }

    /// The regions plus every allocated payload block and sector bitmap block of the BAT
    /// (one pass over the BAT; 1 byte per MiB of file).
    public func walkStructure(progress: ((Double) -> Bool)?) throws(BlockError) -> HostUseMap {
        var regions = hostRegions()
        let g = metadata.geometry
        let per = Int(g.chunkRatio + 1)
        let bat = metadata.batSnapshot()
        for (i, raw) in bat.enumerated() {
            if i & 0xffff == 0, let progress, !progress(Double(i) / Double(bat.count)) {
                throw BlockError(.cancelled, "BAT walk cancelled", path: path)
            }
            let e = VhdxBatEntry(raw: raw)
            guard e.fileOffset != 0, e.state == .fullyPresent || e.state == .partiallyPresent else { continue }
            let isBitmap = (i + 1) % per == 0
            regions.append(HostRegion(kind: isBitmap ? .sectorBitmap : .payload, offset: e.fileOffset, length: isBitmap ? VhdxLayout.mb : g.blockSize))
        }
        _ = progress?(1)
        return HostUseMap(unit: VhdxLayout.mb, fileSize: try file.size(), regions: regions)
    }
}

import BlockMap
import BlockIO
import BlockInspect

extension VhdDisk: StructuredDisk {
    /// 512 bytes: VHD's sector, the granularity of its bitmaps and blocks.
    public var structureUnit: UInt64 { 512 }

    /// Footer (and its copy at 0), dynamic header and BAT of a dynamic or differencing
    /// image; the footer alone for a fixed one.
    public func hostRegions() -> [HostRegion] {
        let size = (try? file.size()) ?? 0
        var out = [HostRegion(kind: .vhdFooter, offset: size >= 512 ? size - 512 : 0, length: 512)]
        guard let m = metadata else { return out }
        out.insert(HostRegion(kind: .vhdFooter, offset: 0, length: 512, label: "footer copy"), at: 0)
        out.append(HostRegion(kind: .vhdDynamicHeader, offset: 512, length: 1024))
        out.append(HostRegion(kind: .bat, offset: m.dynamic.tableOffset, length: (UInt64(m.dynamic.maxTableEntries) * 4 + 511) / 512 * 512))
        return out
    }

    /// The regions plus each allocated block's bitmap and data (one pass over the BAT). A
    /// fixed image is data up to its footer.
    public func walkStructure(progress: ((Double) -> Bool)?) throws(BlockError) -> HostUseMap {
        let size = try file.size()
        var regions = hostRegions()
        if let m = metadata {
            let bs = UInt64(m.dynamic.blockSize), bm = m.dynamic.bitmapSize
            let bat = m.batSnapshot()
            for (i, sector) in bat.enumerated() where sector != VhdMetadata.unallocated {
                if i & 0xffff == 0, let progress, !progress(Double(i) / Double(bat.count)) {
                    throw BlockError(.cancelled, "BAT walk cancelled", path: path)
                }
                let off = UInt64(sector) * 512
                regions.append(HostRegion(kind: .vhdBlockBitmap, offset: off, length: bm))
                regions.append(HostRegion(kind: .payload, offset: off + bm, length: bs))
            }
        } else if size >= 512 {
            regions.append(HostRegion(kind: .rawData, offset: 0, length: size - 512, label: "data"))
        }
        _ = progress?(1)
        return HostUseMap(unit: 512, fileSize: size, regions: regions)
    }
}

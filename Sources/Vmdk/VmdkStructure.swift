import BlockIO
import BlockInspect
import BlockMap

/// The host regions of the extent the host views show; the TUI reads VMDK through
/// ``VmdkInspection`` (grain directory and grain tables as the neutral model's tables).
extension VmdkDisk: StructuredDisk {
    /// 512 bytes: VMDK's sector, the unit of every offset it stores.
    public var structureUnit: UInt64 { 512 }

    /// The extent whose file the host views show: the first sparse extent (the image file
    /// itself for monolithicSparse and streamOptimized).
    var shownExtent: VmdkExtent? { extents.first { $0.grains != nil } }

    /// Sparse header, embedded descriptor, redundant grain directory and grain directory of
    /// the shown extent, with their tables (from the directories already read; no table read).
    public func hostRegions() -> [HostRegion] {
        guard let e = shownExtent, let g = e.grains else {
            return [HostRegion(kind: .rawData, offset: 0, length: (try? file.size()) ?? 0, label: "descriptor")]
        }
        var out: [HostRegion] = [HostRegion(kind: .vhdxHeaders, offset: 0, length: 512, label: g.seSparse ? "seSparse header" : "sparse header")]
        if let h = g.header {
            if h.descriptorOffset != 0 { out.append(HostRegion(kind: .vhdxHeaders, offset: h.descriptorOffset * 512, length: h.descriptorSize * 512, label: "embedded descriptor")) }
            if let r = g.redundantDirectory {
                out.append(HostRegion(kind: .bat, offset: h.rgdOffset * 512, length: (UInt64(r.count) * 4 + 511) / 512 * 512, label: "redundant grain directory"))
                for (i, t) in r.enumerated() where t != 0 { out.append(HostRegion(kind: .bat, offset: t * 512, length: h.tableBytes, label: "redundant grain table \(i)")) }
            }
        }
        let entry: UInt64 = g.seSparse ? 8 : 4
        out.append(HostRegion(kind: .bat, offset: g.directoryOffset, length: (UInt64(g.directory.count) * entry + 511) / 512 * 512, label: "grain directory"))
        for (i, t) in g.directory.enumerated() where t != 0 {
            out.append(HostRegion(kind: .bat, offset: t * 512, length: UInt64(g.tableEntries) * entry, label: "grain table \(i)"))
        }
        return out
    }

    /// The regions plus every allocated grain of the shown extent (one pass over its tables).
    public func walkStructure(progress: ((Double) -> Bool)?) throws(BlockError) -> HostUseMap {
        var regions = hostRegions()
        guard let e = shownExtent, let g = e.grains else { return HostUseMap(unit: 512, fileSize: try file.size(), regions: regions) }
        let grains = (e.length + g.grainBytes - 1) / g.grainBytes
        // A grain table at a time (``forEachGrainTable``), as map and check walk them.
        try forEachGrainTable(g, grains: grains, { (first, _, states) throws(BlockError) -> Bool in
            if let progress, !progress(Double(first) / Double(max(grains, 1))) {
                throw BlockError(.cancelled, "grain walk cancelled", path: path)
            }
            for state in states ?? [] {
                switch state {
                case let .data(h): regions.append(HostRegion(kind: .payload, offset: h, length: g.grainBytes, label: "grain"))
                case let .compressed(h): regions.append(HostRegion(kind: .compressed, offset: h, length: 512, label: "compressed grain"))
                default: break
                }
            }
            return true
        }, failed: { (_, error) throws(BlockError) in throw error })
        _ = progress?(1)
        return HostUseMap(unit: 512, fileSize: try e.file!.size(), regions: regions)
    }
}

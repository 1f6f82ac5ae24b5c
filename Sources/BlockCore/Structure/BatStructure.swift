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

extension RawDisk: StructuredDisk {
    /// 64 KiB.
    public var structureUnit: UInt64 { 64 << 10 }

    /// No metadata: the whole file as one data region.
    public func hostRegions() -> [HostRegion] {
        [HostRegion(kind: .rawData, offset: 0, length: logicalSize, label: "raw data")]
    }

    /// Data and holes of the file (SEEK_DATA/SEEK_HOLE).
    public func walkStructure(progress: ((Double) -> Bool)?) throws(BlockError) -> HostUseMap {
        let regions = allocationExtents().map { e in HostRegion(kind: e.data ? .rawData : .rawHole, offset: e.offset, length: e.length) }
        _ = progress?(1)
        return HostUseMap(unit: 64 << 10, fileSize: logicalSize, regions: regions)
    }
}

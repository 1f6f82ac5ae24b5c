extension VmdkDisk: BatStructure {
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
        for grain in 0..<grains {
            if grain & 0xffff == 0, let progress, !progress(Double(grain) / Double(max(grains, 1))) {
                throw BlockError(.cancelled, "grain walk cancelled", path: path)
            }
            switch try lock.locked({ () throws(BlockError) in try g.state(grain) }) {
            case let .data(h): regions.append(HostRegion(kind: .payload, offset: h, length: g.grainBytes, label: "grain"))
            case let .compressed(h): regions.append(HostRegion(kind: .compressed, offset: h, length: 512, label: "compressed grain"))
            default: break
            }
        }
        _ = progress?(1)
        return HostUseMap(unit: 512, fileSize: try e.file!.size(), regions: regions)
    }

    /// The grain size shared by every extent when all are sparse (nil otherwise: then there
    /// is no table to show).
    private var uniformGrain: UInt64? {
        guard let first = extents.first?.grains?.grainBytes else { return nil }
        return extents.allSatisfy({ $0.grains?.grainBytes == first }) ? first : nil
    }

    /// True when every extent is sparse with one grain size: the grain tables read as one
    /// table, one entry per guest grain.
    public var hasBat: Bool { uniformGrain != nil }
    /// One entry per guest grain.
    public var batEntryCount: Int { uniformGrain.map { Int((logicalSize + $0 - 1) / $0) } ?? 0 }
    /// The grain size.
    public var batBlockSize: UInt64 { uniformGrain ?? 0 }
    /// Whether unallocated grains read from a parent.
    public var batHasParent: Bool { parent != nil }
    /// The shown extent's grain directory (4-byte entries; 8 for seSparse).
    public var batLocation: (offset: UInt64, length: UInt64, entrySize: Int) {
        guard let g = shownExtent?.grains else { return (0, 0, 4) }
        let size = g.seSparse ? 8 : 4
        return (g.directoryOffset, UInt64(g.directory.count * size), size)
    }

    /// Grain `index` of the guest: its extent, grain table and entry, decoded by the one
    /// decoder (``VmdkGrainMap/decode(_:grain:)``).
    public func batEntry(_ index: Int) -> BatEntryDescription {
        let bs = batBlockSize
        let guest = UInt64(index) * bs
        let ei = extentIndex(guest)
        let e = extents[ei]
        guard let g = e.grains else { return BatEntryDescription(index: index, block: UInt64(index), guestOffset: guest, state: .invalid, stateName: "flat", hostOffset: nil, raw: 0) }
        let grain = (guest - e.guestStart) / g.grainBytes
        let table = Int(grain / UInt64(g.tableEntries))
        let place = "extent \(ei + 1) GT \(table) entry \(grain % UInt64(g.tableEntries))"
        do {
            let (raw, state) = try lock.locked { () throws(BlockError) -> (UInt64?, VmdkGrainState) in (try g.rawEntry(grain), try g.state(grain)) }
            switch state {
            case .unallocated:
                return BatEntryDescription(index: index, block: UInt64(index), guestOffset: guest, state: .absent,
                                           stateName: raw == nil ? "no grain table" : "unallocated", hostOffset: nil, detail: place, raw: raw ?? 0)
            case .zero:
                return BatEntryDescription(index: index, block: UInt64(index), guestOffset: guest, state: .zero, stateName: "zeroed", hostOffset: nil, detail: place, raw: raw ?? 0)
            case let .data(h):
                return BatEntryDescription(index: index, block: UInt64(index), guestOffset: guest, state: .present, stateName: "allocated", hostOffset: h, detail: place, raw: raw ?? 0)
            case let .compressed(h):
                return BatEntryDescription(index: index, block: UInt64(index), guestOffset: guest, state: .present, stateName: "compressed", hostOffset: h, detail: place, raw: raw ?? 0)
            }
        } catch let err {
            return BatEntryDescription(index: index, block: UInt64(index), guestOffset: guest, state: .invalid, stateName: "invalid", hostOffset: nil, detail: err.message, raw: 0)
        }
    }

    /// The entry of the grain holding guest byte `offset`; nil past the disk.
    public func batEntry(forGuest offset: UInt64) -> BatEntryDescription? {
        guard hasBat, offset < logicalSize else { return nil }
        return batEntry(Int(offset / batBlockSize))
    }

    /// The descriptor and each sparse extent's header, described.
    public func batSections() -> [StructureSection] {
        let d = descriptor
        var rows: [(label: String, value: String, tone: StructureTone)] = [
            ("createType", createType, .header), ("version", String(d.version), .normal),
            ("CID", vmdkCID(d.cid), .normal), ("parentCID", vmdkCID(d.parentCID), .normal),
        ]
        if let h = d.parentFileNameHint { rows.append(("parentFileNameHint", h, .backing)) }
        for (i, e) in extents.enumerated() { rows.append(("extent \(i + 1)", e.line.text, .table)) }
        var out = [StructureSection("Descriptor", rows)]
        for (i, e) in extents.enumerated() {
            guard let g = e.grains else { continue }
            let name = e.path.map { String($0.split(separator: "/").last ?? "") } ?? ""
            if let h = g.header {
                var f: [String] = []
                if h.flags & VmdkSparseHeader.flagNewlineDetect != 0 { f.append("newline test") }
                if h.flags & VmdkSparseHeader.flagRedundantGD != 0 { f.append("redundant GD") }
                if h.hasZeroedGrains { f.append("zeroed grains") }
                if h.flags & VmdkSparseHeader.flagCompressed != 0 { f.append("compressed") }
                if h.hasMarkers { f.append("markers") }
                out.append(StructureSection("Sparse extent \(i + 1) (\(name))", [
                    ("version", String(h.version), h.version == 3 ? .warning : .normal),
                    ("flags", hex(UInt64(h.flags)) + (f.isEmpty ? "" : " (" + f.joined(separator: ", ") + ")"), .normal),
                    ("capacity", "\(h.capacity) sectors", .normal), ("grain", "\(h.grainSize) sectors", .normal),
                    ("GTEs per GT", String(h.numGTEsPerGT), .normal),
                    ("grain directory", hex(g.directoryOffset) + " (\(g.directory.count) tables)", .table),
                    ("redundant GD", g.redundantDirectory == nil ? "none" : hex(h.rgdOffset * 512), .table),
                    ("overhead", "\(h.overHead) sectors", .dim),
                    ("compression", h.compressAlgorithm == 1 ? "deflate" : "none", .dim),
                ]))
            } else if let h = g.seHeader {
                out.append(StructureSection("seSparse extent \(i + 1) (\(name))", [
                    ("capacity", "\(h.capacity) sectors", .normal), ("grain", "\(h.grainSize) sectors", .normal),
                    ("grain directory", hex(g.directoryOffset) + " (\(g.directory.count) tables)", .table),
                    ("grain tables", hex(h.grainTablesOffset * 512), .table), ("grains", hex(h.grainsOffset * 512), .normal),
                ]))
            }
        }
        return out
    }

    /// Grains by state name: allocated, compressed, zeroed, unallocated.
    public func batStateCounts() -> [(state: String, count: Int)] {
        var c: [String: Int] = [:]
        for i in 0..<batEntryCount { c[batEntry(i).stateName, default: 0] += 1 }
        return ["allocated", "compressed", "zeroed", "unallocated", "no grain table", "invalid"].compactMap { name in c[name].map { (state: name, count: $0) } }
    }
}

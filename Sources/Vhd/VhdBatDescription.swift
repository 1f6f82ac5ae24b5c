import BlockMap
import BlockIO
import BlockInspect

extension VhdDisk: BatStructure {
    /// True for a dynamic or differencing VHD; a fixed VHD has no BAT.
    public var hasBat: Bool { metadata != nil }
    /// The dynamic header's MaxTableEntries (0 for a fixed VHD).
    public var batEntryCount: Int { Int(metadata?.dynamic.maxTableEntries ?? 0) }
    /// The dynamic header's block size (the whole disk for a fixed VHD).
    public var batBlockSize: UInt64 { metadata.map { UInt64($0.dynamic.blockSize) } ?? max(logicalSize, 1) }
    /// Whether the disk is differencing with an open parent.
    public var batHasParent: Bool { parent != nil }
    /// The BAT: 4-byte entries, rounded up to whole sectors.
    public var batLocation: (offset: UInt64, length: UInt64, entrySize: Int) {
        guard let d = metadata?.dynamic else { return (0, 0, 4) }
        return (d.tableOffset, UInt64(d.maxTableEntries) * 4, 4)
    }

    /// Entry `index`: the sector of block `index`'s bitmap (its data follows the bitmap),
    /// or unallocated.
    public func batEntry(_ index: Int) -> BatEntryDescription {
        guard let m = metadata else {
            return BatEntryDescription(index: index, block: UInt64(index), guestOffset: nil, state: .invalid, stateName: "no BAT (fixed VHD)", hostOffset: nil, raw: 0)
        }
        let e = m.batRaw(index)
        let bs = UInt64(m.dynamic.blockSize)
        if e == VhdMetadata.unallocated {
            return BatEntryDescription(index: index, block: UInt64(index), guestOffset: UInt64(index) * bs, state: .absent,
                                       stateName: parent != nil ? "unallocated (parent)" : "unallocated (zeroes)", hostOffset: nil, raw: UInt64(e))
        }
        let bitmap = UInt64(e) * 512
        return BatEntryDescription(index: index, block: UInt64(index), guestOffset: UInt64(index) * bs, state: .present, stateName: "allocated",
                                   hostOffset: bitmap + m.dynamic.bitmapSize, detail: "bitmap at \(hex(bitmap))", raw: UInt64(e))
    }

    /// The entry of the block holding guest byte `offset`.
    public func batEntry(forGuest offset: UInt64) -> BatEntryDescription? {
        guard let m = metadata else { return nil }
        let i = offset / UInt64(m.dynamic.blockSize)
        return offset < logicalSize && i < UInt64(batEntryCount) ? batEntry(Int(i)) : nil
    }

    /// Footer and dynamic header as parsed at open (no BAT walk).
    public func batSections() -> [StructureSection] {
        let f = footer
        var out = [StructureSection("Footer", [
            ("disk type", f.diskType.name, .normal),
            ("creator", "\(f.creator.trimmingCharacters(in: " ")) v\(f.creatorVersion >> 16).\(f.creatorVersion & 0xffff)", .normal),
            ("size", "current \(f.currentSize), CHS \(f.cylinders)/\(f.heads)/\(f.sectorsPerTrack), guest \(f.virtualSize)", .normal),
            ("checksum", "valid (checked on open)", .ok),
        ])]
        if let d = metadata?.dynamic {
            var dyn: [(label: String, value: String, tone: StructureTone)] = [
                ("block size", formatBytes(Double(d.blockSize)), .normal),
                ("BAT", "\(d.maxTableEntries) entries at \(hex(d.tableOffset))", .table),
                ("sector bitmap", "\(d.bitmapSize) bytes before each block", .dim),
            ]
            if !d.parentName.isEmpty { dyn.append(("parent", d.parentName, .backing)) }
            out.append(StructureSection("Dynamic header", dyn))
        }
        return out
    }

    /// Entries allocated and unallocated.
    public func batStateCounts() -> [(state: String, count: Int)] {
        guard let m = metadata else { return [] }
        var allocated = 0
        for i in 0..<batEntryCount where m.batRaw(i) != VhdMetadata.unallocated { allocated += 1 }
        return [("allocated", allocated), ("unallocated", batEntryCount - allocated)]
    }
}

extension String {
    /// The string without leading and trailing `c` characters.
    fileprivate func trimmingCharacters(in c: Character) -> String {
        var s = Substring(self)
        while s.first == c { s = s.dropFirst() }
        while s.last == c { s = s.dropLast() }
        return String(s)
    }
}

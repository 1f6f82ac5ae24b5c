import BlockMap
import BlockIO
import BlockInspect

extension VhdxDisk: BatStructure {
    /// Always true: every VHDX has a BAT (a fixed one has every payload entry present).
    public var hasBat: Bool { true }
    /// Payload and sector-bitmap entries (``VhdxBatGeometry/totalEntries``).
    public var batEntryCount: Int { Int(metadata.geometry.totalEntries) }
    /// The payload block size.
    public var batBlockSize: UInt64 { metadata.geometry.blockSize }
    /// Whether the disk is differencing with an open parent.
    public var batHasParent: Bool { parent != nil }
    /// The BAT region of the region table; 8-byte entries.
    public var batLocation: (offset: UInt64, length: UInt64, entrySize: Int) {
        (metadata.batRegion.fileOffset, UInt64(metadata.batRegion.length), 8)
    }

    /// Entry `index`: a payload block, or every `chunkRatio + 1`-th entry a sector bitmap
    /// (MS-VHDX 2.5), with its MS-VHDX state name and FileOffsetMB in bytes.
    public func batEntry(_ index: Int) -> BatEntryDescription {
        let raw = metadata.batRaw(index)
        let e = VhdxBatEntry(raw: raw)
        let g = metadata.geometry
        let per = Int(g.chunkRatio + 1)
        let name = e.state?.name ?? "invalid \(raw & 7)"
        let host = e.fileOffset != 0 ? e.fileOffset : nil
        if (index + 1) % per == 0 {
            let st: BatEntryState = e.state == .fullyPresent ? .present : e.state == .notPresent ? .absent : .invalid
            return BatEntryDescription(index: index, isSectorBitmap: true, block: UInt64(index / per), guestOffset: nil, state: st,
                                       stateName: name, hostOffset: host, raw: raw)
        }
        let block = UInt64(index - index / per)
        let st: BatEntryState
        switch e.state {
        case .fullyPresent: st = .present
        case .partiallyPresent: st = .partial
        case .notPresent: st = .absent
        case nil: st = .invalid
        default: st = .zero
        }
        return BatEntryDescription(index: index, block: block, guestOffset: block * g.blockSize, state: st, stateName: name,
                                   hostOffset: host, raw: raw)
    }

    /// The payload entry of the block holding guest byte `offset`.
    public func batEntry(forGuest offset: UInt64) -> BatEntryDescription? {
        let idx = metadata.geometry.payloadIndex(offset / metadata.geometry.blockSize)
        return offset < logicalSize && idx < batEntryCount ? batEntry(idx) : nil
    }

    /// Headers (both slots: sequence, CRC, which is current), region table, metadata items
    /// and log state, from ``VhdxMetadata``; reads the two header slots, not the BAT.
    public func batSections() -> [StructureSection] {
        let m = metadata
        var headers: [(label: String, value: String, tone: StructureTone)] = []
        do {
            for slot in try m.headerSlots() {
                if let h = slot.header {
                    headers.append(("header @\(hex(slot.offset))", "sequence \(h.sequenceNumber), CRC ok\(slot.current ? ", current" : ""), version \(h.version)", slot.current ? .ok : .normal))
                } else {
                    headers.append(("header @\(hex(slot.offset))", "bad signature or CRC-32C", .error))
                }
            }
        } catch let e {
            headers.append(("headers", "unreadable: \(e.message)", .error))
        }
        let i = m.items
        let h = m.currentHeader
        let g = m.geometry
        return [
            StructureSection("Headers", headers),
            StructureSection("Region table", [
                ("BAT", "\(hex(m.batRegion.fileOffset)) +\(formatBytes(Double(m.batRegion.length)))", .table),
                ("metadata", "\(hex(m.metadataRegion.fileOffset)) +\(formatBytes(Double(m.metadataRegion.length)))", .header),
            ]),
            StructureSection("Metadata items", [
                ("block size", formatBytes(Double(i.blockSize)), .normal),
                ("sectors", "logical \(i.logicalSectorSize), physical \(i.physicalSectorSize)", .normal),
                ("virtual size", "\(i.virtualSize)", .normal),
                ("type", i.hasParent ? "differencing\(i.parentLocator?["relative_path"].map { " (parent \($0))" } ?? "")" : (i.leaveBlocksAllocated ? "fixed" : "dynamic"), .normal),
                ("chunk ratio", "\(g.chunkRatio) payload blocks per sector bitmap", .dim),
            ]),
            StructureSection("Log", [
                ("log", "\(hex(h.logOffset)) +\(formatBytes(Double(h.logLength))), \(h.logGuid.isZero ? "clean (log GUID zero)" : "active log GUID \(h.logGuid)")", h.logGuid.isZero ? .ok : .warning),
                ("replayed on open", "\(m.replayedEntries) entries\(m.replayedInMemory ? " (in memory, read-only open)" : "")", m.replayedEntries > 0 ? .warning : .dim),
            ]),
        ]
    }

    /// Payload entries by MS-VHDX state name (sector bitmap entries not counted), by name.
    public func batStateCounts() -> [(state: String, count: Int)] {
        let byState = metadata.payloadStateCounts()
        var counts: [String: Int] = [:]
        for (v, n) in byState.enumerated() where n > 0 { counts[VhdxBlockState(rawValue: UInt8(v))?.name ?? "invalid", default: 0] += n }
        return counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
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

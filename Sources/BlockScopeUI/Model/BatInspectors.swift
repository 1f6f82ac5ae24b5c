import BlockCore

/// The host side of a BAT-format inspector: BlockCore's structure model of the file (named
/// regions and the per-MiB or per-sector use map) and its bytes. Decodes nothing itself.
struct HostRegionMap {
    let host: SystemFile?
    let disk: any StructuredDisk
    private(set) var regions: [HostRegion] = []
    private(set) var uses: HostUseMap?

    init(disk: any StructuredDisk) {
        self.disk = disk
        host = try? SystemFile(path: disk.path, writable: false)
        reload()
    }

    /// Rereads the regions and the use map (one pass over the BAT).
    mutating func reload() {
        regions = disk.hostRegions()
        uses = try? disk.walkStructure(progress: nil)
    }

    var hostSize: UInt64 { (try? host?.size()) ?? 0 }

    /// The most telling kind in `[start, start+length)` and its region's name.
    func hostRegionCell(_ start: UInt64, _ length: UInt64) -> (Role, String) {
        let end = start + max(length, 1)
        if let r = regions.last(where: { $0.offset < end && $0.offset + $0.length > start }) {
            return (r.kind.role, "\(r.label) at \(hex(r.offset))+\(formatBytes(Double(r.length)))")
        }
        guard let u = uses else { return (.free, "free / unused") }
        let d = u.dominant(Int(start / u.unit), Int((end + u.unit - 1) / u.unit))
        let first = start / u.unit * u.unit
        return d.kind == .free ? (.free, "free / unused") : (d.kind.role, "\(d.kind.name) at \(hex(first))")
    }

    func readHostBytes(at offset: UInt64, count: Int) -> [UInt8] {
        (try? host?.readBytes(at: offset, count: count)) ?? []
    }
}

/// The VHDX inspector: headers with sequence numbers and CRC status, region table,
/// metadata items, log state and the BAT (payload and sector-bitmap entries), from
/// BlockCore's ``VhdxDisk``/``VhdxMetadata``.
///
/// Map roles: H headers, region tables and metadata; 1 the BAT; 2 the log; R sector
/// bitmap blocks; █ payload blocks.
public final class VhdxInspector: BatInspector {
    let vhdx: VhdxDisk
    private var bat: [UInt64] = []
    private var hostMap: HostRegionMap

    /// Creates the inspector for an open VHDX disk.
    public init(disk: VhdxDisk) {
        vhdx = disk
        hostMap = HostRegionMap(disk: disk)
        reload()
    }

    /// Host file size.
    public var hostSize: UInt64 { hostMap.hostSize }

    /// "vhdx".
    public var formatName: String { "vhdx" }
    /// Guest size.
    public var guestSize: UInt64 { vhdx.logicalSize }
    private var g: VhdxBatGeometry { vhdx.metadata.geometry }

    /// Rereads the BAT and the regions.
    public func reload() {
        bat = vhdx.metadata.batSnapshot()
        hostMap.reload()
    }

    /// Headers, region table, metadata and log.
    public func batSections() -> [InfoSection] {
        let m = vhdx.metadata
        var headers: [(String, String, Role)] = []
        for slot in (try? m.headerSlots()) ?? [] {
            if let h = slot.header {
                headers.append(("header @\(hex(slot.offset))", "sequence \(h.sequenceNumber), CRC ok\(slot.current ? ", current" : ""), version \(h.version)", slot.current ? .ok : .normal))
            } else {
                headers.append(("header @\(hex(slot.offset))", "bad signature or CRC-32C", .error))
            }
        }
        let i = m.items
        let h = m.currentHeader
        return [
            InfoSection("Headers", headers),
            InfoSection("Region table", [
                ("BAT", "\(hex(m.batRegion.fileOffset)) +\(formatBytes(Double(m.batRegion.length)))", .l1),
                ("metadata", "\(hex(m.metadataRegion.fileOffset)) +\(formatBytes(Double(m.metadataRegion.length)))", .header),
            ]),
            InfoSection("Metadata items", [
                ("block size", formatBytes(Double(i.blockSize)), .normal),
                ("sectors", "logical \(i.logicalSectorSize), physical \(i.physicalSectorSize)", .normal),
                ("virtual size", "\(i.virtualSize)", .normal),
                ("type", i.hasParent ? "differencing\(i.parentLocator?["relative_path"].map { " (parent \($0))" } ?? "")" : (i.leaveBlocksAllocated ? "fixed" : "dynamic"), .normal),
                ("chunk ratio", "\(g.chunkRatio) payload blocks per sector bitmap", .dim),
            ]),
            InfoSection("Log", [
                ("log", "\(hex(h.logOffset)) +\(formatBytes(Double(h.logLength))), \(h.logGuid.isZero ? "clean (log GUID zero)" : "active log GUID \(h.logGuid)")", h.logGuid.isZero ? .ok : .warning),
                ("replayed on open", "\(m.replayedEntries) entries\(m.replayedInMemory ? " (in memory, read-only open)" : "")", m.replayedEntries > 0 ? .warning : .dim),
            ]),
        ]
    }

    /// BAT entries.
    public var batCount: Int { bat.count }

    /// One BAT entry: payload block or sector bitmap, state and file offset.
    public func batRow(_ index: Int) -> (String, Role) {
        let e = VhdxBatEntry(raw: bat[index])
        let state = e.state?.name ?? "invalid \(bat[index] & 7)"
        let per = Int(g.chunkRatio + 1)
        if (index + 1) % per == 0 {
            let chunk = index / per
            return ("BAT[\(index)]".padded(10) + "sector bitmap, chunk \(chunk)".padded(36) + state.padded(20) + (e.fileOffset != 0 ? hex(e.fileOffset) : ""), .refcount)
        }
        let block = UInt64(index - index / per)
        let role: Role = e.state == .fullyPresent ? .data : e.state == .partiallyPresent ? .backing : e.state == .notPresent ? .free : .zero
        return ("BAT[\(index)]".padded(10) + "block \(block) guest \(hex(block * g.blockSize))".padded(36) + state.padded(20) + (e.fileOffset != 0 ? hex(e.fileOffset) : ""), role)
    }

    /// The VHDX sections are shown in the BAT view; the Overview gets a summary.
    public func overviewSections() -> [InfoSection] {
        var byState = [Int](repeating: 0, count: 8)
        let per = Int(g.chunkRatio + 1)
        for i in 0..<bat.count where (i + 1) % per != 0 { byState[Int(bat[i] & 7)] += 1 }
        var counts: [String: Int] = [:]
        for (v, n) in byState.enumerated() where n > 0 { counts[VhdxBlockState(rawValue: UInt8(v))?.name ?? "invalid", default: 0] += n }
        return batSections() + [InfoSection("Payload blocks by state", counts.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)", Role.normal) })]
    }

    private func entry(forGuest offset: UInt64) -> VhdxBatEntry? {
        let block = offset / g.blockSize
        let idx = g.payloadIndex(block)
        return idx < bat.count ? VhdxBatEntry(raw: bat[idx]) : nil
    }

    /// The state of the blocks a guest range touches.
    public func guestCell(_ start: UInt64, _ length: UInt64) -> (Role, String) {
        guard let e = entry(forGuest: start) else { return (.free, "beyond the BAT") }
        let name = e.state?.name ?? "invalid"
        switch e.state {
        case .fullyPresent: return (.data, "\(name) at host \(hex(e.fileOffset + start % g.blockSize))")
        case .partiallyPresent: return (.backing, "\(name): sector bitmap decides (parent for the rest)")
        case .notPresent: return (vhdx.parent != nil ? .backing : .free, vhdx.parent != nil ? "NOT_PRESENT: read from the parent" : "NOT_PRESENT (reads zeroes)")
        default: return (.zero, "\(name) (reads zeroes)")
        }
    }

    /// What the host range holds.
    public func hostCell(_ start: UInt64, _ length: UInt64) -> (Role, String) { hostMap.hostRegionCell(start, length) }

    /// Guest offset → BAT entry → host offset.
    public func mapGuest(_ offset: UInt64) -> (host: UInt64?, text: String) {
        let block = offset / g.blockSize
        guard let e = entry(forGuest: offset) else { return (nil, "beyond the BAT") }
        let path = "block \(block) → BAT[\(g.payloadIndex(block))] = \(hex(e.raw)) \(e.state?.name ?? "invalid")"
        if e.state == .fullyPresent { let h = e.fileOffset + offset % g.blockSize; return (h, path + " → host \(hex(h))") }
        return (nil, path)
    }

    /// Decodes the BAT entry or names the region at a host offset.
    public func describeHost(_ offset: UInt64) -> String {
        let m = vhdx.metadata
        if offset >= m.batRegion.fileOffset && offset < m.batRegion.fileOffset + UInt64(m.batRegion.length) {
            let i = Int((offset - m.batRegion.fileOffset) / 8)
            return i < bat.count ? batRow(i).0 : "BAT slack"
        }
        return hostMap.hostRegionCell(offset, 1).1
    }

    /// Reads host bytes.
    public func readHost(at offset: UInt64, count: Int) -> [UInt8] { hostMap.readHostBytes(at: offset, count: count) }
}

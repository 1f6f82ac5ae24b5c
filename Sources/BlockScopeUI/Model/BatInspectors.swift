import BlockCore

/// A host-file region a BAT-format inspector draws in the map.
struct HostRegion {
    var offset: UInt64
    var length: UInt64
    var role: Role
    var name: String
}

/// The host side of a BAT-format inspector: named regions of the host file and its bytes.
struct HostRegionMap {
    let host: SystemFile?
    var regions: [HostRegion] = []

    init(path: String) {
        host = try? SystemFile(path: path, writable: false)
    }

    var hostSize: UInt64 { (try? host?.size()) ?? 0 }

    func hostRegionCell(_ start: UInt64, _ length: UInt64) -> (Role, String) {
        let rank: [Role: Int] = [.free: 0, .data: 1, .refcount: 2, .l2: 3, .l1: 4, .header: 5]
        var best: (Role, String) = (.free, "free / unused")
        for r in regions where r.offset < start + length && r.offset + r.length > start {
            if rank[r.role, default: 0] > rank[best.0, default: 0] { best = (r.role, "\(r.name) at \(hex(r.offset))+\(formatBytes(Double(r.length)))") }
        }
        return best
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
        hostMap = HostRegionMap(path: disk.path)
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
        let m = vhdx.metadata
        let h = m.currentHeader
        var regions = [
            HostRegion(offset: 0, length: 64 << 10, role: .header, name: "file identifier"),
            HostRegion(offset: 64 << 10, length: 128 << 10, role: .header, name: "headers"),
            HostRegion(offset: 192 << 10, length: 128 << 10, role: .header, name: "region tables"),
            HostRegion(offset: h.logOffset, length: UInt64(h.logLength), role: .l2, name: "log"),
            HostRegion(offset: m.batRegion.fileOffset, length: UInt64(m.batRegion.length), role: .l1, name: "BAT"),
            HostRegion(offset: m.metadataRegion.fileOffset, length: UInt64(m.metadataRegion.length), role: .header, name: "metadata region"),
        ]
        for (i, raw) in bat.enumerated() {
            let e = VhdxBatEntry(raw: raw)
            guard e.fileOffset != 0, e.state == .fullyPresent || e.state == .partiallyPresent else { continue }
            let isBitmap = (i + 1) % Int(g.chunkRatio + 1) == 0
            regions.append(HostRegion(offset: e.fileOffset, length: isBitmap ? 1 << 20 : g.blockSize, role: isBitmap ? .refcount : .data,
                                      name: isBitmap ? "sector bitmap (BAT[\(i)])" : "payload block (BAT[\(i)])"))
        }
        hostMap.regions = regions
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
        var counts: [String: Int] = [:]
        for i in 0..<bat.count where (i + 1) % Int(g.chunkRatio + 1) != 0 { counts[VhdxBatEntry(raw: bat[i]).state?.name ?? "invalid", default: 0] += 1 }
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

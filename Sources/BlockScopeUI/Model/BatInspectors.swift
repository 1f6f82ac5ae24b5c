import BlockCore

/// What a background walk of a BAT image yields: the host use map and the payload entries
/// by state.
struct BatWalk: Sendable {
    let uses: HostUseMap
    let states: [(state: String, count: Int)]
}

/// The inspector of any image with a block allocation table (VHDX, dynamic and
/// differencing VHD), through BlockCore's ``BatStructure`` capability: entries, headers and
/// regions come decoded from the format's parsers; this type only words and colours them.
///
/// Lazy: opening reads nothing beyond what the disk's open read; rows are read from the live
/// BAT when drawn; the host use map and the state counts (a pass over the whole BAT) are
/// built on a background thread the first time a view asks.
///
/// Map roles: H headers, region tables, metadata, footers; 1 the BAT; 2 the log; R sector
/// bitmap blocks; █ payload blocks.
public final class BatFormatInspector: BatInspector {
    let disk: any BatStructure
    private let host: SystemFile?
    private let regions: [HostRegion]
    private var walker: BackgroundWalk<BatWalk>

    /// Creates the inspector for an open disk with a BAT; nil when it has none (a fixed VHD).
    public init?(disk: any BatStructure) {
        guard disk.hasBat else { return nil }
        self.disk = disk
        host = try? SystemFile(path: disk.path, writable: false)
        regions = disk.hostRegions()
        walker = BatFormatInspector.walker(disk)
    }

    private static func walker(_ d: any BatStructure) -> BackgroundWalk<BatWalk> {
        BackgroundWalk { (progress) throws(BlockError) -> BatWalk in
            let u = try d.walkStructure(progress: progress)
            guard progress(1) else { throw BlockError(.cancelled, "walk cancelled") }
            return BatWalk(uses: u, states: d.batStateCounts())
        }
    }

    /// qemu-img's format name ("vhdx", "vpc").
    public var formatName: String { disk.format.rawValue }
    /// Guest size.
    public var guestSize: UInt64 { disk.logicalSize }
    /// Host file size.
    public var hostSize: UInt64 { (try? host?.size()) ?? 0 }

    private var walked: BatWalk? {
        if !walker.started { walker.start() }
        return walker.map
    }

    /// The walk's state in words while its result is missing or stale; nil when current.
    var walkStatus: String? {
        if let p = walker.progress { return "walking the BAT \(Int(p * 100))%" }
        if let e = walker.error { return "walk failed: \(e)" }
        if walker.cancelled { return "walk cancelled (x walks again)" }
        return walker.map == nil ? "walk not started" : nil
    }

    /// Rereads the regions' use map in the background (rows are always read live).
    public func reload() {
        if walker.started && !walker.cancelled { walker.start() }
    }

    /// The running walk over the BAT, for the footer.
    public var backgroundProgress: WalkProgress? {
        walker.progress.map { WalkProgress(what: "BAT entries", fraction: $0, total: disk.batEntryCount) }
    }

    /// Holds or releases the background walk (see ``LayoutInspector/holdBackground(_:)``).
    public func holdBackground(_ on: Bool) { walker.hold(on) }

    /// Stops the running walk, or walks again after a cancelled one.
    public func toggleBackground() -> String? {
        if walker.progress != nil { walker.cancel(); return "walk of the BAT cancelled (x walks again)" }
        if walker.cancelled || !walker.started { walker.start(); return "walking the BAT again" }
        return nil
    }

    /// Headers and metadata as the format describes them.
    public func batSections() -> [InfoSection] {
        disk.batSections().map { sec in InfoSection(sec.title, sec.rows.map { ($0.label, $0.value, $0.tone.role) }) }
    }

    /// BAT entries.
    public var batCount: Int { disk.batEntryCount }

    /// One BAT entry: what it maps, its state and where its block lies.
    public func batRow(_ index: Int) -> (String, Role) {
        let e = disk.batEntry(index)
        let what = e.isSectorBitmap ? "sector bitmap, chunk \(e.block)" : "block \(e.block) guest \(hex(e.guestOffset ?? 0))"
        let whereText = [e.detail, e.hostOffset.map { (e.detail.isEmpty ? "" : "data at ") + hex($0) } ?? ""].filter { !$0.isEmpty }.joined(separator: ", ")
        return ("BAT[\(index)]".padded(10) + what.padded(36) + e.stateName.padded(20) + whereText, e.isSectorBitmap ? .refcount : role(e))
    }

    private func role(_ e: BatEntryDescription) -> Role {
        switch e.state {
        case .present: return .data
        case .partial: return .backing
        case .absent: return disk.batHasParent ? .backing : .free
        case .zero: return .zero
        case .invalid: return .error
        }
    }

    /// The format's sections and the payload entries by state (once the walk is done).
    public func overviewSections() -> [InfoSection] {
        let states: InfoSection
        if let w = walked {
            states = InfoSection("Payload blocks by state", w.states.map { ($0.state, "\($0.count)", Role.normal) })
        } else {
            states = InfoSection("Payload blocks by state", [("walk", walkStatus ?? "", .dim)])
        }
        return batSections() + [states]
    }

    /// The state of the block a guest range starts in.
    public func guestCell(_ start: UInt64, _ length: UInt64) -> (Role, String) {
        guard let e = disk.batEntry(forGuest: start) else { return (.free, "beyond the BAT") }
        let inBlock = start % disk.batBlockSize
        switch e.state {
        case .present: return (.data, "\(e.stateName) at host \(hex((e.hostOffset ?? 0) + inBlock))")
        case .partial: return (.backing, "\(e.stateName): sector bitmap decides (parent for the rest)")
        case .absent: return disk.batHasParent ? (.backing, "\(e.stateName): read from the parent") : (.free, "\(e.stateName) (reads zeroes)")
        case .zero: return (.zero, "\(e.stateName) (reads zeroes)")
        case .invalid: return (.error, "\(e.stateName): not a valid BAT entry")
        }
    }

    /// What the host range holds: a named region, else the use map's kind once walked.
    public func hostCell(_ start: UInt64, _ length: UInt64) -> (Role, String) {
        let end = start + max(length, 1)
        if let r = regions.last(where: { $0.offset < end && $0.offset + $0.length > start }) {
            return (r.kind.role, "\(r.label) at \(hex(r.offset))+\(formatBytes(Double(r.length)))")
        }
        guard let u = walked?.uses else { return (.free, walkStatus ?? "free / unused") }
        let d = u.dominant(Int(start / u.unit), Int((end + u.unit - 1) / u.unit))
        return d.kind == .free ? (.free, "free / unused") : (d.kind.role, "\(d.kind.name) at \(hex(start / u.unit * u.unit))")
    }

    /// Guest offset → BAT entry → host offset.
    public func mapGuest(_ offset: UInt64) -> (host: UInt64?, text: String) {
        guard let e = disk.batEntry(forGuest: offset) else { return (nil, "beyond the BAT") }
        let path = "block \(e.block) → BAT[\(e.index)] = \(hex(e.raw)) \(e.stateName)"
        if e.state == .present, let h = e.hostOffset { let at = h + offset % disk.batBlockSize; return (at, path + " → host \(hex(at))") }
        return (nil, path)
    }

    /// Decodes the BAT entry or names the region at a host offset.
    public func describeHost(_ offset: UInt64) -> String {
        let b = disk.batLocation
        if offset >= b.offset && offset < b.offset + b.length {
            let i = Int((offset - b.offset) / UInt64(b.entrySize))
            return i < batCount ? batRow(i).0 : "BAT slack"
        }
        return hostCell(offset, 1).1
    }

    /// Reads host bytes.
    public func readHost(at offset: UInt64, count: Int) -> [UInt8] {
        (try? host?.readBytes(at: offset, count: count)) ?? []
    }

    /// True once after each finished background walk.
    public func pollBackground() -> Bool { walker.takeFinished() }

    /// Cancels the walk and waits for it to stop.
    public func stopBackground() {
        walker.cancel()
        walker.waitUntilIdle()
    }
}

extension StructureTone {
    /// The colour role of a described value.
    var role: Role {
        switch self {
        case .normal: return .normal
        case .ok: return .ok
        case .warning: return .warning
        case .error: return .error
        case .dim: return .dim
        case .header: return .header
        case .table: return .l1
        case .backing: return .backing
        }
    }
}

import BlockIO

/// What a background walk of a BAT image yields: the host use map and the payload entries
/// by state.
struct BatWalk: Sendable {
    let uses: HostUseMap
    let states: [(state: String, count: Int)]
}

/// Any image with a block allocation table (VHDX, dynamic and differencing VHD) through the
/// format-neutral inspection model, from the ``BatStructure`` capability: the BAT as the
/// allocation table, the format's headers as sections, regions and the use map as cells.
///
/// Lazy: opening reads nothing beyond what the disk's open read; rows are read from the live
/// BAT when drawn; the host use map and the state counts (a pass over the whole BAT) are
/// built on a background thread the first time something asks.
public final class BatInspection: ImageInspector {
    let disk: any BatStructure
    private let host: SystemFile?
    private let regions: [HostRegion]
    private var walker: InspectWalker<BatWalk>

    /// The inspector for an open disk with a BAT; nil when it has none (a fixed VHD).
    public init?(disk: any BatStructure) {
        guard disk.hasBat else { return nil }
        self.disk = disk
        host = try? SystemFile(path: disk.path, writable: false)
        regions = disk.hostRegions()
        walker = BatInspection.walker(disk)
    }

    /// The inspector and the format's words for an open disk with a BAT; nil when it has
    /// none (a fixed VHD).
    public static func make(disk b: any BatStructure) -> InspectorHandle? {
        guard let i = BatInspection(disk: b) else { return nil }
        return InspectorHandle(inspector: i, words: b.batEventWords)
    }

    private static func walker(_ d: any BatStructure) -> InspectWalker<BatWalk> {
        InspectWalker { progress in
            let u = try d.walkStructure(progress: progress)
            guard progress(1) else { throw BlockError(.cancelled, "walk cancelled") }
            return BatWalk(uses: u, states: d.batStateCounts())
        }
    }

    /// qemu-img's format name ("vhdx", "vpc").
    public var formatName: String { disk.format.rawValue }
    /// "BAT" for the block allocation table.
    public func tabTitle(_ role: InspectTableRole) -> String? { role == .allocation ? "BAT" : nil }
    /// Guest size.
    public var guestSize: UInt64 { disk.logicalSize }
    /// Host file size.
    public var hostSize: UInt64 { (try? host?.size()) ?? 0 }
    /// The format's legend.
    public var legend: [InspectLegendItem] { disk.batLegend }

    private var walked: BatWalk? {
        if !walker.started { walker.start() }
        return walker.result
    }

    /// The walk's state in words while its result is missing or stale; nil when current.
    var walkStatus: String? {
        if let p = walker.progress { return "walking the BAT \(Int(p * 100))%" }
        if let e = walker.error { return "walk failed: \(e)" }
        if walker.cancelled { return "walk cancelled (x walks again)" }
        return walker.result == nil ? "walk not started" : nil
    }

    /// Rereads the regions' use map in the background (rows are always read live).
    public func reload() {
        if walker.started && !walker.cancelled { walker.start() }
    }

    /// The running walk over the BAT.
    public var backgroundProgress: InspectProgress? {
        walker.progress.map { InspectProgress(what: "BAT entries", fraction: $0, total: disk.batEntryCount) }
    }

    /// Holds or releases the background walk.
    public func holdBackground(_ on: Bool) { walker.hold(on) }

    /// Stops the running walk, or walks again after a cancelled one.
    public func toggleBackground() -> String? {
        if walker.progress != nil { walker.cancel(); return "walk of the BAT cancelled (x walks again)" }
        if walker.cancelled || !walker.started { walker.start(); return "walking the BAT again" }
        return nil
    }

    /// Starts the walk if none ran and waits until it is done.
    public func waitForBackground() {
        _ = walked
        walker.waitUntilIdle()
    }

    /// True once after each finished background walk.
    public func pollBackground() -> Bool { walker.takeFinished() }

    /// Cancels the walk and waits for it to stop.
    public func stopBackground() {
        walker.cancel()
        walker.waitUntilIdle()
    }

    /// Headers and metadata as the format describes them.
    public func allocationSections() -> [InspectSection] {
        disk.batSections().map { sec in InspectSection(sec.title, sec.rows.map { InspectRow($0.label, $0.value, $0.tone.inspectTone) }) }
    }

    /// The BAT as the allocation table; nothing for the other roles.
    public func table(_ ref: InspectTableRef) -> InspectTable? {
        guard ref.role == .allocation else { return nil }
        let b = disk.batLocation
        return InspectTable(ref: .allocation, name: "BAT", heading: "BAT entries (\(disk.batEntryCount))", count: disk.batEntryCount,
                            hostOffset: b.offset, guestSpan: disk.batBlockSize, widths: [10, 36, 20]) { [unowned self] i in entry(i) }
    }

    /// The BAT row that maps guest `offset`.
    public func path(toGuest offset: UInt64) -> [InspectLink] {
        disk.batEntry(forGuest: offset).map { [InspectLink(.allocation, $0.index)] } ?? []
    }

    /// BAT entry `i`: what it maps, its state as the format names it, where its block lies.
    func entry(_ index: Int) -> InspectEntry {
        let e = disk.batEntry(index)
        let what = e.isSectorBitmap ? "sector bitmap, chunk \(e.block)" : "block \(e.block) guest \(hex(e.guestOffset ?? 0))"
        let whereText = [e.detail, e.hostOffset.map { (e.detail.isEmpty ? "" : "data at ") + hex($0) } ?? ""].filter { !$0.isEmpty }.joined(separator: ", ")
        let state: InspectEntryState
        switch e.state {
        case .present: state = .present
        case .partial: state = .partial
        case .absent: state = .absent
        case .zero: state = .zero
        case .invalid: state = .invalid
        }
        return InspectEntry(index: index, raw: e.raw, state: e.isSectorBitmap ? .bookkeeping : state, tone: e.isSectorBitmap ? .counts : tone(e),
                            guestOffset: e.isSectorBitmap ? nil : e.guestOffset, guestLength: e.isSectorBitmap ? 0 : disk.batBlockSize,
                            hostOffset: e.hostOffset, columns: ["BAT[\(index)]", what, e.stateName, whereText])
    }

    private func tone(_ e: BatEntryDescription) -> InspectTone {
        switch e.state {
        case .present: return .data
        case .partial: return .backing
        case .absent: return disk.batHasParent ? .backing : .free
        case .zero: return .zero
        case .invalid: return .error
        }
    }

    /// The format's sections and the payload entries by state (once the walk is done).
    public func overviewSections() -> [InspectSection] {
        let states: InspectSection
        if let w = walked {
            states = InspectSection("Payload blocks by state", w.states.map { InspectRow($0.state, "\($0.count)") })
        } else {
            states = InspectSection("Payload blocks by state", [InspectRow("walk", walkStatus ?? "", .dim)])
        }
        return allocationSections() + [states]
    }

    /// The state of the block a guest range starts in.
    public func guestCell(_ start: UInt64, _ length: UInt64) -> InspectCell {
        guard let e = disk.batEntry(forGuest: start) else { return InspectCell(.free, "beyond the BAT") }
        let inBlock = start % disk.batBlockSize
        switch e.state {
        case .present: return InspectCell(.data, "\(e.stateName) at host \(hex((e.hostOffset ?? 0) + inBlock))")
        case .partial: return InspectCell(.backing, "\(e.stateName): sector bitmap decides (parent for the rest)")
        case .absent: return disk.batHasParent ? InspectCell(.backing, "\(e.stateName): read from the parent") : InspectCell(.free, "\(e.stateName) (reads zeroes)")
        case .zero: return InspectCell(.zero, "\(e.stateName) (reads zeroes)")
        case .invalid: return InspectCell(.error, "\(e.stateName): not a valid BAT entry")
        }
    }

    /// What the host range holds: a named region, else the use map's kind once walked.
    public func hostCell(_ start: UInt64, _ length: UInt64) -> InspectCell {
        let end = start + max(length, 1)
        if let r = regions.last(where: { $0.offset < end && $0.offset + $0.length > start }) {
            return InspectCell(r.kind.tone, "\(r.label) at \(hex(r.offset))+\(formatBytes(Double(r.length)))")
        }
        guard let u = walked?.uses else { return InspectCell(.free, walkStatus ?? "free / unused") }
        let d = u.dominant(Int(start / u.unit), Int((end + u.unit - 1) / u.unit))
        return d.kind == .free ? InspectCell(.free, "free / unused") : InspectCell(d.kind.tone, "\(d.kind.name) at \(hex(start / u.unit * u.unit))")
    }

    /// Guest offset → BAT entry → host offset.
    public func mapGuest(_ offset: UInt64) -> InspectMapping {
        guard let e = disk.batEntry(forGuest: offset) else { return InspectMapping(host: nil, "beyond the BAT") }
        let path = "block \(e.block) → BAT[\(e.index)] = \(hex(e.raw)) \(e.stateName)"
        if e.state == .present, let h = e.hostOffset { let at = h + offset % disk.batBlockSize; return InspectMapping(host: at, path + " → host \(hex(at))") }
        return InspectMapping(host: nil, path)
    }

    /// Decodes the BAT entry or names the region at a host offset.
    public func describeHost(_ offset: UInt64) -> String {
        let b = disk.batLocation
        if offset >= b.offset && offset < b.offset + b.length {
            let i = Int((offset - b.offset) / UInt64(b.entrySize))
            return i < disk.batEntryCount ? entry(i).line(widths: [10, 36, 20]) : "BAT slack"
        }
        return hostCell(offset, 1).text
    }

    /// Reads host bytes.
    public func readHost(at offset: UInt64, count: Int) -> [UInt8] {
        (try? host?.readBytes(at: offset, count: count)) ?? []
    }
}

extension StructureTone {
    /// The inspection model's tone of a described value.
    public var inspectTone: InspectTone {
        switch self {
        case .normal: return .normal
        case .ok: return .ok
        case .warning: return .warning
        case .error: return .error
        case .dim: return .dim
        case .header: return .header
        case .table: return .table
        case .backing: return .backing
        }
    }
}

import BlockIO
import BlockMap
import BlockInspect

/// VMDK through the format-neutral inspection model: every sparse extent's grain directory
/// as one ``InspectTableRole/directory`` (rows in guest order across extents), each grain
/// table as a ``InspectTableRole/leaf``; cells, overview and the guest→host path from the
/// disk's map extents (``ExtentInspection``), which also cover flat extents.
///
/// Tables are read through ``VmdkGrainMap`` (the one decoder of grain entries) under the
/// disk's metadata lock, when shown.
public final class VmdkInspection: ImageInspector {
    let disk: VmdkDisk
    private let extents: ExtentInspection
    /// Directory rows: (extent index, grain directory index), in guest order.
    private let rows: [(extent: Int, table: Int)]

    /// The inspector of an open VMDK.
    public init(disk: VmdkDisk) {
        self.disk = disk
        extents = ExtentInspection(disk: disk)
        var r: [(Int, Int)] = []
        for (i, e) in disk.extents.enumerated() {
            guard let g = e.grains else { continue }
            let n = disk.lock.run { g.directory.count }
            r += (0..<n).map { (i, $0) }
        }
        rows = r
    }

    /// The registry's factory: an open VMDK.
    package static func make(path: String, disk: (any DiskFile)?) throws(BlockError) -> InspectorHandle? {
        guard let v = disk as? VmdkDisk else { return nil }
        return InspectorHandle(inspector: VmdkInspection(disk: v), words: VmdkEventWords())
    }

    /// "vmdk".
    public var formatName: String { disk.format.rawValue }
    /// "GD/GT": VMware's grain directory and grain tables.
    public func tabTitle(_ role: InspectTableRole) -> String? { role == .allocation ? nil : "GD/GT" }
    /// Guest size.
    public var guestSize: UInt64 { disk.logicalSize }
    /// The descriptor file's size.
    public var hostSize: UInt64 { extents.hostSize }
    /// Grain directory, grain tables, grains.
    public var legend: [InspectLegendItem] {
        [InspectLegendItem(.data, "grain / flat data"), InspectLegendItem(.compressed, "compressed grain"), InspectLegendItem(.zero, "zero grain"),
         InspectLegendItem(.backing, "parent"), InspectLegendItem(.free, "unallocated / hole")]
    }

    /// The descriptor and the extents, then the allocation.
    public func overviewSections() -> [InspectSection] {
        var ext: [InspectRow] = []
        for e in disk.extents {
            let g = e.grains
            let what = g.map { "\($0.seSparse ? "seSparse" : "sparse")\($0.compressed ? ", compressed grains" : ""), grain \(formatBytes(Double($0.grainBytes))), \($0.tableEntries) entries per grain table, grain directory at \(hex($0.directoryOffset))" } ?? "flat at \(hex(e.flatOffset))"
            ext.append(InspectRow("\(hex(e.guestStart))+\(formatBytes(Double(e.length)))", "\(e.path ?? "(zero)"): \(what)", g == nil ? .data : .table))
        }
        return [InspectSection("VMDK descriptor", [InspectRow("createType", disk.createType), InspectRow("parent", disk.parentPath ?? "none", disk.parentPath == nil ? .dim : .backing)]),
                InspectSection("Extents (\(disk.extents.count))", ext)] + extents.overviewSections()
    }

    /// From the map extents.
    public func guestCell(_ start: UInt64, _ length: UInt64) -> InspectCell { extents.guestCell(start, length) }
    /// From the map extents.
    public func hostCell(_ start: UInt64, _ length: UInt64) -> InspectCell { extents.hostCell(start, length) }
    /// From the map extents.
    public func mapGuest(_ offset: UInt64) -> InspectMapping { extents.mapGuest(offset) }
    /// From the map extents.
    public func describeHost(_ offset: UInt64) -> String { extents.describeHost(offset) }
    /// Reads the descriptor file's bytes.
    public func readHost(at offset: UInt64, count: Int) -> [UInt8] { extents.readHost(at: offset, count: count) }
    /// Rereads the map extents (grain tables are read live).
    public func reload() { extents.reload() }

    /// The grain directories as the directory, a grain table as a leaf.
    public func table(_ ref: InspectTableRef) -> InspectTable? {
        switch ref.role {
        case .directory:
            guard !rows.isEmpty else { return nil }
            let cover = disk.extents.compactMap(\.grains).first?.tableCoverage ?? 0
            let grain = disk.extents.compactMap(\.grains).first?.grainBytes ?? 0
            return InspectTable(ref: .directory, name: "GD", heading: "grain directory: \(rows.count) entries in \(disk.extents.filter { $0.grains != nil }.count) sparse extent(s); each covers \(formatBytes(Double(cover)))",
                                count: rows.count, guestSpan: cover, childName: "grain table", childSpan: grain, widths: [10, 22, 30]) { [unowned self] r in directoryEntry(r) }
        case .leaf:
            guard ref.index < rows.count, let (e, k, t) = grainTable(ref.index), !t.isEmpty, let g = disk.extents[e].grains else { return nil }
            let base = disk.extents[e].guestStart + UInt64(k) * g.tableCoverage
            return InspectTable(ref: ref, name: "GT", heading: "grain table \(k) of \(fileName(disk.extents[e].path) ?? "extent \(e)"): \(t.count) entries, grain \(formatBytes(Double(g.grainBytes)))",
                                count: t.count, guestSpan: g.grainBytes, widths: [10, 22, 24], compactWidths: [8, 18, 12]) { [unowned self] j in
                grainEntry(j, raw: t[j], grain: UInt64(k) * UInt64(g.tableEntries) + UInt64(j), guest: base + UInt64(j) * g.grainBytes, g)
            }
        case .allocation:
            return nil
        }
    }

    /// The grain directory row and grain table row that map guest `offset`.
    public func path(toGuest offset: UInt64) -> [InspectLink] {
        guard let r = rows.firstIndex(where: { row in
            let x = disk.extents[row.extent]
            guard let g = x.grains else { return false }
            let s = x.guestStart + UInt64(row.table) * g.tableCoverage
            return offset >= s && offset < s + g.tableCoverage
        }), let g = disk.extents[rows[r].extent].grains else { return [] }
        let x = disk.extents[rows[r].extent]
        return [InspectLink(.directory, r), InspectLink(.leaf(r), Int((offset - x.guestStart) % g.tableCoverage / g.grainBytes))]
    }

    private func grainTable(_ r: Int) -> (Int, Int, [UInt64])? {
        let (e, k) = rows[r]
        guard let g = disk.extents[e].grains else { return nil }
        let t = disk.lock.run { () -> [UInt64]? in try? g.table(k) }
        return t.map { (e, k, $0) }
    }

    private func tableError(_ r: Int) -> String? {
        let (e, k) = rows[r]
        guard let g = disk.extents[e].grains else { return nil }
        return disk.lock.run { () -> String? in
            do throws(BlockError) { _ = try g.table(k); return nil } catch { return error.message }
        }
    }

    private func directoryEntry(_ r: Int) -> InspectEntry {
        let (e, k) = rows[r]
        let x = disk.extents[e]
        let g = x.grains!
        let guest = x.guestStart + UInt64(k) * g.tableCoverage
        let sector = disk.lock.run { g.directory[k] }
        let file = disk.extents.filter { $0.grains != nil }.count > 1 ? fileName(x.path) ?? "" : ""
        let name = "GD[\(k)]", gt = "guest \(hex(guest))"
        if sector == 0 {
            return InspectEntry(index: r, raw: sector, state: .absent, tone: disk.parent != nil ? .backing : .free, guestOffset: guest, guestLength: g.tableCoverage,
                                columns: [name, gt, "no grain table", file])
        }
        let host = sector * 512
        if let err = tableError(r) {
            return InspectEntry(index: r, raw: sector, state: .invalid, tone: .error, guestOffset: guest, guestLength: g.tableCoverage, hostOffset: host,
                                childError: err, columns: [name, gt, "grain table at \(hex(host)) UNREADABLE: \(err)"])
        }
        return InspectEntry(index: r, raw: sector, state: .table, tone: .subtable, guestOffset: guest, guestLength: g.tableCoverage, hostOffset: host,
                            child: .leaf(r), columns: [name, gt, "grain table at \(hex(host))", file])
    }

    private func grainEntry(_ j: Int, raw: UInt64, grain: UInt64, guest: UInt64, _ g: VmdkGrainMap) -> InspectEntry {
        let s = disk.lock.run { () -> Result<VmdkGrainState, BlockError> in
            do throws(BlockError) { return .success(try g.decode(raw, grain: grain)) } catch { return .failure(error) }
        }
        let name = "GT[\(j)]", gt = "guest \(hex(guest))"
        switch s {
        case .failure(let err):
            return InspectEntry(index: j, raw: raw, state: .invalid, tone: .error, guestOffset: guest, guestLength: g.grainBytes, columns: [name, gt, hex(raw), "invalid: \(err.message)"])
        case .success(.unallocated):
            let parent = disk.parent != nil
            return InspectEntry(index: j, raw: raw, state: .absent, tone: parent ? .backing : .free, guestOffset: guest, guestLength: g.grainBytes,
                                columns: [name, gt, "", parent ? "unallocated (parent)" : "unallocated"])
        case .success(.zero):
            return InspectEntry(index: j, raw: raw, state: .zero, tone: .zero, guestOffset: guest, guestLength: g.grainBytes, columns: [name, gt, "", "zero grain"])
        case .success(.data(let host)):
            return InspectEntry(index: j, raw: raw, state: .present, tone: .data, guestOffset: guest, guestLength: g.grainBytes, hostOffset: host,
                                columns: [name, gt, hex(host), "grain"])
        case .success(.compressed(let host)):
            return InspectEntry(index: j, raw: raw, state: .compressed, tone: .compressed, guestOffset: guest, guestLength: g.grainBytes, hostOffset: host,
                                columns: [name, gt, hex(host), "compressed grain"])
        }
    }
}

/// The last component of an extent's path.
private func fileName(_ path: String?) -> String? {
    path.map { p in p.split(separator: "/").last.map(String.init) ?? p }
}

/// VMDK's words for its queues' events: a new unit is a grain; mappings in the generic words.
public struct VmdkEventWords: FormatEventWords {
    /// Words for any VMDK.
    public init() {}
    /// "grain".
    public var allocationUnit: String { "grain" }
}

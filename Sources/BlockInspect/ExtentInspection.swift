import BlockIO

/// Any open disk through its map extents (RAW, a fixed VHD, formats without a richer
/// inspector) in the format-neutral inspection model: guest cells from `mapExtents()`, host
/// cells from the extents' host offsets. No tables.
public final class ExtentInspection: ImageInspector {
    /// The disk.
    let disk: any DiskFile
    private let host: SystemFile?
    private var extents: [MapExtent] = []
    /// Host ranges holding guest data, sorted by offset.
    private var hostData: [(start: UInt64, end: UInt64)] = []
    /// Whether a guest offset is the same host offset (RAW), so a hole has a host location.
    private let identity: Bool

    /// An inspector for `disk` with its extents loaded.
    public init(disk: any DiskFile) {
        self.disk = disk
        identity = disk.identityFile != nil
        host = try? SystemFile(path: disk.path, writable: false)
        reload()
    }

    /// The registry's factory, the last one tried: any open disk.
    public static func make(path: String, disk: (any DiskFile)?) -> InspectorHandle? {
        guard let disk else { return nil }
        let words = (disk as? any BatStructure)?.batEventWords ?? IdentityEventWords()
        return InspectorHandle(inspector: ExtentInspection(disk: disk), words: words)
    }

    /// The format name (qemu-img's).
    public var formatName: String { disk.format.rawValue }
    /// Guest size.
    public var guestSize: UInt64 { disk.logicalSize }
    /// Host file size.
    public var hostSize: UInt64 { (try? host?.size()) ?? disk.logicalSize }
    /// Data, zero, hole.
    public var legend: [InspectLegendItem] {
        [InspectLegendItem(.data, "data"), InspectLegendItem(.zero, "zero"), InspectLegendItem(.free, "hole")]
    }

    /// Rereads the extents.
    public func reload() {
        extents = ((disk as? any InspectableDisk).flatMap { try? $0.mapExtents() }) ?? []
        hostData = extents.filter(\.data).compactMap { e in e.offset.map { ($0, $0 + e.length) } }.sorted { $0.start < $1.start }
    }

    /// The allocation: extents and data bytes.
    public func overviewSections() -> [InspectSection] {
        let data = extents.filter(\.data).reduce(UInt64(0)) { $0 + $1.length }
        return [InspectSection("Allocation", [
            InspectRow("extents", "\(extents.count)"),
            InspectRow("data", "\(formatBytes(Double(data))) of \(formatBytes(Double(guestSize)))", .data),
        ])]
    }

    private func extentIndex(_ offset: UInt64) -> Int? {
        var lo = 0, hi = extents.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if extents[mid].start + extents[mid].length <= offset { lo = mid + 1 } else { hi = mid }
        }
        return lo < extents.count && extents[lo].start <= offset ? lo : nil
    }

    /// The dominant state of a guest range.
    public func guestCell(_ start: UInt64, _ length: UInt64) -> InspectCell {
        var best = InspectCell(.free, "unallocated")
        var i = extentIndex(start) ?? extents.count
        let rank: [InspectTone: Int] = [.free: 0, .zero: 1, .backing: 2, .data: 3, .compressed: 4]
        while i < extents.count && extents[i].start < start + length {
            let e = extents[i]
            let t: InspectTone = e.detail == "compressed" ? .compressed : e.data ? (e.depth > 0 ? .backing : .data) : e.zero ? .zero : .free
            let text = e.data ? "data\(e.depth > 0 ? " from backing depth \(e.depth)" : "")\(e.offset.map { " at host \(hex($0))" } ?? "")" : e.zero ? "zero" : "unallocated"
            if rank[t, default: 0] > rank[best.tone, default: 0] { best = InspectCell(t, text) }
            i += 1
        }
        return best
    }

    /// Data where an extent's host offset points, free elsewhere.
    public func hostCell(_ start: UInt64, _ length: UInt64) -> InspectCell {
        let end = start + max(length, 1)
        var lo = 0, hi = hostData.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if hostData[mid].end <= start { lo = mid + 1 } else { hi = mid }
        }
        return lo < hostData.count && hostData[lo].start < end ? InspectCell(.data, "guest data") : InspectCell(.free, "hole / no data")
    }

    /// Host offset of a guest offset through the extents.
    public func mapGuest(_ offset: UInt64) -> InspectMapping {
        guard let i = extentIndex(offset) else { return InspectMapping(host: nil, "beyond the extents") }
        let e = extents[i]
        let host = e.offset.map { $0 + (offset - e.start) }
        let state = e.data ? "data" : e.zero ? "zero" : "unallocated"
        return InspectMapping(host: e.data ? host : nil, "\(state), depth \(e.depth)\(host.map { " -> host \(hex($0))" } ?? "")")
    }

    /// RAW maps every guest byte to the same host offset; a hole reads as zeroes.
    public func hostLocation(guest offset: UInt64) -> (host: UInt64, note: String)? {
        if let h = mapGuest(offset).host { return (h, "guest \(hex(offset)) → data at host \(hex(h))") }
        guard identity else { return nil }
        return (offset, "\(formatName): guest \(hex(offset)) is host \(hex(offset)) (a hole in the file: reads as zeroes)")
    }

    /// No structures: the offset is guest data.
    public func describeHost(_ offset: UInt64) -> String {
        "\(formatName) data at host \(hex(offset)) (no metadata in this format)"
    }

    /// Reads host bytes.
    public func readHost(at offset: UInt64, count: Int) -> [UInt8] {
        (try? host?.readBytes(at: offset, count: count)) ?? []
    }
}

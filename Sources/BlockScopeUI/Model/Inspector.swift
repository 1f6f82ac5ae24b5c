import BlockCore

/// A titled list of label/value rows for the Overview.
public struct InfoSection: Sendable {
    /// Section title.
    public var title: String
    /// Rows of (label, value, role of the value).
    public var rows: [(String, String, Role)]

    /// Creates a section.
    public init(_ title: String, _ rows: [(String, String, Role)]) {
        self.title = title
        self.rows = rows
    }
}

/// What the layout views need from an image, whatever its format.
///
/// Format-specific views ask for a capability (``ClusterTableInspector`` for L1/L2,
/// ``RefcountInspector`` for Refcounts, ``BatInspector`` for the BAT view) and say the image
/// has no such tables otherwise, so a format lights up its views by adopting the capability.
public protocol LayoutInspector: AnyObject {
    /// Format name for the title bar.
    var formatName: String { get }
    /// Guest size in bytes.
    var guestSize: UInt64 { get }
    /// Host file size in bytes.
    var hostSize: UInt64 { get }
    /// Format-specific Overview sections (header fields, features, snapshots, ...).
    func overviewSections() -> [InfoSection]
    /// How the guest range `[start, start+length)` reads: a role and a description.
    func guestCell(_ start: UInt64, _ length: UInt64) -> (Role, String)
    /// What the host range `[start, start+length)` holds: a role and a description.
    func hostCell(_ start: UInt64, _ length: UInt64) -> (Role, String)
    /// Where a guest offset lives on the host (nil when unallocated, zero or compressed) and how.
    func mapGuest(_ offset: UInt64) -> (host: UInt64?, text: String)
    /// Decodes the structure at a host offset for the Hex view.
    func describeHost(_ offset: UInt64) -> String
    /// Reads host bytes.
    func readHost(at offset: UInt64, count: Int) -> [UInt8]
    /// Rereads metadata after the image changed.
    func reload()
    /// True once after a background structure walk finished (the app then redraws the
    /// views that show it); inspectors without background work return false.
    func pollBackground() -> Bool
    /// Cancels background work and waits for it to stop (before the image is closed).
    func stopBackground()
    /// The running whole-image walk, for the footer; nil when none runs.
    var backgroundProgress: WalkProgress? { get }
    /// The `x` key: stops the running walk (views keep the last finished result and say the
    /// walk was cancelled), or starts a new one when the last was cancelled. Returns what it
    /// did for the status line, nil when there was nothing to stop or restart.
    func toggleBackground() -> String?
    /// Holds background walks (a view's request is noted, not started) or releases them
    /// (starting what was asked for): the TUI holds them until its first frame is drawn.
    func holdBackground(_ on: Bool)
    /// True when ``overviewSections()`` already shows the format's own `info` fields and
    /// snapshots, so the Overview leaves them out of its qemu-img section.
    var showsFormatInfoFields: Bool { get }
}

extension LayoutInspector {
    /// The format's `info` fields are shown in the qemu-img section.
    public var showsFormatInfoFields: Bool { false }
    /// No background work.
    public func pollBackground() -> Bool { false }
    /// No background work.
    public func stopBackground() {}
    /// No background work.
    public var backgroundProgress: WalkProgress? { nil }
    /// No background work.
    public func toggleBackground() -> String? { nil }
    /// No background work.
    public func holdBackground(_ on: Bool) {}
}

/// How far a whole-image walk has come: what it walks, the fraction done and how many
/// units (host clusters, BAT entries) the whole walk covers.
public struct WalkProgress: Sendable, Equatable {
    /// What is walked ("host clusters", "BAT entries").
    public var what: String
    /// Fraction done, 0...1.
    public var fraction: Double
    /// Units the whole walk covers.
    public var total: Int

    /// Creates a progress report.
    public init(what: String, fraction: Double, total: Int) {
        self.what = what
        self.fraction = fraction
        self.total = total
    }

    /// Units done so far (the fraction of ``total``, rounded down).
    public var done: Int { Int(Double(total) * min(1, max(0, fraction))) }

    /// "walking host clusters 42% (7,046,430 of 16,777,216)".
    public var text: String { "walking \(what) \(Int(fraction * 100))% (\(grouped(done)) of \(grouped(total)))" }
}

/// `n` with a comma every three digits.
func grouped(_ n: Int) -> String {
    var s = String(n)
    var i = s.count - 3
    while i > 0 { s.insert(",", at: s.index(s.startIndex, offsetBy: i)); i -= 3 }
    return s
}

/// An inspector for any ``InspectableDisk`` through its map extents (RAW and formats
/// without a richer inspector): guest cells from `mapExtents()`, host cells from the
/// extents' host offsets.
public final class ExtentInspector: LayoutInspector {
    /// The disk.
    public let disk: any DiskFile
    private let host: SystemFile?
    private var extents: [MapExtent] = []
    private var hostData = IntervalSet()

    /// Creates an inspector and loads the extents.
    public init(disk: any DiskFile) {
        self.disk = disk
        host = try? SystemFile(path: disk.path, writable: false)
        reload()
    }

    /// The format name (qemu-img's).
    public var formatName: String { disk.format.rawValue }
    /// Guest size.
    public var guestSize: UInt64 { disk.logicalSize }
    /// Host file size.
    public var hostSize: UInt64 { (try? host?.size()) ?? disk.logicalSize }

    /// Rereads the extents.
    public func reload() {
        extents = ((disk as? any InspectableDisk).flatMap { try? $0.mapExtents() }) ?? []
        hostData = IntervalSet()
        for e in extents where e.data { if let o = e.offset { hostData.insert(o, length: e.length) } }
    }

    /// No format-specific sections beyond the generic ones.
    public func overviewSections() -> [InfoSection] {
        let data = extents.filter(\.data).reduce(UInt64(0)) { $0 + $1.length }
        return [InfoSection("Allocation", [
            ("extents", "\(extents.count)", .normal),
            ("data", "\(formatBytes(Double(data))) of \(formatBytes(Double(guestSize)))", .data),
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
    public func guestCell(_ start: UInt64, _ length: UInt64) -> (Role, String) {
        var best: (Role, String) = (.free, "unallocated")
        var i = extentIndex(start) ?? extents.count
        let rank: [Role: Int] = [.free: 0, .zero: 1, .backing: 2, .data: 3, .compressed: 4]
        while i < extents.count && extents[i].start < start + length {
            let e = extents[i]
            let r: Role = e.detail == "compressed" ? .compressed : e.data ? (e.depth > 0 ? .backing : .data) : e.zero ? .zero : .free
            let text = e.data ? "data\(e.depth > 0 ? " from backing depth \(e.depth)" : "")\(e.offset.map { " at host \(hex($0))" } ?? "")" : e.zero ? "zero" : "unallocated"
            if rank[r, default: 0] > rank[best.0, default: 0] { best = (r, text) }
            i += 1
        }
        return best
    }

    /// Data where an extent's host offset points, free elsewhere.
    public func hostCell(_ start: UInt64, _ length: UInt64) -> (Role, String) {
        hostData.intersects(start, length: length) ? (.data, "guest data") : (.free, "hole / no data")
    }

    /// Host offset of a guest offset through the extents.
    public func mapGuest(_ offset: UInt64) -> (host: UInt64?, text: String) {
        guard let i = extentIndex(offset) else { return (nil, "beyond the extents") }
        let e = extents[i]
        let host = e.offset.map { $0 + (offset - e.start) }
        let state = e.data ? "data" : e.zero ? "zero" : "unallocated"
        return (e.data ? host : nil, "\(state), depth \(e.depth)\(host.map { " -> host \(hex($0))" } ?? "")")
    }

    /// RAW has no structures: the offset is guest data.
    public func describeHost(_ offset: UInt64) -> String {
        "\(formatName) data at host \(hex(offset)) (no metadata in this format)"
    }

    /// Reads host bytes.
    public func readHost(at offset: UInt64, count: Int) -> [UInt8] {
        (try? host?.readBytes(at: offset, count: count)) ?? []
    }
}

/// An image as its format describes it to a viewer: sizes, overview sections, map cells,
/// tables of entries, host-unit bookkeeping and a legend, all in the format-neutral words
/// of this module. A viewer renders these and decodes nothing.
///
/// ## How a format plugs in
/// A format adds one class that conforms (next to its parsers, in its own folder), fills
/// what it has, and registers one factory line with the block layer's inspector registry:
/// * ``overviewSections()``, ``legend``, ``guestCell(_:_:)``, ``hostCell(_:_:)``,
///   ``mapGuest(_:)``, ``describeHost(_:)``: every format.
/// * ``table(_:)``: a two-level map fills ``InspectTableRole/directory`` and
///   ``InspectTableRole/leaf`` (QCOW2 L1/L2, VMDK grain directory/grain tables); a block
///   allocation table fills ``InspectTableRole/allocation`` (VHDX, VHD) and its headers in
///   ``allocationSections()``. ``path(toGuest:)`` names the rows that map a guest offset.
/// * ``hostUnits()``: a format that keeps per-cluster bookkeeping (QCOW2 refcounts).
/// * A whole-image walk (``InspectWalker``) behind the background members, when the format
///   has one; the defaults say there is none.
/// Views ask for a table by role and say the image has none when the answer is nil, so a
/// new format appears in every view that fits it without a change to the viewer.
///
/// Called from one thread (the viewer's); a walk runs on its own thread inside the format.
public protocol ImageInspector: AnyObject {
    /// The format's name as qemu-img spells it ("qcow2", "vpc").
    var formatName: String { get }
    /// The short title, in the format's own words, of the viewer's tab that shows the tables
    /// of `role` (`.directory`: "L1/L2", "GD/GT"; `.allocation`: "BAT"); nil when the format
    /// has none or no short name for them (the viewer then uses a neutral one).
    func tabTitle(_ role: InspectTableRole) -> String?
    /// Guest size in bytes.
    var guestSize: UInt64 { get }
    /// Host file size in bytes.
    var hostSize: UInt64 { get }
    /// The format's sections for the Overview (header fields, features, snapshots, counts).
    func overviewSections() -> [InspectSection]
    /// True when ``overviewSections()`` already shows the format's own `info` fields and
    /// snapshots, so a viewer leaves them out of its generic `info` section.
    var showsFormatInfoFields: Bool { get }
    /// What each tone means on this format's maps, in legend order.
    var legend: [InspectLegendItem] { get }
    /// How guest range `[start, start+length)` reads (the dominant state of a map cell).
    func guestCell(_ start: UInt64, _ length: UInt64) -> InspectCell
    /// What host range `[start, start+length)` holds.
    func hostCell(_ start: UInt64, _ length: UInt64) -> InspectCell
    /// Where guest byte `offset` lives on the host, and the path through the tables.
    func mapGuest(_ offset: UInt64) -> InspectMapping
    /// Where a viewer should look on the host for guest `offset` when it has no plain data
    /// there too (a compressed cluster's bytes, the entry of a zero cluster, a raw hole's
    /// own offset), and a sentence saying what is there; nil when there is no such place.
    func hostLocation(guest offset: UInt64) -> (host: UInt64, note: String)?
    /// The structure at host `offset`, decoded in one line (the Hex view's status).
    func describeHost(_ offset: UInt64) -> String
    /// Host bytes at `offset` (fewer at the end of the file, none when unreadable).
    func readHost(at offset: UInt64, count: Int) -> [UInt8]
    /// Rereads the metadata after the image changed (a walk is rerun in the background).
    func reload()

    /// A table by role (nil when the format has none, or a leaf under an empty entry).
    func table(_ ref: InspectTableRef) -> InspectTable?
    /// Headers shown above the allocation table (VHDX headers, region table, log; the VHD footer).
    func allocationSections() -> [InspectSection]
    /// The rows that map guest `offset`, top table first (directory row, then leaf row; or
    /// the allocation row); empty when no table maps it.
    func path(toGuest offset: UInt64) -> [InspectLink]
    /// The per-host-unit bookkeeping panel (nil when the format keeps none).
    func hostUnits() -> InspectHostUnits?

    /// True once after a background walk finished (the viewer redraws what shows it).
    func pollBackground() -> Bool
    /// Cancels background work and waits for it to stop (before the image is closed).
    func stopBackground()
    /// The running whole-image walk, for a footer; nil when none runs.
    var backgroundProgress: InspectProgress? { get }
    /// Stops the running walk (the last finished result stays shown), or starts one after a
    /// cancelled one; returns what it did, nil when there was nothing to do.
    func toggleBackground() -> String?
    /// Holds walks (a request is noted, not started) or releases them.
    func holdBackground(_ on: Bool)
    /// Blocks until no walk runs, having started one if none ever ran (tests and scripts;
    /// a viewer never waits).
    func waitForBackground()
}

extension ImageInspector {
    /// No title of the format's own.
    public func tabTitle(_ role: InspectTableRole) -> String? { nil }
    /// The generic `info` fields stay.
    public var showsFormatInfoFields: Bool { false }
    /// No table of this role.
    public func table(_ ref: InspectTableRef) -> InspectTable? { nil }
    /// No allocation table headers.
    public func allocationSections() -> [InspectSection] { [] }
    /// No table maps guest offsets.
    public func path(toGuest offset: UInt64) -> [InspectLink] { [] }
    /// No per-unit bookkeeping.
    public func hostUnits() -> InspectHostUnits? { nil }
    /// Nowhere beyond ``mapGuest(_:)``'s data.
    public func hostLocation(guest offset: UInt64) -> (host: UInt64, note: String)? { nil }
    /// No background work.
    public func pollBackground() -> Bool { false }
    /// No background work.
    public func stopBackground() {}
    /// No background work.
    public var backgroundProgress: InspectProgress? { nil }
    /// No background work.
    public func toggleBackground() -> String? { nil }
    /// No background work.
    public func holdBackground(_ on: Bool) {}
    /// No background work.
    public func waitForBackground() {}
}

/// How far a whole-image walk has come: what it walks, the fraction done and how many
/// units (host clusters, BAT entries) the whole walk covers.
public struct InspectProgress: Sendable, Equatable {
    /// What is walked ("host clusters", "BAT entries").
    public var what: String
    /// Fraction done, 0...1.
    public var fraction: Double
    /// Units the whole walk covers.
    public var total: Int

    /// A progress report.
    public init(what: String, fraction: Double, total: Int) {
        self.what = what
        self.fraction = fraction
        self.total = total
    }

    /// Units done so far (the fraction of ``total``, rounded down).
    public var done: Int { Int(Double(total) * min(1, max(0, fraction))) }

    /// "walking host clusters 42% (7,046,430 of 16,777,216)".
    public var text: String { "walking \(what) \(Int(fraction * 100))% (\(groupedDigits(done)) of \(groupedDigits(total)))" }
}

/// `n` with a comma every three digits ("16,777,216").
public func groupedDigits(_ n: Int) -> String {
    var s = String(n)
    var i = s.count - 3
    while i > (n < 0 ? 1 : 0) { s.insert(",", at: s.index(s.startIndex, offsetBy: i)); i -= 3 }
    return s
}

/// What a viewer can select for a step's changed metadata entry: a table row, or a host
/// unit of the bookkeeping panel.
public enum InspectTarget: Sendable, Hashable {
    /// A row of a table.
    case entry(InspectLink)
    /// Host unit `index` of ``ImageInspector/hostUnits()``.
    case hostUnit(Int)
}

import BlockIO

/// How a block allocation table entry reads, in words every BAT format (VHDX, VHD) shares:
/// the UI picks a glyph and colour from it and decodes no entry itself.
public enum BatEntryState: Sendable, Equatable {
    /// The block's data (or the sector bitmap) is in this file (VHDX FULLY_PRESENT, VHD allocated).
    case present
    /// Per sector: the sector bitmap says which sectors are here, the parent has the rest
    /// (VHDX PARTIALLY_PRESENT).
    case partial
    /// Not allocated: reads from the parent of a differencing image, zeroes otherwise.
    case absent
    /// Reads as zeroes by its state (VHDX ZERO, UNMAPPED, UNDEFINED).
    case zero
    /// A state value the format does not define.
    case invalid
}

/// One decoded BAT entry, for display: which block it maps, its state and where the block
/// lies in the file.
public struct BatEntryDescription: Sendable, Equatable {
    /// Index in the table.
    public var index: Int
    /// True for a VHDX sector bitmap entry (then ``block`` is the chunk number).
    public var isSectorBitmap: Bool
    /// The payload block (or, for a sector bitmap entry, the chunk) the entry describes.
    public var block: UInt64
    /// Guest byte offset of the payload block (nil for a sector bitmap entry).
    public var guestOffset: UInt64?
    /// The state in shared words.
    public var state: BatEntryState
    /// The state as the format names it ("FULLY_PRESENT", "allocated", "invalid 4").
    public var stateName: String
    /// Host byte offset of the block's data (or of the sector bitmap block); nil when the
    /// entry points nowhere.
    public var hostOffset: UInt64?
    /// Anything else the format stores per entry ("bitmap at 0x200000"), or empty.
    public var detail: String
    /// The raw entry as stored (a VHDX 64-bit entry, a VHD sector number).
    public var raw: UInt64

    /// Creates a description.
    public init(index: Int, isSectorBitmap: Bool = false, block: UInt64, guestOffset: UInt64?, state: BatEntryState,
                stateName: String, hostOffset: UInt64?, detail: String = "", raw: UInt64) {
        self.index = index
        self.isSectorBitmap = isSectorBitmap
        self.block = block
        self.guestOffset = guestOffset
        self.state = state
        self.stateName = stateName
        self.hostOffset = hostOffset
        self.detail = detail
        self.raw = raw
    }
}

/// How a described value should read: the UI maps each tone to a colour.
public enum StructureTone: Sendable, Equatable {
    /// A plain value.
    case normal
    /// Good news (CRC valid, log clean).
    case ok
    /// Worth a look (a dirty log, a replay).
    case warning
    /// Wrong (bad CRC or signature).
    case error
    /// Secondary detail.
    case dim
    /// A header-like structure.
    case header
    /// A table (BAT, L1).
    case table
    /// Something from a parent image.
    case backing
}

/// A titled group of label/value rows describing one part of an image's metadata, as the
/// format's parsers read it.
public struct StructureSection: Sendable {
    /// The title ("Headers", "Dynamic header").
    public var title: String
    /// Rows: label, value, tone.
    public var rows: [(label: String, value: String, tone: StructureTone)]

    /// Creates a section.
    public init(_ title: String, _ rows: [(label: String, value: String, tone: StructureTone)]) {
        self.title = title
        self.rows = rows
    }
}

/// The capability of a disk whose guest blocks are mapped by a block allocation table
/// (VHDX, dynamic and differencing VHD): its BAT entry by entry and its headers described
/// by the format's own parsers, so a viewer shows a BAT without decoding one.
///
/// Entry accessors read the live table under the metadata lock (allocations show at once)
/// and cost one lookup: a viewer reads only the rows on screen. ``batStateCounts()`` walks
/// the whole table: run it off a UI thread on large images.
public protocol BatStructure: StructuredDisk {
    /// Whether the disk has a BAT at all (false for a fixed VHD).
    var hasBat: Bool { get }
    /// Entries in the table (payload and sector-bitmap entries; 0 without a BAT).
    var batEntryCount: Int { get }
    /// Guest bytes per payload block.
    var batBlockSize: UInt64 { get }
    /// Whether unallocated blocks read from a parent image.
    var batHasParent: Bool { get }
    /// Where the table lies in the file: offset, length in bytes, bytes per entry.
    var batLocation: (offset: UInt64, length: UInt64, entrySize: Int) { get }
    /// Entry `index` (`0..<batEntryCount`).
    func batEntry(_ index: Int) -> BatEntryDescription
    /// The payload entry that maps guest byte `offset`; nil past the table.
    func batEntry(forGuest offset: UInt64) -> BatEntryDescription?
    /// The format's headers and top-level metadata described (no walk of the BAT).
    func batSections() -> [StructureSection]
    /// Payload entries by state name, in the order of the names (one pass over the table).
    func batStateCounts() -> [(state: String, count: Int)]
    /// What each tone means on this format's maps (the inspection model's legend).
    var batLegend: [InspectLegendItem] { get }
    /// The format's words for its queues' events.
    var batEventWords: any FormatEventWords { get }
}

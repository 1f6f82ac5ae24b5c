/// How a described value, cell or entry should read. Formats choose a tone for each thing
/// they describe; the UI maps each tone to a colour and knows nothing else about it.
///
/// The structural tones name a role a structure plays in any format, not a format's table:
/// QCOW2's L1, a VHDX or VHD BAT and a VMDK grain directory are all ``table``.
public enum InspectTone: Sendable, Equatable, Hashable, CaseIterable {
    /// A plain value.
    case normal
    /// Secondary detail.
    case dim
    /// A heading inside a value list.
    case heading
    /// Good news (CRC valid, log clean, refcounts consistent).
    case ok
    /// Worth a look (a dirty log, a release a flush still has to apply).
    case warning
    /// Wrong or unreadable (bad CRC, a leak, a table past the end of the file).
    case error
    /// Headers, footers, region tables, metadata regions.
    case header
    /// A top-level table whose entries point to tables or blocks (L1, BAT, grain directory).
    case table
    /// A second-level table or a journal (L2, grain table, VHDX log).
    case subtable
    /// Per-unit bookkeeping (refcount tables and blocks, sector bitmaps).
    case counts
    /// Snapshots and persistent bitmaps.
    case snapshot
    /// Guest data stored in this file.
    case data
    /// Compressed guest data.
    case compressed
    /// Reads as zeroes by an explicit zero state.
    case zero
    /// Read from a backing file or parent image.
    case backing
    /// Nothing: unallocated, a hole, unused space.
    case free
}

/// One label/value line of a described structure ("cluster size", "65536 (cluster_bits 16)").
public struct InspectRow: Sendable, Equatable {
    /// The label.
    public var label: String
    /// The value, as one line.
    public var value: String
    /// How the value reads.
    public var tone: InspectTone

    /// A row.
    public init(_ label: String, _ value: String, _ tone: InspectTone = .normal) {
        self.label = label
        self.value = value
        self.tone = tone
    }
}

/// A titled group of rows: one part of an image's metadata as its format describes it
/// (a header, the extensions, the snapshots, the walk's counts).
public struct InspectSection: Sendable, Equatable {
    /// The title ("QCOW2 header", "Region table").
    public var title: String
    /// The rows, in order.
    public var rows: [InspectRow]

    /// A section.
    public init(_ title: String, _ rows: [InspectRow]) {
        self.title = title
        self.rows = rows
    }
}

/// What one cell of a guest or host map shows: a tone and the sentence the cursor line
/// prints for it.
public struct InspectCell: Sendable, Equatable {
    /// How the cell reads.
    public var tone: InspectTone
    /// What it holds, in words ("data at host 0x50000 COPIED").
    public var text: String

    /// A cell.
    public init(_ tone: InspectTone, _ text: String) {
        self.tone = tone
        self.text = text
    }
}

/// One item of a map legend: the tone a format uses and the words it means there
/// (``InspectTone/table`` is "L1" in QCOW2 and "BAT" in VHDX).
public struct InspectLegendItem: Sendable, Equatable {
    /// The tone the map paints.
    public var tone: InspectTone
    /// What that tone means in this format.
    public var words: String

    /// A legend item.
    public init(_ tone: InspectTone, _ words: String) {
        self.tone = tone
        self.words = words
    }
}

/// Where a guest offset lives on the host and how it got there ("L1[0] -> L2 0x30000[3] =
/// 0x8000000000050000 -> host 0x50000"). `host` is nil when no host byte holds the data
/// (unallocated, zero, compressed, not present).
public struct InspectMapping: Sendable, Equatable {
    /// The host offset of the guest byte's data, when stored plainly in this file.
    public var host: UInt64?
    /// The path through the format's tables, in words.
    public var text: String

    /// A mapping.
    public init(host: UInt64?, _ text: String) {
        self.host = host
        self.text = text
    }
}

/// Words several formats and the viewer share, so one state reads the same everywhere.
public enum InspectWords {
    /// A refcount decrease deferred to the next flush (the old cluster of a copy-on-write, a
    /// copied table, a discarded cluster): the stored count stays above the references until
    /// the flush applies it, and that is not a leak.
    public static let releasePending = "release pending (next flush)"
}

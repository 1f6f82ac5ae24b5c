import BlockIO

/// What `blockscope explain` says about an image: where every byte of the host file goes
/// (``space``, kinds that sum to ``fileSize`` exactly), what went wrong by cause
/// (``findings``, one per cause with counts, not one per cluster) and what each remedy gives
/// back (``reclaim``). Format-neutral: QCOW2, VHDX and VHD build one; the CLI and the TUI
/// render it. docs/EXPLAIN.md defines every kind and class.
public struct ExplainReport: Sendable {
    /// The image format's name ("qcow2", "vhdx", "vpc").
    public var format: String
    /// The host file's size in bytes (`st_size`).
    public var fileSize: UInt64
    /// Bytes the file occupies on disk (`st_blocks` * 512).
    public var allocatedOnDisk: UInt64
    /// The unit the accounting works in (the cluster size, VHDX's 1 MiB, VHD's 512 bytes).
    public var unit: UInt64
    /// Bytes per kind, in the format's kind order; every kind of the format is listed, zero or
    /// not, and the values sum to ``fileSize``.
    public var space: [(kind: ExplainSpaceKind, bytes: UInt64)]
    /// The findings, most harmful first.
    public var findings: [ExplainFinding]
    /// What each remedy gives back, as JSON-ready values (bytes; `convert` may be negative).
    public var reclaim: [(key: String, value: JSONValue)]

    /// An empty report for a file of `fileSize` bytes.
    public init(format: String, fileSize: UInt64, allocatedOnDisk: UInt64, unit: UInt64) {
        self.format = format
        self.fileSize = fileSize
        self.allocatedOnDisk = allocatedOnDisk
        self.unit = unit
        space = []
        findings = []
        reclaim = []
    }

    /// Bytes of `kind` (0 when the format does not list it).
    public func bytes(_ kind: ExplainSpaceKind) -> UInt64 { space.first { $0.kind == kind }?.bytes ?? 0 }

    /// The sum of ``space`` (equal to ``fileSize`` for a well-formed report).
    public var spaceTotal: UInt64 { space.reduce(0) { $0 + $1.bytes } }
}

/// One kind of host-file bytes in an ``ExplainReport``; the raw value is the JSON key.
public enum ExplainSpaceKind: String, Sendable, CaseIterable {
    /// QCOW2 header cluster (header, extensions, backing file name).
    case header
    /// The active L1 table's clusters.
    case l1
    /// L2 tables (active image and snapshots).
    case l2
    /// The refcount table's clusters.
    case refcountTable = "refcount_table"
    /// Refcount blocks.
    case refcountBlocks = "refcount_blocks"
    /// The snapshot table.
    case snapshotTables = "snapshot_tables"
    /// Snapshots' L1 tables.
    case snapshotL1 = "snapshot_l1"
    /// The persistent bitmap directory.
    case bitmapDirectory = "bitmap_directory"
    /// Persistent bitmaps' tables.
    case bitmapTables = "bitmap_tables"
    /// Persistent bitmaps' data clusters.
    case bitmapData = "bitmap_data"
    /// The LUKS encryption header.
    case encryptionHeader = "encryption_header"
    /// Guest data the active image references.
    case data
    /// Guest data only internal snapshots reference.
    case snapshotData = "snapshot_data"
    /// Host clusters holding compressed guest data.
    case compressed
    /// Host clusters the active image references through entries that read as zeroes.
    case zeroed
    /// Clusters with a refcount that nothing references (what `check` counts as leaks).
    case leaked
    /// Clusters inside the used part of the file with refcount 0 and no reference.
    case unused
    /// Bytes after the last used cluster (QCOW2's image end offset) or last structure.
    case pastEnd = "past_end"
    /// Host-file holes (SEEK_HOLE) that hold nothing live: unused space, and guest data
    /// clusters that are holes throughout (they read as zeroes; preallocated metadata).
    case holes
    /// Bytes whose role could not be told (the header that locates everything is unreadable).
    case unknown
    /// VHDX file identifier and headers, VHD footer copy and dynamic header.
    case formatHeaders = "format_headers"
    /// VHDX region tables.
    case regionTable = "region_table"
    /// The VHDX log.
    case log
    /// The block allocation table (VHDX, VHD).
    case bat
    /// The VHDX metadata region.
    case metadata
    /// VHDX sector bitmaps and VHD per-block sector bitmaps.
    case sectorBitmaps = "sector_bitmaps"
    /// The VHD footer at the end of the file.
    case footer

    /// The kinds a QCOW2 report lists, in order.
    public static let qcow2: [ExplainSpaceKind] = [
        .header, .l1, .l2, .refcountTable, .refcountBlocks, .snapshotTables, .snapshotL1,
        .bitmapDirectory, .bitmapTables, .bitmapData, .encryptionHeader, .data, .snapshotData,
        .compressed, .zeroed, .leaked, .unused, .pastEnd, .holes, .unknown,
    ]
    /// The kinds a VHDX report lists, in order.
    public static let vhdx: [ExplainSpaceKind] = [.formatHeaders, .regionTable, .log, .metadata, .bat, .data, .sectorBitmaps, .unused, .pastEnd, .holes]
    /// The kinds a VHD report lists, in order.
    public static let vhd: [ExplainSpaceKind] = [.formatHeaders, .bat, .sectorBitmaps, .data, .unused, .pastEnd, .holes, .footer]

    /// Whether the bytes are metadata (drawn apart from data and waste in the space table).
    public var isMetadata: Bool {
        switch self {
        case .data, .snapshotData, .compressed, .zeroed, .leaked, .unused, .pastEnd, .holes, .unknown: return false
        default: return true
        }
    }
}

/// A byte range of the host file or of the guest disk.
public struct ExplainRange: Sendable, Equatable {
    /// First byte.
    public var offset: UInt64
    /// Length in bytes.
    public var length: UInt64

    /// Creates a range.
    public init(_ offset: UInt64, _ length: UInt64) {
        self.offset = offset
        self.length = length
    }

    /// `0xa-0xb`, first and last byte, as reports print ranges. An empty range is
    /// `0xa (empty)` and one that runs past 2^64 ends at `0xffffffffffffffff`: the figures
    /// come from damaged images (an empty guest range rendered as `0x0-` trapped `explain`).
    package var text: String {
        guard length > 0 else { return "\(hex(offset)) (empty)" }
        let (end, over) = offset.addingReportingOverflow(length - 1)
        return "\(hex(offset))-\(hex(over ? UInt64.max : end))"
    }
}

/// The cause a finding names; the raw value is the JSON `class`.
public enum ExplainFindingClass: String, Sendable, CaseIterable {
    /// The header cluster holds no header; the tables were looked for by content.
    case headerOverwritten = "header-overwritten"
    /// An L1/L2 table or refcount block whose content is not one.
    case metadataOverwritten = "metadata-overwritten"
    /// One host cluster reached from two places while its refcount counts one.
    case doubleReference = "double-reference"
    /// A leaked cluster that holds a valid L2 table.
    case orphanedL2Table = "orphaned-l2-table"
    /// A persistent bitmap whose directory entry points its table where no table can be
    /// (QEMU then refuses the image), with the leaked table it likely had before.
    case badBitmap = "bad-bitmap"
    /// Referenced clusters whose refcount is below their references.
    case refcountTooLow = "refcount-too-low"
    /// Referenced clusters whose refcount is above their references.
    case refcountTooHigh = "refcount-too-high"
    /// A cluster outside the refcount structure that still holds refcount-block bytes.
    case strandedRefcountBlock = "stranded-refcount-block"
    /// Clusters with a refcount and no reference, grouped into runs.
    case leakedCluster = "leaked-cluster"
    /// A format structure (VHDX/VHD) that check reports as inconsistent.
    case structureError = "structure-error"
}

/// What a range of bytes looks like by content (``ExplainFinding/looksLike``).
public enum ExplainLooksLike: String, Sendable {
    /// Arbitrary bytes: no table or refcount pattern.
    case guestData = "guest-data"
    /// Small big-endian counts of the image's refcount width.
    case refcountBlock = "refcount-block"
    /// Valid L2 entries.
    case l2Table = "l2-table"
    /// All zero bytes.
    case zeroes
}

/// One cause, with every range it touches and the count of clusters involved.
public struct ExplainFinding: Sendable {
    /// The cause.
    public var findingClass: ExplainFindingClass
    /// Host byte ranges the cause touches (at most ``maxRanges``; ``text`` gives the total).
    public var host: [ExplainRange]
    /// Guest byte ranges the cause touches (same bound).
    public var guest: [ExplainRange]
    /// What the damaged bytes look like by content, where it was looked at.
    public var looksLike: ExplainLooksLike?
    /// Clusters (units) involved; see each class in docs/EXPLAIN.md.
    public var clusters: UInt64
    /// One paragraph a person acts on: what happened, what it means for the guest's data,
    /// what `check -r` would do.
    public var text: String

    /// Ranges kept per finding in ``host`` and ``guest``.
    public static let maxRanges = 256

    /// Creates a finding; ranges past ``maxRanges`` are dropped (say the totals in `text`).
    public init(_ findingClass: ExplainFindingClass, host: [ExplainRange], guest: [ExplainRange] = [],
                looksLike: ExplainLooksLike? = nil, clusters: UInt64, text: String) {
        self.findingClass = findingClass
        self.host = Array(host.prefix(Self.maxRanges))
        self.guest = Array(guest.prefix(Self.maxRanges))
        self.looksLike = looksLike
        self.clusters = clusters
        self.text = text
    }
}

/// Merges adjacent or overlapping ranges of a list sorted by offset (for finding ranges).
public func mergedRanges(_ rs: [ExplainRange]) -> [ExplainRange] {
    var out: [ExplainRange] = []
    for r in rs.sorted(by: { $0.offset < $1.offset }) {
        if let last = out.last, last.offset + last.length >= r.offset {
            out[out.count - 1].length = max(last.offset + last.length, r.offset + r.length) - last.offset
        } else {
            out.append(r)
        }
    }
    return out
}

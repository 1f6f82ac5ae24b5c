import BlockIO

/// What a range of an image file holds, for every format: the vocabulary of the structure
/// model (``ImageStructure``). Raw values fit the per-cluster use map's low 6 bits; the UI
/// maps each kind to a glyph and colour and decodes nothing itself.
public enum HostRegionKind: UInt8, Sendable, CaseIterable {
    /// Referenced by nothing and refcount 0 (QCOW2), or not part of any structure.
    case free = 0
    /// QCOW2 header cluster (with its extensions and backing file name).
    case qcowHeader
    /// The active L1 table.
    case l1Table
    /// An L2 table (of the active image or a snapshot).
    case l2Table
    /// The refcount table.
    case refcountTable
    /// A refcount block.
    case refcountBlock
    /// The snapshot table.
    case snapshotTable
    /// A snapshot's L1 table.
    case snapshotL1Table
    /// The persistent bitmap directory.
    case bitmapDirectory
    /// A persistent bitmap's table.
    case bitmapTable
    /// A persistent bitmap's data cluster.
    case bitmapData
    /// The encryption (LUKS) header.
    case encryptionHeader
    /// Guest data.
    case data
    /// Compressed guest data.
    case compressed
    /// Refcount above zero but referenced by nothing (a leak).
    case leaked
    /// VHDX file identifier and the two headers (first 1 MiB).
    case vhdxHeaders
    /// The VHDX log.
    case vhdxLog
    /// The VHDX region tables.
    case vhdxRegionTable
    /// The VHDX metadata region.
    case vhdxMetadata
    /// A block allocation table (VHDX or VHD).
    case bat
    /// VHDX payload blocks (guest data).
    case payload
    /// VHDX sector bitmap blocks (differencing images).
    case sectorBitmap
    /// The VHD footer (and its copy at offset 0 of dynamic images).
    case vhdFooter
    /// The VHD dynamic disk header.
    case vhdDynamicHeader
    /// A VHD block's sector bitmap.
    case vhdBlockBitmap
    /// A raw image's allocated bytes.
    case rawData
    /// A hole in a raw image.
    case rawHole
    /// Could not be read (see the region's reason).
    case unreadable

    /// A short name for legends, cursor lines and tests.
    public var name: String {
        switch self {
        case .free: return "free"
        case .qcowHeader: return "header"
        case .l1Table: return "L1 table"
        case .l2Table: return "L2 table"
        case .refcountTable: return "refcount table"
        case .refcountBlock: return "refcount block"
        case .snapshotTable: return "snapshot table"
        case .snapshotL1Table: return "snapshot L1 table"
        case .bitmapDirectory: return "bitmap directory"
        case .bitmapTable: return "bitmap table"
        case .bitmapData: return "bitmap data"
        case .encryptionHeader: return "encryption header"
        case .data: return "data"
        case .compressed: return "compressed"
        case .leaked: return "leaked"
        case .vhdxHeaders: return "headers"
        case .vhdxLog: return "log"
        case .vhdxRegionTable: return "region table"
        case .vhdxMetadata: return "metadata"
        case .bat: return "BAT"
        case .payload: return "payload"
        case .sectorBitmap: return "sector bitmap"
        case .vhdFooter: return "footer"
        case .vhdDynamicHeader: return "dynamic header"
        case .vhdBlockBitmap: return "block bitmap"
        case .rawData: return "data"
        case .rawHole: return "hole"
        case .unreadable: return "unreadable"
        }
    }

    /// Whether the region is metadata (not guest data): a data cluster referenced as well
    /// by a metadata structure shows as the metadata.
    public var isMetadata: Bool {
        switch self {
        case .free, .data, .compressed, .leaked, .payload, .rawData, .rawHole, .unreadable, .bitmapData: return false
        default: return true
        }
    }
}

/// A named range of an image file.
public struct HostRegion: Sendable, Equatable {
    /// What it holds.
    public var kind: HostRegionKind
    /// Host byte offset.
    public var offset: UInt64
    /// Length in bytes.
    public var length: UInt64
    /// A label ("L1 table", "snapshot 'base' L1 table", "bitmap 'b0' table"); for
    /// ``HostRegionKind/unreadable``, why it could not be read.
    public var label: String

    /// Creates a region.
    public init(kind: HostRegionKind, offset: UInt64, length: UInt64, label: String? = nil) {
        self.kind = kind
        self.offset = offset
        self.length = length
        self.label = label ?? kind.name
    }
}

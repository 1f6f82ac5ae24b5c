import BlockIO

/// A format's words for the events its queues publish (step mode, the event log): what a
/// mapping means, what a table entry's value means, which entry of which inspected table
/// an update changed. Each format supplies one value through its inspector registration
/// (``InspectorHandle``); a viewer words everything else generically and decodes no entry.
///
/// Values are small and `Sendable`: the viewer keeps one for formatting events on its thread.
public protocol FormatEventWords: Sendable {
    /// What a newly allocated unit is called ("host cluster", "payload block", "block").
    var allocationUnit: String { get }
    /// log2 of the host unit refcount indices count in (a refcount update's `index` times
    /// this unit is its host offset); nil when the format has no refcounts.
    var hostUnitBits: Int? { get }
    /// A mapping a request found, in the format's words; nil to use the generic words
    /// (allocated/shared/backing/zero/compressed clusters).
    func mappingWords(_ kind: RegionKind, host: UInt64, op: GuestOp?) -> String?
    /// A region's state before a write, zero or discard, in the format's words ("allocated at
    /// host 0x50000, refcount 1, COPIED"); nil to use the generic words.
    func regionWords(_ kind: RegionKind, host: UInt64, refcount: UInt64) -> String?
    /// One value of a table entry in words ("L2 table at 0x40000 (COPIED)", "FULLY_PRESENT at
    /// 0x300000"); nil when the format does not word this table.
    func entryWords(_ table: MetadataTable, _ value: UInt64) -> String?
    /// What an entry change from `old` to `new` stops referencing, as a suffix ("; old
    /// cluster 0x50000: refcount release pending (next flush)"); empty when nothing.
    func releaseWords(_ table: MetadataTable, old: UInt64, new: UInt64) -> String
    /// The table name an update names its entries by ("L1", "L2", "BAT").
    func tableName(_ table: MetadataTable) -> String?
    /// The inspected entry a table update changed (`index` in `table`, for the request at
    /// guest `guest`) and its name ("L2[3]", "the refcount of host cluster 5"); nil when no
    /// inspected table shows it.
    func target(ofUpdate table: MetadataTable, index: UInt64, guest: UInt64) -> (target: InspectTarget, name: String)?
}

extension FormatEventWords {
    /// No refcounts.
    public var hostUnitBits: Int? { nil }
    /// The generic words.
    public func mappingWords(_ kind: RegionKind, host: UInt64, op: GuestOp?) -> String? { nil }
    /// The generic words.
    public func regionWords(_ kind: RegionKind, host: UInt64, refcount: UInt64) -> String? { nil }
    /// Not worded.
    public func entryWords(_ table: MetadataTable, _ value: UInt64) -> String? { nil }
    /// Nothing released.
    public func releaseWords(_ table: MetadataTable, old: UInt64, new: UInt64) -> String { "" }
    /// Not named.
    public func tableName(_ table: MetadataTable) -> String? { nil }
    /// Not shown.
    public func target(ofUpdate table: MetadataTable, index: UInt64, guest: UInt64) -> (target: InspectTarget, name: String)? { nil }
}

/// Words for a format without tables (RAW): guest offset = host offset.
public struct IdentityEventWords: FormatEventWords {
    /// Words for an identity-mapped image.
    public init() {}
    /// "host cluster" (nothing is allocated by the format itself).
    public var allocationUnit: String { "host cluster" }
    /// An allocated mapping is the identity.
    public func mappingWords(_ kind: RegionKind, host: UInt64, op: GuestOp?) -> String? {
        guard kind == .allocated else { return nil }
        return "RAW: guest offset = host offset \(hex(host))" + (op == .read ? ", read from there" : op == nil ? "" : ", written in place")
    }
}

/// What a viewer gets for an image: its inspector and its format's event words.
public struct InspectorHandle {
    /// The image through the neutral model.
    public var inspector: any ImageInspector
    /// The format's words for events.
    public var words: any FormatEventWords

    /// A handle.
    public init(inspector: any ImageInspector, words: any FormatEventWords) {
        self.inspector = inspector
        self.words = words
    }
}

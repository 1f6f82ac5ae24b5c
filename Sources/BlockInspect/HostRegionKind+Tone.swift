import BlockIO

extension HostRegionKind {
    /// The neutral tone a viewer paints this kind in (``InspectTone/table`` for an L1 table
    /// and a BAT alike): the block layer's vocabulary mapped once, here, so no viewer names a
    /// format's region.
    public var tone: InspectTone {
        switch self {
        case .free, .rawHole: return .free
        case .qcowHeader, .vhdxHeaders, .vhdxRegionTable, .vhdxMetadata, .vhdFooter, .vhdDynamicHeader, .encryptionHeader: return .header
        case .l1Table, .bat: return .table
        case .l2Table, .vhdxLog: return .subtable
        case .refcountTable, .refcountBlock, .sectorBitmap, .vhdBlockBitmap: return .counts
        case .snapshotTable, .snapshotL1Table, .bitmapDirectory, .bitmapTable, .bitmapData: return .snapshot
        case .data, .payload, .rawData: return .data
        case .compressed: return .compressed
        case .leaked, .unreadable: return .error
        }
    }
}

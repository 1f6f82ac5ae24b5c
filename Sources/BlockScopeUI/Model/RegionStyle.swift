import BlockCore

extension HostRegionKind {
    /// The colour role the host map and the lists draw this kind in: the UI's only
    /// knowledge of the structure model's vocabulary.
    public var role: Role {
        switch self {
        case .free, .rawHole: return .free
        case .qcowHeader, .vhdxHeaders, .vhdxRegionTable, .vhdxMetadata, .vhdFooter, .vhdDynamicHeader, .encryptionHeader: return .header
        case .l1Table, .bat: return .l1
        case .l2Table, .vhdxLog: return .l2
        case .refcountTable, .refcountBlock, .sectorBitmap, .vhdBlockBitmap: return .refcount
        case .snapshotTable, .snapshotL1Table, .bitmapDirectory, .bitmapTable, .bitmapData: return .snapshot
        case .data, .payload, .rawData: return .data
        case .compressed: return .compressed
        case .leaked, .unreadable: return .error
        }
    }
}

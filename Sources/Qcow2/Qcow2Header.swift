import BlockIO
import BlockInspect

/// Decodes a big-endian UInt64 at byte `at` of a raw buffer.
@inline(__always)
func loadBE64(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
    UInt64(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt64.self))
}

/// Encodes `v` big-endian into `out` at byte `at`.
func storeBE(_ v: UInt64, into out: inout [UInt8], at: Int, width: Int) {
    for i in 0..<width { out[at + i] = UInt8(truncatingIfNeeded: v >> UInt64(8 * (width - 1 - i))) }
}

/// Feature bits of a QCOW2 v3 header (incompatible, compatible and autoclear words).
public enum Qcow2Feature {
    /// Incompatible bit 0: the refcounts may be stale (lazy refcounts, unclean close).
    public static let dirty: UInt64 = 1 << 0
    /// Incompatible bit 1: QEMU found a metadata inconsistency; writes are refused.
    public static let corrupt: UInt64 = 1 << 1
    /// Incompatible bit 2: guest data lives in an external data file.
    public static let externalData: UInt64 = 1 << 2
    /// Incompatible bit 3: the compression_type field is not zlib.
    public static let compressionType: UInt64 = 1 << 3
    /// Incompatible bit 4: 128-bit L2 entries with 32 subclusters.
    public static let extendedL2: UInt64 = 1 << 4
    /// Every incompatible bit blockscope understands.
    public static let knownIncompatible: UInt64 = 0x1f
    /// Compatible bit 0: lazy refcounts.
    public static let lazyRefcounts: UInt64 = 1 << 0
    /// Autoclear bit 0: the bitmaps extension is consistent.
    public static let bitmaps: UInt64 = 1 << 0
    /// Autoclear bit 1: the external data file is a valid raw image.
    public static let rawExternalData: UInt64 = 1 << 1
}

/// A parsed and validated QCOW2 header (v2 or v3), byte layout per QEMU's docs/interop/qcow2.txt.
///
/// Every field is in host order. ``parse(_:fileSize:path:)`` refuses headers whose tables
/// cannot exist in the file, so code that uses a header may allocate tables of the sizes it
/// names without trusting the file further.
public struct Qcow2Header: Sendable, Equatable {
    /// 2 or 3.
    public var version: UInt32
    /// Offset of the backing file name (0: none).
    public var backingFileOffset: UInt64
    /// Length of the backing file name in bytes.
    public var backingFileSize: UInt32
    /// log2 of the cluster size (9...21).
    public var clusterBits: UInt32
    /// Guest size in bytes.
    public var size: UInt64
    /// 0 none, 1 AES, 2 LUKS.
    public var cryptMethod: UInt32
    /// Entries in the active L1 table.
    public var l1Size: UInt32
    /// Host offset of the active L1 table.
    public var l1TableOffset: UInt64
    /// Host offset of the refcount table.
    public var refcountTableOffset: UInt64
    /// Clusters the refcount table occupies.
    public var refcountTableClusters: UInt32
    /// Number of internal snapshots.
    public var nbSnapshots: UInt32
    /// Host offset of the snapshot table.
    public var snapshotsOffset: UInt64
    /// Incompatible feature bits (v3; 0 for v2).
    public var incompatibleFeatures: UInt64 = 0
    /// Compatible feature bits (v3).
    public var compatibleFeatures: UInt64 = 0
    /// Autoclear feature bits (v3).
    public var autoclearFeatures: UInt64 = 0
    /// log2 of the refcount width in bits (4 for v2).
    public var refcountOrder: UInt32 = 4
    /// Header length in bytes (72 for v2).
    public var headerLength: UInt32 = 72
    /// 0 zlib, 1 zstd (byte 104, present when header_length > 104).
    public var compressionType: UInt8 = 0

    /// The QCOW2 magic `QFI\xfb`.
    public static let magic: UInt32 = 0x5146_49fb
    /// Largest L1 table QEMU accepts (32 MiB), in bytes.
    public static let maxL1Bytes: UInt64 = 32 << 20
    /// Largest refcount table QEMU accepts (8 MiB), in bytes.
    public static let maxRefcountTableBytes: UInt64 = 8 << 20
    /// Most snapshots QEMU accepts.
    public static let maxSnapshots: UInt32 = 65536

    /// Bytes per cluster.
    public var clusterSize: UInt64 { 1 << UInt64(clusterBits) }
    /// Bits per refcount entry (1...64).
    public var refcountBits: UInt32 { 1 << refcountOrder }
    /// Whether L2 entries are 128 bits with subcluster bitmaps.
    public var extendedL2: Bool { incompatibleFeatures & Qcow2Feature.extendedL2 != 0 }
    /// Bytes per L2 entry (8 or 16).
    public var l2EntryBytes: UInt64 { extendedL2 ? 16 : 8 }
    /// Entries per L2 table.
    public var l2Entries: UInt64 { clusterSize / l2EntryBytes }
    /// Subclusters per cluster (32 with extended L2, else 1).
    public var subclustersPerCluster: UInt64 { extendedL2 ? 32 : 1 }
    /// Bytes per subcluster.
    public var subclusterSize: UInt64 { clusterSize / subclustersPerCluster }
    /// Whether the dirty bit is set.
    public var isDirty: Bool { incompatibleFeatures & Qcow2Feature.dirty != 0 }
    /// Whether the corrupt bit is set.
    public var isCorrupt: Bool { incompatibleFeatures & Qcow2Feature.corrupt != 0 }
    /// Whether guest data lives in an external data file.
    public var hasExternalData: Bool { incompatibleFeatures & Qcow2Feature.externalData != 0 }
    /// Whether lazy refcounts are on.
    public var lazyRefcounts: Bool { compatibleFeatures & Qcow2Feature.lazyRefcounts != 0 }
    /// L1 entries needed to cover the guest size.
    public var l1EntriesNeeded: UInt64 {
        let perL1 = l2Entries * clusterSize
        return size / perL1 + (size % perL1 == 0 ? 0 : 1)
    }
    /// Bytes of the refcount table.
    public var refcountTableBytes: UInt64 { UInt64(refcountTableClusters) << UInt64(clusterBits) }
    /// Where header extensions start.
    public var extensionsStart: UInt64 { version == 2 ? 72 : UInt64(headerLength) }

    /// Parses and validates a header from the image's first bytes.
    ///
    /// `bytes` should hold at least the first cluster or the whole file if shorter; `fileSize`
    /// bounds every table. Errors name the field and the value, e.g. "qcow2: refcount_order 7
    /// is too large (at most 6: 64-bit refcounts)".
    public static func parse(_ bytes: [UInt8], fileSize: UInt64, path: String) throws(BlockError) -> Qcow2Header {
        func bad(_ m: String, _ kind: BlockError.Kind = .invalidFormat) -> BlockError {
            BlockError(kind, "qcow2: " + m, path: path, operation: "open")
        }
        if bytes.count < 72 || fileSize < 72 { throw bad("file is too short for a qcow2 header (\(fileSize) bytes, need 72)") }
        let b = ByteReader(bytes, what: "qcow2 header", path: path)
        if try b.be32(0) != magic { throw bad("bad magic (not a qcow2 image)") }
        let version = try b.be32(4)
        if version != 2 && version != 3 { throw bad("unsupported qcow2 version \(version) (blockscope reads 2 and 3)", .unsupportedFeature) }
        var h = Qcow2Header(version: version, backingFileOffset: try b.be64(8), backingFileSize: try b.be32(16), clusterBits: try b.be32(20),
                            size: try b.be64(24), cryptMethod: try b.be32(32), l1Size: try b.be32(36), l1TableOffset: try b.be64(40),
                            refcountTableOffset: try b.be64(48), refcountTableClusters: try b.be32(56), nbSnapshots: try b.be32(60),
                            snapshotsOffset: try b.be64(64))
        if h.clusterBits < 9 || h.clusterBits > 21 {
            throw bad("cluster_bits \(h.clusterBits) is out of range (9..21: 512 B to 2 MiB clusters)")
        }
        if version == 3 {
            if bytes.count < 104 || fileSize < 104 { throw bad("file is too short for a v3 header (\(fileSize) bytes, need 104)") }
            h.incompatibleFeatures = try b.be64(72)
            h.compatibleFeatures = try b.be64(80)
            h.autoclearFeatures = try b.be64(88)
            h.refcountOrder = try b.be32(96)
            h.headerLength = try b.be32(100)
            if h.headerLength < 104 { throw bad("header_length \(h.headerLength) is too short (a v3 header has at least 104 bytes)") }
            if h.headerLength % 8 != 0 { throw bad("header_length \(h.headerLength) is not a multiple of 8") }
            if UInt64(h.headerLength) > h.clusterSize { throw bad("header_length \(h.headerLength) exceeds the cluster size \(h.clusterSize)") }
            if h.headerLength > 104 { h.compressionType = try b.u8(104) }
        }
        if h.refcountOrder > 6 {
            throw bad("refcount_order \(h.refcountOrder) is too large (at most 6: 64-bit refcounts)")
        }
        if h.compressionType > 1 { throw bad("unknown compression type \(h.compressionType)", .unsupportedFeature) }
        if (h.compressionType != 0) != (h.incompatibleFeatures & Qcow2Feature.compressionType != 0) {
            throw bad("compression type \(h.compressionType) does not match the compression incompatible bit")
        }
        if h.extendedL2 && h.clusterBits < 14 {
            throw bad("extended L2 entries need clusters of at least 16 KiB (cluster_bits \(h.clusterBits))")
        }
        if h.cryptMethod > 2 { throw bad("unknown encryption method \(h.cryptMethod)", .unsupportedFeature) }
        if h.backingFileOffset != 0 {
            // The end is computed without overflow: an offset near 2^64 trapped here (found by
            // qcow2-write; qemu-img: "Invalid backing file offset").
            let (end, wrapped) = h.backingFileOffset.addingReportingOverflow(UInt64(h.backingFileSize))
            if h.backingFileSize > 1023 || wrapped || end > min(h.clusterSize, fileSize) {
                throw bad("backing file name (offset \(hex(h.backingFileOffset)), \(h.backingFileSize) bytes) does not fit in the first cluster")
            }
        }
        // Tables: the size limits QEMU applies, then alignment, then the file must back them.
        if UInt64(h.l1Size) * 8 > maxL1Bytes { throw bad("L1 table of \(h.l1Size) entries is too large (QEMU's limit is \(maxL1Bytes / 8))", .overflow) }
        if UInt64(h.l1Size) < h.l1EntriesNeeded {
            throw bad("L1 table of \(h.l1Size) entries is too small for a virtual size of \(h.size) bytes (needs \(h.l1EntriesNeeded))")
        }
        try h.checkTable("L1 table", offset: h.l1TableOffset, bytes: UInt64(h.l1Size) * 8, fileSize: fileSize, path: path)
        if h.refcountTableBytes > maxRefcountTableBytes {
            throw bad("refcount table of \(h.refcountTableClusters) clusters is too large (QEMU's limit is \(maxRefcountTableBytes) bytes)", .overflow)
        }
        if h.refcountTableClusters == 0 { throw bad("refcount table has no clusters") }
        try h.checkTable("refcount table", offset: h.refcountTableOffset, bytes: h.refcountTableBytes, fileSize: fileSize, path: path)
        if h.nbSnapshots > maxSnapshots { throw bad("\(h.nbSnapshots) snapshots exceed QEMU's limit of \(maxSnapshots)", .overflow) }
        if h.nbSnapshots > 0 {
            try h.checkTable("snapshot table", offset: h.snapshotsOffset, bytes: UInt64(h.nbSnapshots) * 40, fileSize: fileSize, path: path)
        }
        return h
    }

    /// Throws unless `[offset, offset+bytes)` is cluster-aligned and inside the file.
    func checkTable(_ what: @autoclosure () -> String, offset: UInt64, bytes: UInt64, fileSize: UInt64, path: String) throws(BlockError) {
        if bytes == 0 { return }
        if offset & (clusterSize - 1) != 0 {
            throw BlockError(.corruptImage, "qcow2: \(what()) at \(hex(offset)) is not aligned to the cluster size \(clusterSize)", path: path, hostOffset: offset, operation: "open")
        }
        let (end, o) = offset.addingReportingOverflow(bytes)
        if o || end > fileSize {
            throw BlockError(.corruptImage, "qcow2: \(what()) at \(hex(offset)) (\(bytes) bytes) lies beyond the end of the file (size \(hex(fileSize)))", path: path, hostOffset: offset, operation: "open")
        }
    }

    /// The compression type's name as qemu-img prints it.
    public var compressionName: String { compressionType == 1 ? "zstd" : "zlib" }
}

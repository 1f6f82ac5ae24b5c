import BlockIO
import BlockInspect
import BlockMap

/// The 512-byte header of a hosted sparse extent (`KDMV`, little-endian), as VMware's
/// "Virtual Disk Format 5.0" lays it out. Sector fields are in 512-byte sectors.
///
/// A streamOptimized extent may say ``gdAtEnd`` in gdOffset: the real header is then the
/// footer, 1024 bytes before the end of the file (``VmdkSparseExtent`` reads it).
public struct VmdkSparseHeader: Sendable, Equatable {
    /// `KDMV` as the file stores it.
    public static let magic: [UInt8] = Array("KDMV".utf8)
    /// Flag bit 0: the newline-detection bytes are valid.
    public static let flagNewlineDetect: UInt32 = 1 << 0
    /// Flag bit 1: a redundant grain directory is kept at rgdOffset.
    public static let flagRedundantGD: UInt32 = 1 << 1
    /// Flag bit 2: a grain table entry of 1 means a zeroed grain (qemu's zeroed_grain).
    public static let flagZeroedGrain: UInt32 = 1 << 2
    /// Flag bit 16: grains are compressed.
    public static let flagCompressed: UInt32 = 1 << 16
    /// Flag bit 17: the stream has markers (streamOptimized).
    public static let flagMarkers: UInt32 = 1 << 17
    /// gdOffset value meaning "the grain directory's place is in the footer".
    public static let gdAtEnd: UInt64 = 0xffff_ffff_ffff_ffff
    /// compressAlgorithm value of deflate (zlib streams).
    public static let compressionDeflate: UInt16 = 1

    /// Format version (1; 2 with zeroed grains; 3 with changed block tracking or streamOptimized).
    public var version: UInt32
    /// Flag bits (see the `flag` constants).
    public var flags: UInt32
    /// Guest size of the extent in sectors.
    public var capacity: UInt64
    /// Grain size in sectors (a power of two, at least 8 per the specification; qemu writes 128).
    public var grainSize: UInt64
    /// Sector of the embedded descriptor (0 when none).
    public var descriptorOffset: UInt64
    /// Sectors reserved for the embedded descriptor.
    public var descriptorSize: UInt64
    /// Entries per grain table (512).
    public var numGTEsPerGT: UInt32
    /// Sector of the redundant grain directory (used with ``flagRedundantGD``).
    public var rgdOffset: UInt64
    /// Sector of the grain directory, or ``gdAtEnd``.
    public var gdOffset: UInt64
    /// Sectors of metadata before the first grain.
    public var overHead: UInt64
    /// Set while a writer has the extent open (VMware's unclean-shutdown byte).
    public var uncleanShutdown: UInt8
    /// The four newline-detection bytes (`\n`, ` `, `\r`, `\n` when intact).
    public var newlineBytes: [UInt8]
    /// 0 none, 1 deflate.
    public var compressAlgorithm: UInt16

    /// Creates a header.
    public init(version: UInt32 = 1, flags: UInt32, capacity: UInt64, grainSize: UInt64 = 128, descriptorOffset: UInt64 = 0,
                descriptorSize: UInt64 = 0, numGTEsPerGT: UInt32 = 512, rgdOffset: UInt64 = 0, gdOffset: UInt64, overHead: UInt64,
                uncleanShutdown: UInt8 = 0, newlineBytes: [UInt8] = [0x0a, 0x20, 0x0d, 0x0a], compressAlgorithm: UInt16 = 0) {
        self.version = version
        self.flags = flags
        self.capacity = capacity
        self.grainSize = grainSize
        self.descriptorOffset = descriptorOffset
        self.descriptorSize = descriptorSize
        self.numGTEsPerGT = numGTEsPerGT
        self.rgdOffset = rgdOffset
        self.gdOffset = gdOffset
        self.overHead = overHead
        self.uncleanShutdown = uncleanShutdown
        self.newlineBytes = newlineBytes
        self.compressAlgorithm = compressAlgorithm
    }

    /// Whether the first bytes are a sparse extent header.
    public static func isSparse(_ b: [UInt8]) -> Bool { b.count >= 4 && Array(b[0..<4]) == magic }

    /// Parses the 512 bytes at host offset `at` of `path`; checks the magic, the version,
    /// the newline bytes (when flagged: a file sent through a text-mode transfer is refused),
    /// and the grain and table sizes. Offsets against the file size are checked by the caller.
    public static func parse(_ b: [UInt8], path: String, at: UInt64 = 0) throws(BlockError) -> VmdkSparseHeader {
        func bad(_ m: String) -> BlockError { BlockError(.invalidFormat, "vmdk: sparse header at \(hex(at)): \(m)", path: path, hostOffset: at, operation: "open") }
        if b.count < 512 { throw bad("needs 512 bytes, the file has \(b.count)") }
        if !isSparse(b) { throw bad("no 'KDMV' magic") }
        let r = ByteReader(b, what: "vmdk sparse header", path: path)
        let h = VmdkSparseHeader(version: try r.le32(4), flags: try r.le32(8), capacity: try r.le64(12),
                                 grainSize: try r.le64(20), descriptorOffset: try r.le64(28), descriptorSize: try r.le64(36),
                                 numGTEsPerGT: try r.le32(44), rgdOffset: try r.le64(48), gdOffset: try r.le64(56),
                                 overHead: try r.le64(64), uncleanShutdown: b[72], newlineBytes: Array(b[73..<77]),
                                 compressAlgorithm: try r.le16(77))
        if h.version < 1 || h.version > 3 { throw bad("version \(h.version) is not supported (1, 2 or 3)") }
        if h.flags & flagNewlineDetect != 0 && h.newlineBytes != [0x0a, 0x20, 0x0d, 0x0a] {
            throw bad("the newline-detection bytes are \(h.newlineBytes.map { hex(UInt64($0)) }.joined(separator: " ")), not 0xa 0x20 0xd 0xa: the file went through a text-mode transfer")
        }
        if h.grainSize == 0 || h.grainSize & (h.grainSize - 1) != 0 || h.grainSize > 0x20_0000 {
            throw bad("grain size \(h.grainSize) sectors is not a power of two up to 1 GiB")
        }
        if h.numGTEsPerGT == 0 || h.numGTEsPerGT > 512 { throw bad("\(h.numGTEsPerGT) entries per grain table (1 to 512 allowed)") }
        if h.compressAlgorithm > 1 { throw bad("compression algorithm \(h.compressAlgorithm) is unknown (0 none, 1 deflate)") }
        if h.capacity > (UInt64(1) << 40) { throw bad("capacity \(h.capacity) sectors is beyond 512 TiB") }
        return h
    }

    /// The 512 bytes of this header.
    public func encode() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        b.replaceSubrange(0..<4, with: VmdkSparseHeader.magic)
        ByteField.putLE(&b, 4, UInt64(version), width: 4)
        ByteField.putLE(&b, 8, UInt64(flags), width: 4)
        ByteField.putLE(&b, 12, capacity, width: 8)
        ByteField.putLE(&b, 20, grainSize, width: 8)
        ByteField.putLE(&b, 28, descriptorOffset, width: 8)
        ByteField.putLE(&b, 36, descriptorSize, width: 8)
        ByteField.putLE(&b, 44, UInt64(numGTEsPerGT), width: 4)
        ByteField.putLE(&b, 48, rgdOffset, width: 8)
        ByteField.putLE(&b, 56, gdOffset, width: 8)
        ByteField.putLE(&b, 64, overHead, width: 8)
        b[72] = uncleanShutdown
        b.replaceSubrange(73..<77, with: newlineBytes.count == 4 ? newlineBytes : [0x0a, 0x20, 0x0d, 0x0a])
        ByteField.putLE(&b, 77, UInt64(compressAlgorithm), width: 2)
        return b
    }

    /// Whether grains are deflate-compressed.
    public var isCompressed: Bool { compressAlgorithm == VmdkSparseHeader.compressionDeflate || flags & VmdkSparseHeader.flagCompressed != 0 }
    /// Whether grains are preceded by markers.
    public var hasMarkers: Bool { flags & VmdkSparseHeader.flagMarkers != 0 }
    /// Whether a grain table entry of 1 means a zeroed grain.
    public var hasZeroedGrains: Bool { flags & VmdkSparseHeader.flagZeroedGrain != 0 }
    /// Whether a redundant grain directory is kept.
    public var hasRedundantGD: Bool { flags & VmdkSparseHeader.flagRedundantGD != 0 && rgdOffset != 0 }
    /// Bytes per grain.
    public var grainBytes: UInt64 { grainSize * 512 }
    /// Guest bytes one grain table covers.
    public var tableCoverage: UInt64 { UInt64(numGTEsPerGT) * grainBytes }
    /// Entries in the grain directory.
    public var directoryEntries: UInt64 { (capacity * 512 + tableCoverage - 1) / tableCoverage }
    /// Bytes of one grain table on disk (whole sectors).
    public var tableBytes: UInt64 { (UInt64(numGTEsPerGT) * 4 + 511) / 512 * 512 }
}

/// A streamOptimized marker: a grain marker (lba, compressed size, then the data) or, with
/// size 0, a metadata marker (sectors of metadata that follow, and its type).
public struct VmdkMarker: Sendable, Equatable {
    /// Metadata marker types.
    public enum MarkerType: UInt32, Sendable {
        /// End of stream.
        case endOfStream = 0
        /// A grain table follows.
        case grainTable = 1
        /// The grain directory follows.
        case grainDirectory = 2
        /// The footer (a copy of the header) follows.
        case footer = 3
    }
    /// Grain markers: the grain's first guest sector. Metadata markers: sectors that follow.
    public var value: UInt64
    /// Grain markers: compressed bytes that follow the 12-byte marker; 0 for metadata markers.
    public var size: UInt32
    /// Metadata markers: the type word (bytes 12..<16).
    public var type: UInt32

    /// Reads a marker from the first 16 bytes of `b` (`type` is 0 when `b` holds only 12).
    public static func parse(_ b: [UInt8]) -> VmdkMarker? {
        guard b.count >= 12 else { return nil }
        let r = ByteReader(b, what: "vmdk marker")
        guard let value = try? r.le64(0), let size = try? r.le32(8) else { return nil }
        return VmdkMarker(value: value, size: size, type: (try? r.le32(12)) ?? 0)
    }

    /// A metadata marker sector (512 bytes).
    public static func metadata(_ type: MarkerType, sectors: UInt64) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        ByteField.putLE(&b, 0, sectors, width: 8)
        ByteField.putLE(&b, 12, UInt64(type.rawValue), width: 4)
        return b
    }
}

/// ESXi's seSparse constant header (512 bytes at offset 0 of a `SESPARSE` extent,
/// little-endian; sector fields in 512-byte sectors). The format is not published; these
/// are the fields and checks of QEMU's block/vmdk.c, which reads it.
public struct VmdkSeSparseHeader: Sendable, Equatable {
    /// 0x00000000cafebabe.
    public static let magic: UInt64 = 0xcafe_babe
    /// 0x00000000cafecafe, the volatile header's magic.
    public static let volatileMagic: UInt64 = 0xcafe_cafe
    /// The one version read: 0x0000000200000001.
    public static let supportedVersion: UInt64 = 0x0000_0002_0000_0001

    /// Header version.
    public var version: UInt64
    /// Guest size in sectors.
    public var capacity: UInt64
    /// Grain size in sectors (8: 4 KiB).
    public var grainSize: UInt64
    /// Grain table size in sectors (64: 4096 entries of 8 bytes).
    public var grainTableSize: UInt64
    /// Flags (0).
    public var flags: UInt64
    /// Sector of the volatile header.
    public var volatileHeaderOffset: UInt64
    /// Journal header sector and size.
    public var journalHeaderOffset: UInt64, journalHeaderSize: UInt64
    /// Journal sector and size.
    public var journalOffset: UInt64, journalSize: UInt64
    /// Grain directory sector and size (sectors).
    public var grainDirOffset: UInt64, grainDirSize: UInt64
    /// Grain tables area sector and size.
    public var grainTablesOffset: UInt64, grainTablesSize: UInt64
    /// Free bitmap sector and size.
    public var freeBitmapOffset: UInt64, freeBitmapSize: UInt64
    /// Back map sector and size.
    public var backmapOffset: UInt64, backmapSize: UInt64
    /// Grains area sector and size.
    public var grainsOffset: UInt64, grainsSize: UInt64

    /// Whether `b` starts with the constant header's magic.
    public static func isSeSparse(_ b: [UInt8]) -> Bool { (try? ByteReader(b, what: "vmdk seSparse header").le64(0)) == magic }

    /// Parses and checks the constant header the way QEMU does (version, grain size 8,
    /// table size 64, flags and reserved words 0, zero padding).
    public static func parse(_ b: [UInt8], path: String) throws(BlockError) -> VmdkSeSparseHeader {
        func bad(_ m: String) -> BlockError { BlockError(.invalidFormat, "vmdk: seSparse header: \(m)", path: path, hostOffset: 0, operation: "open") }
        if b.count < 512 { throw bad("needs 512 bytes, the file has \(b.count)") }
        let r = ByteReader(b, what: "vmdk seSparse header", path: path)
        let q = { (i: Int) throws(BlockError) -> UInt64 in try r.le64(i * 8) }
        if (try q(0)) != magic { throw bad("magic is \(hex((try q(0)))), not 0xcafebabe") }
        let h = VmdkSeSparseHeader(version: (try q(1)), capacity: (try q(2)), grainSize: (try q(3)), grainTableSize: (try q(4)), flags: (try q(5)),
                                   volatileHeaderOffset: (try q(10)), journalHeaderOffset: (try q(12)), journalHeaderSize: (try q(13)),
                                   journalOffset: (try q(14)), journalSize: (try q(15)), grainDirOffset: (try q(16)), grainDirSize: (try q(17)),
                                   grainTablesOffset: (try q(18)), grainTablesSize: (try q(19)), freeBitmapOffset: (try q(20)), freeBitmapSize: (try q(21)),
                                   backmapOffset: (try q(22)), backmapSize: (try q(23)), grainsOffset: (try q(24)), grainsSize: (try q(25)))
        if h.version != supportedVersion { throw bad("version \(hex(h.version)) is not supported (0x200000001)") }
        if h.grainSize != 8 { throw bad("grain size \(h.grainSize) sectors is not supported (8)") }
        if h.grainTableSize != 64 { throw bad("grain table size \(h.grainTableSize) sectors is not supported (64)") }
        if h.flags != 0 { throw bad("flags \(hex(h.flags)) are not supported (0)") }
        for i in 6...9 where try q(i) != 0 { throw bad("reserved words are not zero") }
        if b[208..<512].contains(where: { $0 != 0 }) { throw bad("padding is not zero") }
        if h.capacity > (UInt64(1) << 37) { throw bad("capacity \(h.capacity) sectors is beyond 64 TiB") }
        return h
    }

    /// The 512 bytes of this header (for tests that build a seSparse extent).
    public func encode() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        let words: [UInt64] = [VmdkSeSparseHeader.magic, version, capacity, grainSize, grainTableSize, flags, 0, 0, 0, 0,
                               volatileHeaderOffset, 1, journalHeaderOffset, journalHeaderSize, journalOffset, journalSize,
                               grainDirOffset, grainDirSize, grainTablesOffset, grainTablesSize, freeBitmapOffset, freeBitmapSize,
                               backmapOffset, backmapSize, grainsOffset, grainsSize]
        for (i, w) in words.enumerated() { ByteField.putLE(&b, i * 8, w, width: 8) }
        return b
    }

    /// Checks the volatile header (magic, no journal to replay, zero padding).
    public static func checkVolatile(_ b: [UInt8], path: String, at: UInt64) throws(BlockError) {
        func bad(_ m: String) -> BlockError { BlockError(.invalidFormat, "vmdk: seSparse volatile header at \(hex(at)): \(m)", path: path, hostOffset: at, operation: "open") }
        if b.count < 512 { throw bad("needs 512 bytes") }
        let r = ByteReader(b, what: "vmdk seSparse volatile header", path: path)
        if try r.le64(0) != volatileMagic { throw bad("magic is \(hex(try r.le64(0))), not 0xcafecafe") }
        if try r.le64(24) != 0 { throw bad("the journal needs replaying (the image is dirty); not supported") }
        if b[32..<512].contains(where: { $0 != 0 }) { throw bad("padding is not zero") }
    }
}

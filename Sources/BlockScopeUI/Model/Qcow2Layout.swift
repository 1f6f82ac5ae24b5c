import BlockCore

/// A read-only decoder of a QCOW2 image's metadata, for the views.
///
/// The views need raw table entries (flags, refcounts, where each structure lies) rather
/// than guest I/O. With `live` (the open disk's ``QcowMetadata``), the L1 table, L2
/// tables, refcount table and refcounts come from it, so allocations show as soon as they
/// happen, before a flush writes them back. Without it (the image could not be opened for
/// I/O), this reads the host file with `pread`, loading tables lazily: the header and L1
/// table on open, an L2 table or refcount block when a view asks for it (cached). It never
/// writes. Offsets are host bytes unless named guest.
public final class Qcow2Layout: @unchecked Sendable {
    /// The decoded header fields.
    public struct Header: Sendable {
        /// QCOW2 version (2 or 3).
        public var version: UInt32
        /// log2 of the cluster size.
        public var clusterBits: UInt32
        /// Guest size in bytes.
        public var size: UInt64
        /// Encryption method (0 none, 1 AES, 2 LUKS).
        public var cryptMethod: UInt32
        /// L1 entries.
        public var l1Size: UInt32
        /// Host offset of the L1 table.
        public var l1TableOffset: UInt64
        /// Host offset of the refcount table.
        public var refcountTableOffset: UInt64
        /// Clusters the refcount table occupies.
        public var refcountTableClusters: UInt32
        /// Number of internal snapshots.
        public var snapshotCount: UInt32
        /// Host offset of the snapshot table.
        public var snapshotsOffset: UInt64
        /// Incompatible feature bits.
        public var incompatible: UInt64
        /// Compatible feature bits.
        public var compatible: UInt64
        /// Autoclear feature bits.
        public var autoclear: UInt64
        /// log2 of the refcount width in bits.
        public var refcountOrder: UInt32
        /// Header length in bytes.
        public var headerLength: UInt32
        /// Compression type (0 zlib, 1 zstd).
        public var compressionType: UInt8
        /// The backing file name, if any.
        public var backingFile: String?
        /// The backing format from the header extension, if any.
        public var backingFormat: String?
        /// Header extensions found: (type, length, name).
        public var extensions: [(type: UInt32, length: UInt32, name: String)]
    }

    /// An internal snapshot.
    public struct Snapshot: Sendable {
        /// Snapshot ID string.
        public var id: String
        /// Snapshot name.
        public var name: String
        /// Host offset of its L1 table.
        public var l1TableOffset: UInt64
        /// Its L1 entries.
        public var l1Size: UInt32
        /// Creation time (seconds since the epoch).
        public var date: UInt32
        /// VM state size in bytes.
        public var vmStateSize: UInt64
    }

    /// One decoded L2 entry.
    public struct L2Entry: Sendable, Equatable {
        /// The raw 64-bit descriptor.
        public var raw: UInt64
        /// The extended-L2 subcluster bitmap (allocated in the low 32 bits, zero in the high), if any.
        public var bitmap: UInt64?
        /// COPIED flag (refcount is exactly 1).
        public var copied: Bool { raw >> 63 != 0 }
        /// Compressed cluster.
        public var compressed: Bool { (raw >> 62) & 1 != 0 }
        /// Reads as zeroes (bit 0 of a standard descriptor).
        public var zero: Bool {
            if compressed { return false }
            if let bitmap { return bitmap >> 32 == 0xffff_ffff }
            return raw & 1 != 0
        }
        /// Unallocated: reads from the backing file (or zero).
        public var unallocated: Bool {
            if compressed { return false }
            if let bitmap { return raw & 0x00ff_ffff_ffff_fe00 == 0 && bitmap & 0xffff_ffff == 0 && bitmap >> 32 == 0 }
            return raw & 0x00ff_ffff_ffff_fe00 == 0 && raw & 1 == 0
        }
    }

    /// The image path.
    public let path: String
    /// The header.
    public let header: Header
    /// The active L1 table.
    public let l1: [UInt64]
    /// Internal snapshots.
    public let snapshots: [Snapshot]
    /// The refcount table.
    public let refcountTable: [UInt64]
    /// Host file size in bytes.
    public let fileSize: UInt64
    /// Bytes the snapshot table occupies.
    public let snapshotTableSize: UInt64
    private let file: SystemFile
    /// The open disk's metadata, when the tables should come from it.
    public let live: QcowMetadata?
    private var l2Cache: [UInt64: [L2Entry]] = [:]
    private var refBlockCache: [UInt64: [UInt64]] = [:]

    /// Cluster size in bytes.
    public var clusterSize: UInt64 { 1 << UInt64(header.clusterBits) }
    /// Whether L2 entries are 16 bytes with subcluster bitmaps.
    public var extendedL2: Bool { header.incompatible & (1 << 4) != 0 }
    /// L2 entries per table.
    public var l2Entries: Int { Int(clusterSize) / (extendedL2 ? 16 : 8) }
    /// Refcount width in bits.
    public var refcountBits: Int { 1 << Int(header.refcountOrder) }

    /// Opens `path` read-only and decodes the header, extensions, L1, refcount and snapshot
    /// tables; with `live` (the active view of an open disk), tables come from it.
    public init(path: String, live: QcowMetadata? = nil) throws(BlockError) {
        self.path = path
        self.live = live?.snapshot == nil ? live : nil
        file = try SystemFile(path: path, writable: false)
        fileSize = max(try file.size(), self.live?.allocatedEnd ?? 0)
        let h = try file.readBytes(at: 0, count: 512)
        guard h.count >= 72, be32(h, 0) == 0x5146_49fb else {
            throw BlockError(.invalidFormat, "not a QCOW2 image (no QFI\\xfb magic)", path: path)
        }
        let version = be32(h, 4)
        let v3 = version >= 3
        let headerLength = v3 ? be32(h, 100) : 72
        var hdr = Header(
            version: version, clusterBits: be32(h, 20), size: be64(h, 24), cryptMethod: be32(h, 32),
            l1Size: be32(h, 36), l1TableOffset: be64(h, 40), refcountTableOffset: be64(h, 48),
            refcountTableClusters: be32(h, 56), snapshotCount: be32(h, 60), snapshotsOffset: be64(h, 64),
            incompatible: v3 ? be64(h, 72) : 0, compatible: v3 ? be64(h, 80) : 0, autoclear: v3 ? be64(h, 88) : 0,
            refcountOrder: v3 ? be32(h, 96) : 4, headerLength: headerLength,
            compressionType: v3 && headerLength > 104 ? h[104] : 0, backingFile: nil, backingFormat: nil, extensions: [])
        guard hdr.clusterBits >= 9 && hdr.clusterBits <= 21, hdr.refcountOrder <= 6 else {
            throw BlockError(.corruptImage, "qcow2 header: cluster_bits \(hdr.clusterBits) or refcount_order \(hdr.refcountOrder) out of range", path: path)
        }
        let cs = UInt64(1) << UInt64(hdr.clusterBits)
        // Header extensions, within the first cluster.
        let first = try file.readBytes(at: 0, count: Int(min(cs, fileSize)))
        var off = Int(headerLength + 7) & ~7
        while off + 8 <= first.count {
            let type = be32(first, off), len = be32(first, off + 4)
            if type == 0 { break }
            let end = min(first.count, off + 8 + Int(len))
            let name: String
            switch type {
            case 0xe279_2aca:
                name = "backing format"
                hdr.backingFormat = String(decoding: first[(off + 8)..<end], as: UTF8.self)
            case 0x6803_f857: name = "feature name table"
            case 0x2385_2875: name = "bitmaps"
            case 0x0537_be77: name = "full disk encryption"
            case 0x4441_5441: name = "external data file"
            default: name = "unknown 0x" + String(type, radix: 16)
            }
            hdr.extensions.append((type, len, name))
            off += 8 + ((Int(len) + 7) & ~7)
        }
        let bfo = be64(h, 8), bfs = be32(h, 16)
        if bfo != 0 && bfs > 0 && bfs < 4096 {
            hdr.backingFile = String(decoding: try file.readBytes(at: bfo, count: Int(bfs)), as: UTF8.self)
        }
        header = hdr
        let f = file
        let size = fileSize
        func table(_ offset: UInt64, _ count: Int) throws(BlockError) -> [UInt64] {
            // Never read past the end of the file, whatever a (corrupt) header says.
            guard count > 0, offset > 0, offset < size else { return [] }
            let count = min(count, Int((size - offset) / 8))
            let b = try f.readBytes(at: offset, count: count * 8)
            return (0..<(b.count / 8)).map { be64(b, $0 * 8) }
        }
        if let live = self.live {
            l1 = live.l1Table
            refcountTable = live.refcountTable
        } else {
            l1 = try table(hdr.l1TableOffset, Int(min(hdr.l1Size, 1 << 24)))
            refcountTable = try table(hdr.refcountTableOffset, Int(min(UInt64(hdr.refcountTableClusters) * cs / 8, 1 << 24)))
        }
        var snaps: [Snapshot] = []
        var so = hdr.snapshotsOffset
        for _ in 0..<min(hdr.snapshotCount, 1024) {
            let b = try file.readBytes(at: so, count: 40)
            guard b.count == 40 else { break }
            let idLen = Int(be16(b, 12)), nameLen = Int(be16(b, 14)), extra = Int(be32(b, 36))
            let strs = try file.readBytes(at: so + 40 + UInt64(extra), count: idLen + nameLen)
            let vmState = extra >= 16 ? be64(try file.readBytes(at: so + 40, count: 16), 0) : UInt64(be32(b, 32))
            snaps.append(Snapshot(id: String(decoding: strs.prefix(idLen), as: UTF8.self),
                                  name: String(decoding: strs.dropFirst(idLen), as: UTF8.self),
                                  l1TableOffset: be64(b, 0), l1Size: be32(b, 8), date: be32(b, 16), vmStateSize: vmState))
            so += (40 + UInt64(extra + idLen + nameLen) + 7) & ~7
        }
        snapshots = snaps
        snapshotTableSize = so - hdr.snapshotsOffset
    }

    /// Host offset of the L2 table an L1 entry points to (0 when unallocated).
    public static func l2Offset(_ l1Entry: UInt64) -> UInt64 { l1Entry & 0x00ff_ffff_ffff_fe00 }

    /// The L2 table at `offset` (cached), or nil when it cannot be read.
    public func l2Table(at offset: UInt64) -> [L2Entry]? {
        guard offset != 0 else { return nil }
        if let t = l2Cache[offset] { return t }
        let ext = extendedL2
        let t: [L2Entry]
        if let live {
            guard let w = try? live.l2TableWords(at: offset), w.count == Int(clusterSize) / 8 else { return nil }
            t = (0..<l2Entries).map { i in ext ? L2Entry(raw: w[2 * i], bitmap: w[2 * i + 1]) : L2Entry(raw: w[i], bitmap: nil) }
        } else {
            guard let b = try? file.readBytes(at: offset, count: Int(clusterSize)), b.count == Int(clusterSize) else { return nil }
            t = (0..<l2Entries).map { i in
                ext ? L2Entry(raw: be64(b, i * 16), bitmap: be64(b, i * 16 + 8)) : L2Entry(raw: be64(b, i * 8), bitmap: nil)
            }
        }
        l2Cache[offset] = t
        return t
    }

    /// Drops cached tables so the next access rereads them (after the image changed).
    public func invalidate() {
        l2Cache.removeAll()
        refBlockCache.removeAll()
    }

    /// Host offset of a standard (uncompressed) L2 entry's cluster.
    public func dataOffset(_ e: L2Entry) -> UInt64 { e.raw & 0x00ff_ffff_ffff_fe00 }

    /// Host offset and length in bytes of a compressed cluster's data.
    public func compressedExtent(_ e: L2Entry) -> (offset: UInt64, length: UInt64) {
        let d = Qcow2CompressedDescriptor(entry: e.raw & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: header.clusterBits)
        return (d.hostOffset, UInt64(d.length))
    }

    /// The refcount of the cluster at host offset `hostOffset` (nil when its block is missing).
    public func refcount(ofClusterAt hostOffset: UInt64) -> UInt64? {
        let cluster = hostOffset >> UInt64(header.clusterBits)
        if let live { return try? live.refcount(ofCluster: cluster) }
        let perBlock = UInt64(clusterSize) * 8 / UInt64(refcountBits)
        let ti = Int(cluster / perBlock)
        guard ti < refcountTable.count else { return nil }
        let blockOff = refcountTable[ti] & ~UInt64(0x1ff)
        guard blockOff != 0 else { return 0 }
        let block: [UInt64]
        if let c = refBlockCache[blockOff] { block = c } else {
            guard let b = try? file.readBytes(at: blockOff, count: Int(clusterSize)), b.count == Int(clusterSize) else { return nil }
            // Sub-byte widths are packed LSB first, as QEMU does (Qcow2Refcounts).
            let order = header.refcountOrder
            block = (0..<Int(perBlock)).map { i in Qcow2Refcounts.get(b, index: i, order: order) }
            refBlockCache[blockOff] = block
        }
        return block[Int(cluster % perBlock)]
    }

    /// Reads raw host bytes (for the hex view).
    public func readHost(at offset: UInt64, count: Int) -> [UInt8] {
        (try? file.readBytes(at: offset, count: count)) ?? []
    }
}

@inline(__always) func be16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }
@inline(__always) func be32(_ b: [UInt8], _ o: Int) -> UInt32 {
    UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
}
@inline(__always) func be64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(be32(b, o)) << 32 | UInt64(be32(b, o + 4)) }

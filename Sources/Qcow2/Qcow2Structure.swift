import BlockIO
import BlockInspect

/// A QCOW2 image through the structure model: the header, extensions, snapshots and tables
/// as BlockCore's parsers read them (the ones `check` and I/O use), named host regions, L2
/// tables and stored refcounts on demand, and the whole-image use map from the reference
/// walk `check` runs (``Qcow2ReferenceWalk``).
///
/// Over live metadata (``init(metadata:)``: an open, possibly writable disk) tables come
/// from its caches first, so allocations show before a flush. Over the file alone
/// (``init(path:)``) it reads what it can and is honest about the rest: a part that fails to
/// parse is not shown with invented content, it is listed in ``problems`` with the parser's
/// reason, and what depends on it stays nil.
public final class Qcow2Structure: @unchecked Sendable {
    /// The image path.
    public let path: String
    /// The host file's size in bytes when opened (live: including clusters allocated in memory).
    public let fileSize: UInt64
    /// The header, nil when it could not be parsed.
    public let header: Qcow2Header?
    /// The header extensions, nil when they could not be parsed.
    public let extensions: Qcow2Extensions?
    /// The internal snapshots, nil when the snapshot table could not be read.
    public let snapshots: [Qcow2Snapshot]?
    /// The backing file name from the header, nil when there is none or it is unreadable.
    public let backingFile: String?
    /// The tables (L1, L2, refcounts) through BlockCore's metadata; nil when they could not be read.
    public let metadata: QcowMetadata?
    /// Whether ``metadata`` is an open disk's (shared with its I/O) rather than a read-only copy.
    public let isLive: Bool
    /// What could not be read, as unreadable regions whose label is the reason.
    public let problems: [HostRegion]

    /// The structure of an open disk's image (its metadata is shared, not copied).
    public init(metadata: QcowMetadata) {
        self.metadata = metadata
        isLive = true
        path = metadata.file.path
        fileSize = max(metadata.fileSize, metadata.allocatedEnd)
        header = metadata.header
        extensions = metadata.extensions
        snapshots = metadata.snapshots
        backingFile = Qcow2Structure.backingName(metadata.file, metadata.header)
        problems = []
    }

    /// Reads the structure of the file at `path` read-only, keeping every part that parses
    /// and recording why the others do not. Throws only when the file cannot be opened.
    public init(path: String) throws(BlockError) {
        self.path = path
        isLive = false
        let file = try SystemFile(path: path, writable: false)
        let size = try file.size()
        fileSize = size
        var problems: [HostRegion] = []
        var h: Qcow2Header?
        var ext: Qcow2Extensions?
        var snaps: [Qcow2Snapshot]?
        var meta: QcowMetadata?
        do throws(BlockError) {
            let head = try file.readBytes(at: 0, count: Int(min(size, 4096)))
            let hdr: Qcow2Header
            do { hdr = try Qcow2Header.parse(head, fileSize: size, path: path) } catch let e {
                // Fields that parse but point past the end of the file (a truncated image):
                // keep the fields, report the reason; nothing that lies past the end is read.
                guard let loose = try? Qcow2Header.parse(head, fileSize: .max, path: path) else { throw e }
                problems.append(HostRegion(kind: .unreadable, offset: 0, length: min(size, 4096), label: "header: \(e.message)"))
                hdr = loose
            }
            h = hdr
            let first = try file.readBytes(at: 0, count: Int(min(size, hdr.clusterSize)))
            do { ext = try Qcow2Extensions.parse(first, header: hdr, path: path) } catch let e {
                problems.append(HostRegion(kind: .unreadable, offset: hdr.extensionsStart, length: hdr.clusterSize - hdr.extensionsStart, label: "header extensions: \(e.message)"))
            }
            do { meta = try QcowMetadata(file: file, cacheEntries: 64) } catch let e {
                if hdr.nbSnapshots > 0 {
                    do { snaps = try Qcow2Snapshot.readTable(file: file, offset: hdr.snapshotsOffset, count: hdr.nbSnapshots, header: hdr).snapshots } catch let se {
                        problems.append(HostRegion(kind: .unreadable, offset: hdr.snapshotsOffset, length: 0, label: "snapshot table: \(se.message)"))
                    }
                } else {
                    snaps = []
                }
                problems.append(HostRegion(kind: .unreadable, offset: hdr.l1TableOffset, length: UInt64(hdr.l1Size) * 8, label: "tables: \(e.message)"))
            }
        } catch let e {
            problems.append(HostRegion(kind: .unreadable, offset: 0, length: min(size, 4096), label: "header: \(e.message)"))
        }
        header = h
        extensions = meta?.extensions ?? ext
        snapshots = meta?.snapshots ?? snaps
        metadata = meta
        backingFile = h.flatMap { Qcow2Structure.backingName(file, $0) }
        self.problems = problems
    }

    private static func backingName(_ file: SystemFile, _ h: Qcow2Header) -> String? {
        guard h.backingFileOffset != 0, h.backingFileSize > 0, h.backingFileSize <= 1023,
              let b = try? file.readBytes(at: h.backingFileOffset, count: Int(h.backingFileSize)),
              b.count == Int(h.backingFileSize) else { return nil }
        return String(decoding: b, as: UTF8.self)
    }

    /// The active L1 table (empty when the tables are unreadable).
    public var l1: [UInt64] { metadata?.l1Table ?? [] }

    /// The L2 table of L1 entry `index` as entries (nil when the L1 entry is empty or the
    /// table cannot be read); one table read, not cached here.
    public func l2Table(l1Index index: Int) -> [Qcow2L2Entry]? {
        guard let metadata, let h = header, let w = try? metadata.scanL2Table(l1Index: index) else { return nil }
        let n = Int(h.l2Entries)
        guard w.count >= n * (h.extendedL2 ? 2 : 1) else { return nil }
        return (0..<n).map { i in h.extendedL2 ? Qcow2L2Entry(entry: w[2 * i], bitmap: w[2 * i + 1]) : Qcow2L2Entry(entry: w[i], bitmap: 0) }
    }

    /// Why the L2 table of L1 entry `index` cannot be read (the reader's error, e.g. past the
    /// end of a truncated file); nil when it reads, or when the entry is empty.
    public func l2ReadError(l1Index index: Int) -> String? {
        guard let metadata else { return problems.first?.label ?? "tables unreadable" }
        do { _ = try metadata.scanL2Table(l1Index: index); return nil } catch let e { return e.message }
    }

    /// The L2 entry mapping guest offset `offset` (nil when its L2 table is absent or unreadable).
    public func l2Entry(guest offset: UInt64) -> Qcow2L2Entry? {
        guard let metadata, let h = header, offset < h.size else { return nil }
        return try? metadata.entries(firstCluster: offset >> UInt64(h.clusterBits), count: 1).first ?? nil
    }

    /// The stored refcount of host cluster `cluster` (nil when its refcount block is unreadable).
    public func storedRefcount(cluster: UInt64) -> UInt64? {
        try? metadata?.refcount(ofCluster: cluster)
    }

    /// Header, L1, refcount table and blocks, snapshot table and snapshot L1 tables, bitmap
    /// directory and tables, encryption header, then the ``problems``.
    public func hostRegions() -> [HostRegion] {
        guard let h = header else { return problems }
        let cs = h.clusterSize
        var out = [HostRegion(kind: .qcowHeader, offset: 0, length: cs)]
        out.append(HostRegion(kind: .l1Table, offset: h.l1TableOffset, length: UInt64(h.l1Size) * 8))
        out.append(HostRegion(kind: .refcountTable, offset: h.refcountTableOffset, length: h.refcountTableBytes))
        for (i, e) in (metadata?.refcountTable ?? []).enumerated() where e & Qcow2Entry.offsetMask != 0 {
            out.append(HostRegion(kind: .refcountBlock, offset: e & Qcow2Entry.offsetMask, length: cs, label: "refcount block \(i)"))
        }
        if let snaps = snapshots, !snaps.isEmpty {
            out.append(HostRegion(kind: .snapshotTable, offset: h.snapshotsOffset, length: metadata?.snapshotTableBytes ?? 0))
            for s in snaps {
                out.append(HostRegion(kind: .snapshotL1Table, offset: s.l1TableOffset, length: UInt64(s.l1Size) * 8, label: "snapshot '\(s.name)' L1 table"))
            }
        }
        if let b = extensions?.bitmaps, b.count > 0 {
            out.append(HostRegion(kind: .bitmapDirectory, offset: b.directoryOffset, length: b.directorySize))
            for bm in bitmaps() {
                out.append(HostRegion(kind: .bitmapTable, offset: bm.tableOffset, length: UInt64(bm.tableSize) * 8, label: "bitmap '\(bm.name)' table"))
            }
        }
        if let e = extensions?.encryption { out.append(HostRegion(kind: .encryptionHeader, offset: e.offset, length: e.length)) }
        return out + problems
    }

    /// The persistent bitmaps' directory entries (empty when absent or unreadable).
    public func bitmaps() -> [Qcow2Bitmap] {
        guard let b = extensions?.bitmaps, b.count > 0, b.directorySize <= 64 << 20, let metadata,
              let dir = try? metadata.file.readBytes(at: b.directoryOffset, count: Int(b.directorySize)) else { return [] }
        return (try? Qcow2Bitmap.parseDirectory(dir, count: b.count, path: path)) ?? []
    }

    /// The whole-image use map with expected refcounts and `check`'s counts: the same
    /// ``Qcow2ReferenceWalk`` `check` runs (refcounts compared, then OFLAG_COPIED; over live
    /// tables when ``isLive``, where releases queued for a later flush are named, not counted
    /// as leaks). Memory: two bytes per host cluster.
    public func walk(progress: ((Double) -> Bool)? = nil) throws(BlockError) -> HostUseMap {
        guard let metadata else {
            throw BlockError(.corruptImage, problems.map(\.label).joined(separator: "; "), path: path, operation: "walk")
        }
        var w = try Qcow2ReferenceWalk(metadata: metadata, live: isLive, recordUses: true)
        w.progress = progress
        try w.calculate()
        try w.compare(fix: nil)
        try w.checkCopied(fix: false)
        w.report.imageEndOffset = UInt64(w.highest + 1) * metadata.header.clusterSize
        _ = progress?(1)
        return HostUseMap(unit: metadata.header.clusterSize, uses: w.uses ?? [], expected: w.rc, report: w.report,
                          pendingReleases: w.pendingFound, copiedWrong: w.copiedWrong, unreadable: w.unreadable)
    }
}

extension Qcow2Disk: StructuredDisk {
    /// The cluster size.
    public var structureUnit: UInt64 { header.clusterSize }

    /// The regions of ``Qcow2Structure/hostRegions()`` over this disk's live metadata.
    public func hostRegions() -> [HostRegion] { Qcow2Structure(metadata: metadata).hostRegions() }

    /// ``Qcow2Structure/walk(progress:)`` over this disk's live metadata.
    public func walkStructure(progress: ((Double) -> Bool)?) throws(BlockError) -> HostUseMap {
        try Qcow2Structure(metadata: metadata).walk(progress: progress)
    }
}

extension Qcow2L2Entry {
    /// How the cluster as a whole reads, for one-line summaries: its type without extended
    /// L2; with it, normal when any subcluster is, else zero when any is, else unallocated
    /// (``Qcow2SubclusterType/invalid`` for a bitmap QEMU rejects).
    public func clusterType(extendedL2: Bool, externalData: Bool) -> Qcow2SubclusterType {
        if !extendedL2 || isCompressed { return type(subcluster: 0, extendedL2: extendedL2, externalData: externalData) }
        var zero: Qcow2SubclusterType?
        var unalloc = Qcow2SubclusterType.unallocatedPlain
        for sc in 0..<32 {
            switch type(subcluster: sc, extendedL2: true, externalData: externalData) {
            case .normal: return .normal
            case .invalid: return .invalid
            case .zeroAlloc: zero = .zeroAlloc
            case .zeroPlain: zero = zero ?? .zeroPlain
            case .unallocatedAlloc: unalloc = .unallocatedAlloc
            default: break
            }
        }
        return zero ?? unalloc
    }
}

extension Qcow2Header {
    /// Names of the set incompatible, compatible and autoclear feature bits: the image's
    /// feature name table first, QEMU's names for the bits it defines otherwise.
    public func featureNames(_ ext: Qcow2Extensions?) -> [String] {
        let known: [[Int: String]] = [
            [0: "dirty", 1: "corrupt", 2: "external data file", 3: "compression type", 4: "extended L2"],
            [0: "lazy refcounts"],
            [0: "bitmaps", 1: "raw external data"],
        ]
        var out: [String] = []
        for (type, bits) in [incompatibleFeatures, compatibleFeatures, autoclearFeatures].enumerated() {
            for bit in 0..<64 where bits & (1 << UInt64(bit)) != 0 {
                if let f = ext?.featureNames.first(where: { Int($0.type) == type && Int($0.bit) == bit }) { out.append(f.name) }
                else { out.append(known[type][bit] ?? "unknown feature bit \(bit)") }
            }
        }
        return out
    }
}

extension Qcow2Disk {
    /// ``Qcow2Structure/init(metadata:)`` over this disk's metadata, for the active view only.
    public func liveQcow2Structure() -> Qcow2Structure? {
        metadata.snapshot == nil ? Qcow2Structure(metadata: metadata) : nil
    }
}

/// What an L1 or L2 entry change stops referencing: the host range whose refcount the write
/// path then queues for release (docs/adr/0006), decoded here so views name it without
/// masking entry bits themselves.
public enum Qcow2DroppedReference {
    /// The L2 table an L1 entry change from `old` to `new` no longer points to (nil when none).
    public static func l2Table(old: UInt64, new: UInt64) -> UInt64? {
        let o = old & Qcow2Entry.offsetMask
        return o != 0 && o != new & Qcow2Entry.offsetMask ? o : nil
    }

    /// The host cluster (or a compressed cluster's first byte) an L2 entry change from `old` to
    /// `new` no longer references, with whether it was compressed; nil when none. A compressed
    /// entry needs `clusterBits` to decode (nil: not known).
    public static func data(old: UInt64, new: UInt64, clusterBits: UInt32?) -> (offset: UInt64, compressed: Bool)? {
        if old & Qcow2Entry.compressed != 0 {
            guard let clusterBits else { return nil }
            let d = Qcow2CompressedDescriptor(entry: old & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: clusterBits)
            return (d.hostOffset, true)
        }
        let o = old & Qcow2Entry.offsetMask
        guard o != 0, o != new & Qcow2Entry.offsetMask || new & Qcow2Entry.compressed != 0 else { return nil }
        return (o, false)
    }
}

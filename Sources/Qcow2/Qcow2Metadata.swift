import BlockIO
import BlockInspect
import Synchronization

/// A bounded least-recently-used cache of metadata tables keyed by host offset.
///
/// Eviction scans for the oldest entry (O(capacity) per miss); capacities are small
/// (hundreds to a few thousand tables), and a miss costs a table read anyway. Pinned
/// entries (dirty tables not yet written back) are never evicted; when every entry is
/// pinned the cache grows past its capacity until a flush unpins them.
struct TableCache<Value> {
    let capacity: Int
    private var entries: [UInt64: (value: Value, tick: UInt64)] = [:]
    /// Keys that must stay (dirty, or being written by a flush).
    var pinned: Set<UInt64> = []
    private var tick: UInt64 = 0
    /// Lookups that found the table.
    private(set) var hits: UInt64 = 0
    /// Lookups that had to load it.
    private(set) var misses: UInt64 = 0

    init(capacity: Int) { self.capacity = max(1, capacity) }

    var count: Int { entries.count }

    mutating func get(_ key: UInt64) -> Value? {
        tick += 1
        guard let e = entries[key] else { misses += 1; return nil }
        hits += 1
        entries[key] = (e.value, tick)
        return e.value
    }

    mutating func put(_ key: UInt64, _ value: Value) {
        tick += 1
        if entries[key] == nil && entries.count >= capacity,
           let oldest = Self.oldest(entries, except: pinned) {
            entries.removeValue(forKey: oldest)
        }
        entries[key] = (value, tick)
    }

    /// The least recently used key that is not pinned (one pass, no copy of the table).
    private static func oldest(_ entries: [UInt64: (value: Value, tick: UInt64)], except pinned: Set<UInt64>) -> UInt64? {
        var best: (key: UInt64, tick: UInt64)?
        for (k, e) in entries where !pinned.contains(k) && (best == nil || e.tick < best!.tick) { best = (k, e.tick) }
        return best?.key
    }

    /// Changes a cached value in place; false when the key is not cached.
    @discardableResult
    mutating func modify(_ key: UInt64, _ body: (inout Value) -> Void) -> Bool {
        guard entries[key] != nil else { return false }
        body(&entries[key]!.value)
        return true
    }

    /// The value without counting a hit or touching its age (for flush snapshots).
    func peek(_ key: UInt64) -> Value? { entries[key]?.value }

    /// Drops a key (a table that moved, e.g. after copy-on-write).
    mutating func remove(_ key: UInt64) {
        entries.removeValue(forKey: key)
        pinned.remove(key)
    }
}

/// What ``QcowMetadata``'s lock protects.
struct QcowMetadataState {
    /// The L1 table of the view being read (active, or a snapshot's), host order.
    var l1: [UInt64]
    /// L2 tables as decoded 64-bit words (2 per entry with extended L2).
    var l2Cache: TableCache<[UInt64]>
    /// The refcount table, host order.
    var refcountTable: [UInt64]
    /// Refcount blocks, raw bytes.
    var refblockCache: TableCache<[UInt8]>
    /// The write path's state (allocation, dirty tables, in-flight allocations).
    var w: QcowWriteState
}

/// The metadata of one open QCOW2 image, shared by every queue that reads it.
///
/// Holds the header, the L1 table of the view being read, a bounded LRU cache of L2 tables
/// and a cache of refcount blocks, all behind one `Mutex`. Callers resolve a guest range
/// under the lock (``mapClustersForRead(offset:length:)``) and do data I/O and
/// decompression outside it; the only I/O under the lock is loading a missing L2 table or
/// refcount block (one cluster, `pread`). See docs/adr/0002-qcow2-metadata-lock.md.
///
/// The write path (issue 5) adds `mapClusterForWrite` under the same lock: allocation,
/// L2 and refcount updates mutate this state, and dirty tables are written back by flush.
public final class QcowMetadata: Sendable {
    /// The image file (holds header and tables).
    public let file: SystemFile
    /// The validated header.
    public let header: Qcow2Header
    /// The header extensions.
    public let extensions: Qcow2Extensions
    /// The internal snapshots.
    public let snapshots: [Qcow2Snapshot]
    /// Bytes the snapshot table occupies (entries padded to 8 bytes).
    public let snapshotTableBytes: UInt64
    /// The snapshot whose view is read, when one was chosen.
    public let snapshot: Qcow2Snapshot?
    /// Host offset and entries of the L1 table in use.
    public let l1Offset: UInt64
    /// Guest size of the view (the snapshot's disk size, or the header's size).
    public let viewSize: UInt64
    /// The image file's size when it was opened.
    public let fileSize: UInt64
    /// L2 tables the cache may hold.
    public let l2CacheCapacity: Int
    /// Bumped whenever a commit or the end of a flush may unblock a request another queue
    /// deferred (a busy cluster, a flush in progress): deferred requests wait on it.
    public let changes = ChangeSignal()
    let state: Mutex<QcowMetadataState>

    /// Reads header, extensions, snapshot table, L1 and refcount table of an open image.
    ///
    /// `snapshotName` selects a snapshot's view by name or ID. `cacheEntries` bounds the L2
    /// cache; it is further limited to 64 MiB of tables.
    public init(file: SystemFile, snapshotName: String? = nil, cacheEntries: Int = 1024) throws(BlockError) {
        self.file = file
        let path = file.path
        fileSize = try file.size()
        let head = try file.readBytes(at: 0, count: Int(min(fileSize, 4096)))
        header = try Qcow2Header.parse(head, fileSize: fileSize, path: path)
        // Extensions live in the first cluster; read the rest of it only when it is larger.
        let clusterHead = header.clusterSize <= 4096 ? Array(head.prefix(Int(header.clusterSize)))
            : try file.readBytes(at: 0, count: Int(min(fileSize, header.clusterSize)))
        let ext = try Qcow2Extensions.parse(clusterHead, header: header, path: path)
        extensions = ext
        let unknown = header.incompatibleFeatures & ~Qcow2Feature.knownIncompatible
        if unknown != 0 {
            let names = (0..<64).filter { unknown & (1 << UInt64($0)) != 0 }.map { ext.featureName(type: 0, bit: $0) }
            throw BlockError(.unsupportedFeature, "qcow2: unsupported incompatible feature(s): \(names.joined(separator: ", "))", path: path, operation: "open")
        }
        if header.nbSnapshots > 0 {
            let t = try Qcow2Snapshot.readTable(file: file, offset: header.snapshotsOffset, count: header.nbSnapshots, header: header)
            snapshots = t.snapshots
            snapshotTableBytes = t.bytes
        } else {
            snapshots = []
            snapshotTableBytes = 0
        }
        var l1Entries = Int(header.l1Size)
        if let name = snapshotName {
            guard let s = snapshots.first(where: { $0.name == name }) ?? snapshots.first(where: { $0.id == name }) else {
                let known = snapshots.map(\.name).joined(separator: ", ")
                throw BlockError(.notFound, "qcow2: no snapshot named '\(name)' (snapshots: \(known.isEmpty ? "none" : known))", path: path, operation: "open")
            }
            snapshot = s
            l1Offset = s.l1TableOffset
            l1Entries = Int(s.l1Size)
            viewSize = s.diskSize ?? header.size
        } else {
            snapshot = nil
            l1Offset = header.l1TableOffset
            viewSize = header.size
        }
        let l1 = try QcowMetadata.readTable(file, at: l1Offset, entries: l1Entries)
        let rt = try QcowMetadata.readTable(file, at: header.refcountTableOffset, entries: Int(header.refcountTableBytes / 8))
        let byBytes = max(4, Int((64 << 20) >> UInt64(header.clusterBits)))
        l2CacheCapacity = max(1, min(cacheEntries, byBytes))
        let ws = QcowWriteState(header: header, fileSize: fileSize)
        state = Mutex(QcowMetadataState(l1: l1, l2Cache: TableCache(capacity: l2CacheCapacity), refcountTable: rt,
                                        refblockCache: TableCache(capacity: max(4, l2CacheCapacity / 4)), w: ws))
    }

    /// Reads `entries` big-endian 64-bit words at `offset` (bounds checked by the header).
    static func readTable(_ file: SystemFile, at offset: UInt64, entries: Int) throws(BlockError) -> [UInt64] {
        if entries == 0 { return [] }
        // Read straight into the words and swap them in place: one allocation, not a byte
        // array and a mapped copy (tables are read on every open and walk; docs/FUZZING.md).
        var words = [UInt64](repeating: 0, count: entries)
        var err: BlockError?
        words.withUnsafeMutableBufferPointer { w in
            do throws(BlockError) { _ = try file.read(into: UnsafeMutableRawBufferPointer(w), at: offset) } catch { err = error }
            for i in 0..<w.count { w[i] = UInt64(bigEndian: w[i]) }
        }
        if let err { throw err }
        return words
    }

    /// Cache statistics: (capacity, tables held, hits, misses).
    public var cacheStats: (capacity: Int, entries: Int, hits: UInt64, misses: UInt64) {
        state.withLock { s in (s.l2Cache.capacity, s.l2Cache.count, s.l2Cache.hits, s.l2Cache.misses) }
    }

    /// The L1 table of the view, copied out.
    public var l1Table: [UInt64] { state.withLock { $0.l1 } }

    /// The refcount table, copied out.
    public var refcountTable: [UInt64] { state.withLock { $0.refcountTable } }

    /// The L2 table at host offset `offset` as 64-bit words, as this process sees it now
    /// (a cached table, possibly not yet written back, or the file's copy); for the views.
    public func l2TableWords(at offset: UInt64) throws(BlockError) -> [UInt64] {
        if let t = state.withLock({ $0.l2Cache.peek(offset) }) { return t }
        return try QcowMetadata.readTable(file, at: offset, entries: Int(header.clusterSize / 8))
    }

    /// The refcount block at host offset `offset`, raw bytes, as this process sees it now
    /// (a cached block, possibly not yet written back, or the file's copy).
    public func refblockBytes(at offset: UInt64) throws(BlockError) -> [UInt8] {
        if let b = state.withLock({ $0.refblockCache.peek(offset) }) { return b }
        return try file.readBytes(at: offset, count: Int(header.clusterSize))
    }

    /// End of the host file including clusters allocated in memory, in bytes.
    public var allocatedEnd: UInt64 { state.withLock { $0.w.hostEnd } }

    func corrupt(_ m: String, host: UInt64? = nil, guest: UInt64? = nil) -> BlockError {
        BlockError(.corruptImage, "qcow2: " + m, path: file.path, guestOffset: guest, hostOffset: host, operation: "read")
    }

    /// Loads an L2 table (must be called with the lock held: takes the state inout).
    func l2Table(_ s: inout QcowMetadataState, l1Index: Int, guest: UInt64) throws(BlockError) -> [UInt64]? {
        if l1Index >= s.l1.count { return nil }
        let off = s.l1[l1Index] & Qcow2Entry.offsetMask
        if off == 0 { return nil }
        if let t = s.l2Cache.get(off) { return t }
        if off & (header.clusterSize - 1) != 0 {
            throw corrupt("L2 table offset \(hex(off)) (L1 index \(l1Index)) is not cluster-aligned", host: off, guest: guest)
        }
        if off + header.clusterSize > s.w.hostEnd {
            throw corrupt("L2 table at \(hex(off)) lies beyond the end of the file (size \(hex(s.w.hostEnd)))", host: off, guest: guest)
        }
        let t = try QcowMetadata.readTable(file, at: off, entries: Int(header.clusterSize / 8))
        s.l2Cache.put(off, t)
        return t
    }

    /// The L2 table of L1 entry `l1Index` for a whole-image scan (`map`, the structure walk):
    /// the cached copy when there is one (it may hold allocations not yet written back), else
    /// read from the file without entering the LRU cache, so a scan neither evicts the I/O
    /// path's tables nor grows memory. Nil when the L1 entry is empty; the same alignment
    /// and end-of-file checks as the I/O path.
    public func scanL2Table(l1Index: Int) throws(BlockError) -> [UInt64]? {
        let found = try state.withLock { (s) throws(BlockError) -> (UInt64, [UInt64]?)? in
            if l1Index >= s.l1.count { return nil }
            let off = s.l1[l1Index] & Qcow2Entry.offsetMask
            if off == 0 { return nil }
            if let t = s.l2Cache.peek(off) { return (off, t) }
            let guest = UInt64(l1Index) * header.l2Entries << UInt64(header.clusterBits)
            if off & (header.clusterSize - 1) != 0 {
                throw corrupt("L2 table offset \(hex(off)) (L1 index \(l1Index)) is not cluster-aligned", host: off, guest: guest)
            }
            if off + header.clusterSize > s.w.hostEnd {
                throw corrupt("L2 table at \(hex(off)) lies beyond the end of the file (size \(hex(s.w.hostEnd)))", host: off, guest: guest)
            }
            return (off, nil)
        }
        guard let (off, cached) = found else { return nil }
        if let cached { return cached }
        return try QcowMetadata.readTable(file, at: off, entries: Int(header.clusterSize / 8))
    }

    /// The L2 entry of guest cluster `cluster`, or nil when its L2 table is unallocated.
    func entry(_ s: inout QcowMetadataState, cluster: UInt64) throws(BlockError) -> Qcow2L2Entry? {
        let l2n = header.l2Entries
        guard let t = try l2Table(&s, l1Index: Int(cluster / l2n), guest: cluster << UInt64(header.clusterBits)) else { return nil }
        let i = Int(cluster % l2n)
        return header.extendedL2 ? Qcow2L2Entry(entry: t[2 * i], bitmap: t[2 * i + 1]) : Qcow2L2Entry(entry: t[i], bitmap: 0)
    }

    /// The L2 entries of guest clusters `[first, first+count)` (nil where the L2 table is absent).
    ///
    /// Used by `map` and the UI; resolves under the lock, loading tables as needed.
    public func entries(firstCluster first: UInt64, count: Int) throws(BlockError) -> [Qcow2L2Entry?] {
        try state.withLock { (s) throws(BlockError) -> [Qcow2L2Entry?] in
            var out: [Qcow2L2Entry?] = []
            out.reserveCapacity(count)
            for c in first..<(first + UInt64(count)) { out.append(try entry(&s, cluster: c)) }
            return out
        }
    }

    /// Resolves a guest range into read regions: data at a host offset, zeroes, backing,
    /// or part of a compressed cluster, split per subcluster with extended L2 and merged
    /// where contiguous.
    ///
    /// Holds the metadata lock for the lookup only (loading at most the missing L2 tables);
    /// the caller does the data I/O. Throws `corruptImage` for unaligned or out-of-file
    /// tables and clusters, and `outOfBounds` for a range past the view's end.
    public func mapClustersForRead(offset: UInt64, length: UInt64) throws(BlockError) -> [ReadMapping] {
        let (end, o) = offset.addingReportingOverflow(length)
        if o || end > viewSize {
            throw BlockError(.outOfBounds, "read of \(length) bytes at \(hex(offset)) ends past the end of the disk (size \(viewSize))", path: file.path, guestOffset: offset, operation: "read")
        }
        if length == 0 { return [] }
        return try state.withLock { (s) throws(BlockError) -> [ReadMapping] in try mapLocked(&s, offset: offset, end: end) }
    }

    /// The hot path of ``mapClustersForRead(offset:length:)``: the host offset of a read
    /// inside one cluster whose bytes are all data, or nil when the full mapping is needed.
    /// One lock, no allocation.
    public func dataHost(offset: UInt64, length: UInt64) throws(BlockError) -> UInt64? {
        let cs = header.clusterSize
        if length == 0 || (offset & (cs - 1)) + length > cs || offset + length > viewSize { return nil }
        let extData = header.hasExternalData
        return try state.withLock { (s) throws(BlockError) -> UInt64? in
            guard let e = try entry(&s, cluster: offset >> UInt64(header.clusterBits)),
                  !e.isCompressed, e.hasHostCluster(externalData: extData) else { return nil }
            let a = offset & (cs - 1)
            if header.extendedL2 {
                let scs = header.subclusterSize
                var mask: UInt64 = 0
                for sc in (a / scs)...((a + length - 1) / scs) { mask |= 1 << sc }
                if e.bitmap & mask != mask || (e.bitmap >> 32) & mask != 0 { return nil }
            } else if e.entry & Qcow2Entry.zero != 0 {
                return nil
            }
            let host = e.hostOffset
            if host & (cs - 1) != 0 || (!extData && host >= s.w.hostEnd) { return nil }   // the full path reports it
            return host + a
        }
    }

    /// Resolves `[offset, end)` into read regions with the lock held (see
    /// ``mapClustersForRead(offset:length:)``); the write path uses it for copy-on-write sources.
    func mapLocked(_ s: inout QcowMetadataState, offset: UInt64, end: UInt64) throws(BlockError) -> [ReadMapping] {
        let cb = UInt64(header.clusterBits)
        let cs = header.clusterSize
        let scs = header.subclusterSize
        let ext = header.extendedL2, extData = header.hasExternalData
        var out: [ReadMapping] = []
        var pos = offset
        while pos < end {
            let cluster = pos >> cb
            let inCluster = pos & (cs - 1)
            let clusterEnd = min(end, (cluster + 1) << cb)
            guard let e = try entry(&s, cluster: cluster) else {
                ReadMapping.append(ReadMapping(guestOffset: pos, length: clusterEnd - pos, kind: .backing), to: &out)
                pos = clusterEnd
                continue
            }
            if e.isCompressed {
                let d = Qcow2CompressedDescriptor(entry: e.entry & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: header.clusterBits)
                if extData || d.hostOffset >= s.w.hostEnd {
                    throw corrupt("compressed cluster descriptor \(hex(e.entry)) points at \(hex(d.hostOffset)), beyond the end of the file (size \(hex(s.w.hostEnd)))", host: d.hostOffset, guest: pos)
                }
                out.append(ReadMapping(guestOffset: pos, length: clusterEnd - pos, kind: .compressed(descriptor: d, offsetInCluster: Int(inCluster))))
                pos = clusterEnd
                continue
            }
            let host = e.hostOffset
            if e.hasHostCluster(externalData: extData) {
                if host & (cs - 1) != 0 {
                    throw corrupt("data cluster offset \(hex(host)) is not cluster-aligned (L2 entry \(hex(e.entry)))", host: host, guest: pos)
                }
                if !extData && host >= s.w.hostEnd {
                    throw corrupt("data cluster at \(hex(host)) lies beyond the end of the file (size \(hex(s.w.hostEnd)))", host: host, guest: pos)
                }
            }
            while pos < clusterEnd {
                let sc = Int((pos & (cs - 1)) / scs)
                let scEnd = min(clusterEnd, (pos & ~(scs - 1)) + scs)
                let t = e.type(subcluster: sc, extendedL2: ext, externalData: extData)
                let kind: ReadMapping.Kind
                switch t {
                case .normal: kind = .data(hostOffset: host + (pos & (cs - 1)))
                case .zeroPlain, .zeroAlloc: kind = .zero
                case .unallocatedPlain, .unallocatedAlloc: kind = .backing
                case .compressed, .invalid:
                    throw corrupt("L2 entry \(hex(e.entry)) has an invalid subcluster bitmap \(hex(e.bitmap))", guest: pos)
                }
                ReadMapping.append(ReadMapping(guestOffset: pos, length: scEnd - pos, kind: kind), to: &out)
                pos = scEnd
            }
        }
        return out
    }

    /// The refcount of host cluster `cluster` (0 when its refcount block is absent).
    ///
    /// Throws `corruptImage` for a refcount block that is unaligned or outside the file.
    public func refcount(ofCluster cluster: UInt64) throws(BlockError) -> UInt64 {
        try state.withLock { (s) throws(BlockError) -> UInt64 in try refcount(&s, cluster) }
    }

    /// Entries per refcount block.
    var refcountsPerBlock: UInt64 { Qcow2Refcounts.entriesPerBlock(clusterBits: header.clusterBits, refcountOrder: header.refcountOrder) }

    /// The refcount block at host offset `off` (refcount table index `ti`), loaded into the
    /// cache when missing (lock held).
    func refblock(_ s: inout QcowMetadataState, _ off: UInt64, _ ti: Int) throws(BlockError) -> [UInt8] {
        if let b = s.refblockCache.get(off) { return b }
        if off & (header.clusterSize - 1) != 0 {
            throw corrupt("refcount block offset \(hex(off)) (refcount table index \(ti)) is not cluster-aligned", host: off)
        }
        if off + header.clusterSize > s.w.hostEnd {
            throw corrupt("refcount block at \(hex(off)) lies beyond the end of the file (size \(hex(s.w.hostEnd)))", host: off)
        }
        let block = try file.readBytes(at: off, count: Int(header.clusterSize))
        s.refblockCache.put(off, block)
        return block
    }

    /// The refcount of host cluster `cluster` (lock held).
    func refcount(_ s: inout QcowMetadataState, _ cluster: UInt64) throws(BlockError) -> UInt64 {
        let perBlock = refcountsPerBlock
        let ti = Int(cluster / perBlock)
        if ti >= s.refcountTable.count { return 0 }
        let off = s.refcountTable[ti] & Qcow2Entry.offsetMask
        if off == 0 { return 0 }
        let block = try refblock(&s, off, ti)
        return Qcow2Refcounts.get(block, index: Int(cluster % perBlock), order: header.refcountOrder)
    }
}

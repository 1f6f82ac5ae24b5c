@_spi(Fuzzing) import BlockIO
import BlockInspect

/// Where the reference walk reads QCOW2 tables from: the file itself (`check`, so a repaired
/// image re-checks from disk), or an open disk's metadata (``QcowMetadata``), whose cached
/// L1, L2 tables, refcount table and refcount blocks may hold allocations a flush has not
/// written back yet (the TUI over a running job).
struct Qcow2TableReader {
    let file: SystemFile
    let live: QcowMetadata?

    /// `entries` big-endian words at `offset`, from the file.
    func table(at offset: UInt64, entries: Int) throws(BlockError) -> [UInt64] {
        try QcowMetadata.readTable(file, at: offset, entries: entries)
    }

    /// The active L1 table (the live one when there is one).
    func activeL1(_ h: Qcow2Header) throws(BlockError) -> [UInt64] {
        if let live, live.snapshot == nil { return live.l1Table }
        return try table(at: h.l1TableOffset, entries: Int(h.l1Size))
    }

    /// The refcount table (the live one when there is one).
    func refcountTable(_ h: Qcow2Header) throws(BlockError) -> [UInt64] {
        if let live { return live.refcountTable }
        return try table(at: h.refcountTableOffset, entries: Int(h.refcountTableBytes / 8))
    }

    /// The L2 table at `offset` as words.
    func l2(at offset: UInt64, clusterSize: UInt64) throws(BlockError) -> [UInt64] {
        if let live { return try live.l2TableWords(at: offset) }
        return try table(at: offset, entries: Int(clusterSize / 8))
    }

    /// The refcount block at `offset`, raw bytes.
    func refblock(at offset: UInt64, clusterSize: UInt64) throws(BlockError) -> [UInt8] {
        if let live { return try live.refblockBytes(at: offset) }
        return try file.readBytes(at: offset, count: Int(clusterSize))
    }

    /// Host file size, including clusters allocated in memory.
    func fileSize() throws(BlockError) -> UInt64 {
        max(try file.size(), live?.allocatedEnd ?? 0)
    }
}

/// The one reference walk over a QCOW2 image, as QEMU 7.2's qcow2_check_refcounts counts:
/// every structure that references a host cluster adds one to its expected refcount
/// (header, L1/L2 of the active image and of every snapshot, data and compressed clusters,
/// snapshot table, refcount table and blocks, encryption header, bitmap directory, tables
/// and data), then ``compare(fix:)`` sets the expected against the stored refcounts.
///
/// `check` runs it with problems counted into ``report``; the structure model runs the same
/// walk with ``uses`` recording what each host cluster holds (one byte per cluster; the
/// high bit marks a stored refcount that differs from the expected one). Memory: one byte
/// per host cluster for the counts (two with uses), one L2 table and one refcount block at
/// a time.
struct Qcow2ReferenceWalk {
    let metadata: QcowMetadata
    let reader: Qcow2TableReader
    let h: Qcow2Header
    let cs: UInt64
    let nb: Int
    let limit: Int
    var rc: RefcountArray
    var report = CheckReport()
    var highest = -1
    let perBlock: UInt64
    let refTable: [UInt64]
    /// Per host cluster: a ``HostRegionKind`` raw value, bit 7 set where the stored refcount
    /// differs from the expected one; nil when not recorded (`check`).
    var uses: [UInt8]?
    /// Called with the fraction done (0...1); returning false cancels the walk.
    var progress: ((Double) -> Bool)?
    /// Live walks: refcount releases queued for a later flush (cluster -> references it will
    /// drop; ``QcowMetadata/pendingReleases``). Empty for `check` of a file.
    let pending: [UInt64: UInt64]
    /// Clusters whose stored refcount is above their references by pending releases only
    /// (cluster -> how many), found by ``compare(fix:)``.
    var pendingFound: [Int: UInt64] = [:]
    /// Clusters an active L1 or L2 entry points to with an OFLAG_COPIED flag that does not
    /// match their refcount (found by ``checkCopied(fix:)`` when ``uses`` is recorded).
    var copiedWrong: Set<Int> = []
    /// The host file's length (live: including clusters allocated in memory).
    let fileLength: UInt64
    /// Structures that lie past the end of the file (QEMU's "exceeding the end of the file"):
    /// not counted, and an L2 table there is not read, so its references are unknown.
    var unreadable: [HostRegion] = []
    /// `explain`'s listener (nil for `check` and the structure model): told of each reference
    /// as it is counted, and asked whether an L2 table's content is counted at all.
    var observer: Qcow2ReferenceObserver?
    /// Who holds the reference being counted, for ``observer``: the snapshot whose tables are
    /// walked (nil: the active image), the L1 index and, inside an L2 table, the entry index.
    var referrer = Qcow2Referrer()
    /// Refcount blocks read for ``onDisk(_:)`` (bounded).
    private var blockCache = TableCache<[UInt8]>(capacity: 64)
    /// The refcount block ``onDisk(_:)`` used last (consecutive clusters share it).
    private var lastBlock: (ti: Int, bytes: [UInt8]) = (-1, [])
    /// L2 tables this walk read, when the image has snapshots: their L1 tables mostly point
    /// at the same L2 tables as the active one, which were read again for every snapshot
    /// (at most 16 MiB of tables; nil without snapshots, where each table is read once).
    private var l2Seen: TableCache<[UInt64]>?

    /// Sets up a walk of the image `metadata` belongs to; with `live`, L1, L2 tables and
    /// refcounts come from its caches first (allocations not yet flushed), else from the file.
    init(metadata: QcowMetadata, live: Bool = false, recordUses: Bool = false) throws(BlockError) {
        self.metadata = metadata
        reader = Qcow2TableReader(file: metadata.file, live: live ? metadata : nil)
        h = metadata.header
        cs = h.clusterSize
        let fileSize = try reader.fileSize()
        fileLength = fileSize
        nb = Int((fileSize + cs - 1) / cs)
        limit = nb + FuzzingLimits.qcow2CheckClustersPastEnd
        rc = RefcountArray(clusters: nb, order: h.refcountOrder)
        perBlock = Qcow2Refcounts.entriesPerBlock(clusterBits: h.clusterBits, refcountOrder: h.refcountOrder)
        refTable = try reader.refcountTable(h)
        report.totalClusters = (h.size + cs - 1) / cs
        if recordUses { uses = [UInt8](repeating: 0, count: nb) }
        pending = live ? metadata.pendingReleases : [:]
        if !metadata.snapshots.isEmpty { l2Seen = TableCache(capacity: max(4, Int((16 << 20) / cs))) }
    }

    /// The image path, for errors.
    var path: String { metadata.file.path }

    /// Counts a corruption (or with `leak`, a leak) and adds its line to the report; the line
    /// is built only when it is kept (``FuzzingLimits/qcow2CheckMessages``, unbounded but in
    /// the fuzz targets).
    mutating func problem(_ m: @autoclosure () -> String, leak: Bool = false) {
        if leak { report.leaks += 1 } else { report.corruptions += 1 }
        message(m())
    }

    /// Adds a line to the report's messages unless ``FuzzingLimits/qcow2CheckMessages`` lines
    /// are there already (the caller counts the problem); builds it only then.
    mutating func message(_ m: @autoclosure () -> String) {
        if report.messages.count < FuzzingLimits.qcow2CheckMessages { report.messages.append(m()) }
    }

    /// Adds one reference to each cluster of a structure (QEMU's qcow2_inc_refcounts_imrt). A
    /// range that ends a cluster or more past the end of the file is one corruption and counts
    /// nothing, as QEMU 7.2 does; it is recorded in ``unreadable``. Returns whether it counted.
    @discardableResult
    mutating func inc(_ offset: UInt64, _ length: UInt64, _ kind: HostRegionKind) -> Bool {
        if length > 0 {
            let (end, wrapped) = offset.addingReportingOverflow(length)
            if !wrapped, end > fileLength, end - fileLength >= cs {
                problem("ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset \(hex(offset)) size \(hex(length))")
                if uses != nil && unreadable.count < 4096 {
                    unreadable.append(HostRegion(kind: .unreadable, offset: offset, length: length,
                                                 label: "\(kind.name) at \(hex(offset)) lies beyond the end of the file (size \(hex(fileLength)))"))
                }
                return false
            }
        }
        let r = rc.add(offset: offset, length: length, clusterBits: h.clusterBits, limit: limit)
        observer?.counted(offset: offset, length: length, kind: kind, by: referrer)
        for _ in 0..<r.overflows { problem("ERROR: overflow cluster offset=\(hex(offset))") }
        for _ in 0..<r.pastLimit { problem("ERROR: cluster at \(hex(offset)) lies far beyond the end of the file") }
        if uses != nil, length > 0 {
            let (first, last) = qcow2ClusterSpan(offset, length, clusterBits: h.clusterBits)
            var c = first
            while c <= last && c < limit {
                if c >= uses!.count { uses! += [UInt8](repeating: 0, count: c + 1 - uses!.count) }
                if uses![c] == 0 || kind.isMetadata { uses![c] = kind.rawValue }
                c += 1
            }
        }
        return true
    }

    func cancelled(_ fraction: Double) -> Bool {
        if let progress, !progress(fraction) { return true }
        return false
    }

    /// Builds the in-memory refcounts (QEMU's calculate_refcounts).
    mutating func calculate() throws(BlockError) {
        inc(0, cs, .qcowHeader)
        let l1 = try reader.activeL1(h)
        let snaps = metadata.snapshots
        // A v3 entry must carry the guest size (16 bytes of extra data); qemu-img check counts
        // each one without it as a corruption (found by qcow2-write: such an image was "clean").
        for (i, s) in snaps.enumerated() where h.version >= 3 && s.diskSize == nil {
            problem("ERROR snapshot table entry \(i) is incomplete")
        }
        var tables = l1.reduce(0) { $0 + ($1 & Qcow2Entry.offsetMask != 0 ? 1 : 0) }
        var done = 0
        var snapL1s: [[UInt64]] = []
        for s in snaps {
            let t = try reader.table(at: s.l1TableOffset, entries: Int(s.l1Size))
            tables += t.reduce(0) { $0 + ($1 & Qcow2Entry.offsetMask != 0 ? 1 : 0) }
            snapL1s.append(t)
        }
        try checkL1(l1, offset: h.l1TableOffset, active: true, kind: .l1Table, done: &done, of: tables)
        for (si, (s, t)) in zip(snaps, snapL1s).enumerated() {
            referrer.snapshot = si
            try checkL1(t, offset: s.l1TableOffset, active: false, kind: .snapshotL1Table, done: &done, of: tables)
        }
        referrer = Qcow2Referrer()
        inc(h.snapshotsOffset, metadata.snapshotTableBytes, .snapshotTable)
        inc(h.refcountTableOffset, h.refcountTableBytes, .refcountTable)
        if let e = metadata.extensions.encryption { inc(e.offset, e.length, .encryptionHeader) }
        // Without the autoclear bit the bitmaps are stale and QEMU ignores the extension (its
        // clusters are leaks); a writer that does not keep bitmaps clears the bit, as blockscope does.
        let bitmaps = h.autoclearFeatures & Qcow2Feature.bitmaps != 0 ? metadata.extensions.bitmaps : nil
        if let b = bitmaps, b.count > 0, b.directorySize > Qcow2BitmapsExtension.maxDirectorySize {
            // QEMU refuses such an image at open; counting its clusters would mark up to a
            // million clusters past the end of the file (found by qcow2-read: minutes per check).
            problem("ERROR bitmap directory size \(b.directorySize) exceeds the maximum supported size (\(Qcow2BitmapsExtension.maxDirectorySize))")
        } else if let b = bitmaps, b.count > 0 {
            inc(b.directoryOffset, b.directorySize, .bitmapDirectory)
            let dirEnd = b.directoryOffset.addingReportingOverflow(b.directorySize)
            if b.directorySize <= 64 << 20, !dirEnd.overflow, dirEnd.partialValue <= metadata.fileSize {
                let dir = try metadata.file.readBytes(at: b.directoryOffset, count: Int(b.directorySize))
                for bm in (try? Qcow2Bitmap.parseDirectory(dir, count: b.count, path: path)) ?? [] {
                    inc(bm.tableOffset, UInt64(bm.tableSize) * 8, .bitmapTable)
                    let tableEnd = bm.tableOffset.addingReportingOverflow(UInt64(bm.tableSize) * 8)
                    if UInt64(bm.tableSize) * 8 <= 64 << 20, !tableEnd.overflow, tableEnd.partialValue <= metadata.fileSize {
                        let t = try reader.table(at: bm.tableOffset, entries: Int(bm.tableSize))
                        for e in t where e & Qcow2Entry.offsetMask != 0 { inc(e & Qcow2Entry.offsetMask, cs, .bitmapData) }
                    }
                }
            }
        }
        // Refcount blocks (QEMU's check_refblocks).
        for (i, e) in refTable.enumerated() {
            let off = e & Qcow2Entry.offsetMask
            if off & (cs - 1) != 0 { problem("ERROR refcount block \(i) is not cluster aligned; refcount table entry corrupted"); continue }
            if off >> UInt64(h.clusterBits) >= UInt64(nb) { problem("ERROR refcount block \(i) is outside image"); continue }
            if off != 0 {
                inc(off, cs, .refcountBlock)
                let c = Int(off / cs)
                let r = c < rc.count ? rc[c] : 1   // a local: the message may not read self
                if r != 1 { problem("ERROR refcount block \(i) refcount=\(r)") }
            }
        }
    }

    /// Marks an L1 table, its L2 tables and their clusters as used (QEMU's check_refcounts_l1/l2).
    mutating func checkL1(_ l1: [UInt64], offset: UInt64, active: Bool, kind: HostRegionKind, done: inout Int, of total: Int) throws(BlockError) {
        inc(offset, UInt64(l1.count) * 8, kind)
        for (l1i, e) in l1.enumerated() {
            let l2off = e & Qcow2Entry.offsetMask
            if l2off == 0 { continue }
            referrer.l1Index = l1i
            defer { referrer.l1Index = nil }
            let inFile = inc(l2off, cs, .l2Table)
            if l2off & (cs - 1) != 0 { problem("ERROR l2_offset=\(hex(l2off)): Table is not cluster aligned; L1 entry corrupted") }
            // QEMU reads such a table as zeroes (no references); it is not read here at all.
            if !inFile { done += 1; continue }
            let t = try l2Table(at: l2off)
            if let observer, !observer.countsL2(t, at: l2off, by: referrer) { done += 1; continue }
            checkL2(t, active: active)
            done += 1
            if done & 63 == 0, cancelled(0.8 * Double(done) / Double(max(1, total))) {
                throw BlockError(.cancelled, "reference walk cancelled", path: path)
            }
        }
    }

    /// The L2 table at `offset`: from ``l2Seen`` when an earlier L1 table of this walk
    /// pointed at it, else read (and kept when there are snapshots).
    mutating func l2Table(at offset: UInt64) throws(BlockError) -> [UInt64] {
        if let t = l2Seen?.get(offset) { return t }
        let t = try reader.l2(at: offset, clusterSize: cs)
        l2Seen?.put(offset, t)
        return t
    }

    mutating func checkL2(_ t: [UInt64], active: Bool) {
        var next: UInt64 = 0
        let ext = h.extendedL2, extData = h.hasExternalData
        for i in 0..<Int(h.l2Entries) {
            if !ext && t[i] == 0 { continue }   // unallocated: nothing to count or check
            let e = ext ? Qcow2L2Entry(entry: t[2 * i], bitmap: t[2 * i + 1]) : Qcow2L2Entry(entry: t[i], bitmap: 0)
            if e.isCompressed {
                if e.entry & Qcow2Entry.copied != 0 { problem("ERROR: coffset=\(hex(e.entry & ~(3 << 62))): copied flag must never be set for compressed clusters") }
                if extData { problem("ERROR compressed cluster \(i) with data file, entry=\(hex(e.entry))"); continue }
                if e.bitmap != 0 { problem("ERROR compressed cluster \(i) with non-zero subcluster allocation bitmap, entry=\(hex(e.entry))"); continue }
                let d = Qcow2CompressedDescriptor(entry: e.entry & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: h.clusterBits)
                if observer != nil { referrer.l2Index = i }
                inc(d.hostOffset, UInt64(d.length), .compressed)
                referrer.l2Index = nil
                if active { report.allocatedClusters += 1; report.compressedClusters += 1; report.fragmentedClusters += 1 }
                continue
            }
            let zeroFlag = !ext && e.entry & Qcow2Entry.zero != 0
            if e.hasHostCluster(externalData: extData) {
                let off = e.hostOffset
                if (e.bitmap >> 32) & e.bitmap & Qcow2Entry.allAllocated != 0 { problem("ERROR offset=\(hex(off)): Allocated cluster has corrupted subcluster allocation bitmap") }
                if off & (cs - 1) != 0 { problem("ERROR offset=\(hex(off)): Data cluster is not properly aligned; L2 entry corrupted.") }
                if active {
                    report.allocatedClusters += 1
                    if next != 0 && off != next { report.fragmentedClusters += 1 }
                    next = off + cs
                }
                if !extData {
                    if observer != nil { referrer.l2Index = i; referrer.zero = zeroFlag || (ext && e.bitmap & Qcow2Entry.allAllocated == 0) }
                    inc(off, cs, .data)
                    referrer.l2Index = nil
                    referrer.zero = false
                } else if let observer {
                    // Data in the external data file: no host cluster here, still guest data.
                    referrer.l2Index = i
                    referrer.zero = zeroFlag || (ext && e.bitmap & Qcow2Entry.allAllocated == 0)
                    observer.counted(offset: off, length: 0, kind: .data, by: referrer)
                    referrer.l2Index = nil
                    referrer.zero = false
                }
            } else if !zeroFlag && e.bitmap & Qcow2Entry.allAllocated != 0 {
                problem("ERROR: Unallocated cluster has non-zero subcluster allocation map")
            }
        }
    }

    /// The on-disk refcount of cluster `i` (nil when its refcount block cannot be read);
    /// blocks come through a small cache.
    mutating func onDisk(_ i: Int) throws(BlockError) -> UInt64? {
        let ti = Int(UInt64(i) / perBlock)
        if ti >= refTable.count { return 0 }
        let off = refTable[ti] & Qcow2Entry.offsetMask
        if off == 0 { return 0 }
        if off & (cs - 1) != 0 { return nil }
        if lastBlock.ti != ti {
            if let b = blockCache.get(off) { lastBlock = (ti, b) } else {
                let b = try reader.refblock(at: off, clusterSize: cs)
                blockCache.put(off, b)
                lastBlock = (ti, b)
            }
        }
        return Qcow2Refcounts.get(lastBlock.bytes, index: Int(UInt64(i) % perBlock), order: h.refcountOrder)
    }

    /// The refcount the metadata implies for cluster `i` (what a repair would write).
    func computed(_ i: Int) -> UInt64 { rc[i] }

    /// Records what a repair would do, in a check without repair (at most 64 lines).
    mutating func preview(_ m: @autoclosure () -> String) {
        if report.repairActions.count < 64 { report.repairActions.append("would " + m()) }
        else if report.repairActions.count == 64 { report.repairActions.append("... (more)") }
    }
}

/// The first and last cluster index of host bytes `offset..<offset + length` (`length` > 0).
/// A damaged entry's range may run past 2^64 (the walk reports it as a corruption): it is
/// taken to end at 2^64-1, so the walk and its observers never trap on it.
func qcow2ClusterSpan(_ offset: UInt64, _ length: UInt64, clusterBits: UInt32) -> (first: Int, last: Int) {
    let (lastByte, wrapped) = offset.addingReportingOverflow(length - 1)
    return (Int(offset >> UInt64(clusterBits)), Int((wrapped ? UInt64.max : lastByte) >> UInt64(clusterBits)))
}

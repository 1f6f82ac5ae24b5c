import BlockIO
import BlockInspect
import CURing
#if canImport(Glibc)
import Glibc
#endif

/// Host-cluster allocation and refcount updates (QEMU's qcow2-refcount.c, the parts the
/// write path needs). Every function here runs with the metadata lock held and takes the
/// state `inout`; nothing here writes to the file except refcount-table growth, which is
/// rare and synchronous (see docs/adr/0006-qcow2-write-ordering.md).
extension QcowMetadata {
    /// The cluster size as a shift.
    var cb: UInt64 { UInt64(header.clusterBits) }

    /// Builds the set of metadata clusters, clears autoclear bits blockscope does not
    /// maintain, and makes the state ready for writes. Called once by a writable open.
    ///
    /// `backingSize` is the guest size of the backing image (0 without one): copy-on-write
    /// past it fills zeroes, which a fresh cluster already holds. `backingData` tells events
    /// where the backing chain holds data (called only when events are published).
    public func prepareForWriting(backingSize: UInt64 = 0, backingData: (@Sendable () -> BackingAllocation?)? = nil) throws(BlockError) {
        try state.withLock { (s) throws(BlockError) in
            if s.w.prepared { return }
            s.w.backingSize = backingSize
            s.w.backingData = backingData
            var m = Set<UInt64>()
            let cs = header.clusterSize
            func add(_ off: UInt64, _ bytes: UInt64) {
                if bytes == 0 { return }
                var c = off >> cb
                while c <= (off + bytes - 1) >> cb { m.insert(c); c += 1 }
            }
            add(0, cs)
            add(header.l1TableOffset, UInt64(header.l1Size) * 8)
            add(header.refcountTableOffset, header.refcountTableBytes)
            for e in s.refcountTable where e & Qcow2Entry.offsetMask != 0 { add(e & Qcow2Entry.offsetMask, cs) }
            let activeL1 = snapshot == nil ? s.l1 : try QcowMetadata.readTable(file, at: header.l1TableOffset, entries: Int(header.l1Size))
            for e in activeL1 where e & Qcow2Entry.offsetMask != 0 { add(e & Qcow2Entry.offsetMask, cs) }
            if header.nbSnapshots > 0 { add(header.snapshotsOffset, max(snapshotTableBytes, 1)) }
            for snap in snapshots { add(snap.l1TableOffset, UInt64(snap.l1Size) * 8) }
            s.w.metadataClusters = m
            // Autoclear bits describe structures blockscope does not update (persistent
            // bitmaps): a writer that does not maintain them clears them, as the spec says.
            let keep = header.autoclearFeatures & Qcow2Feature.rawExternalData
            if header.version == 3 && header.autoclearFeatures != keep {
                try writeHeaderField(at: 88, value: keep, width: 8)
            }
            s.w.prepared = true
        }
    }

    /// Writes one big-endian header field synchronously (metadata: small and rare).
    func writeHeaderField(at offset: UInt64, value: UInt64, width: Int) throws(BlockError) {
        var b = [UInt8](repeating: 0, count: width)
        storeBE(value, into: &b, at: 0, width: width)
        try file.writeBytes(b, at: offset)
    }

    /// Changes the refcount of host cluster `cluster` by `delta` in memory and marks its
    /// block dirty, creating the block (and growing the table) when it does not exist.
    func changeRefcount(_ s: inout QcowMetadataState, _ cluster: UInt64, by delta: Int64,
                        events: inout [IoEventPayload]?) throws(BlockError) {
        let perBlock = refcountsPerBlock
        let ti = Int(cluster / perBlock)
        if ti >= s.refcountTable.count {
            if delta < 0 { throw corrupt("refcount of host cluster \(cluster) would drop below zero (no refcount block)", host: cluster << cb) }
            try growRefcountTable(&s, toCover: ti, events: &events)
        }
        var off = s.refcountTable[ti] & Qcow2Entry.offsetMask
        if off == 0 {
            if delta < 0 { throw corrupt("refcount of host cluster \(cluster) would drop below zero (no refcount block)", host: cluster << cb) }
            off = try allocateRefblock(&s, ti, events: &events)
        }
        let index = Int(cluster % perBlock)
        let order = header.refcountOrder
        var old: UInt64 = 0
        do { let b = try refblock(&s, off, ti); old = Qcow2Refcounts.get(b, index: index, order: order) }
        let (new, bad): (UInt64, Bool) = delta >= 0
            ? { let r = old.addingReportingOverflow(UInt64(delta)); return (r.0, r.1 || r.0 > Qcow2Refcounts.maxValue(order: order)) }()
            : (old &- UInt64(-delta), old < UInt64(-delta))
        if bad {
            throw corrupt(delta >= 0 ? "refcount of host cluster \(cluster) would exceed the \(header.refcountBits)-bit maximum"
                                     : "refcount of host cluster \(cluster) would drop below zero (it is \(old))", host: cluster << cb)
        }
        s.refblockCache.modify(off) { Qcow2Refcounts.set(&$0, index: index, order: order, value: new) }
        s.refblockCache.pinned.insert(off)
        s.w.dirtyRefblocks.insert(off)
        events?.append(.tableUpdate(table: .refcount, index: cluster, old: old, new: new))
    }

    /// The first free host cluster at or after the cursor (refcount 0, not metadata), with
    /// room for `count` contiguous clusters; does not move the cursor.
    func findFree(_ s: inout QcowMetadataState, count: Int) throws(BlockError) -> UInt64 {
        var start = s.w.cursor
        var run = 0
        var c = start
        // Clusters past the end of the file are checked too: a refcount block may still
        // count one (a leak QEMU's check does not report), and taking it would give it
        // refcount 2. Past the last refcount block `refcount` is 0 at once.
        while run < count {
            if try refcount(&s, c) == 0 && !s.w.metadataClusters.contains(c) {
                if run == 0 { start = c }
                run += 1
            } else {
                run = 0
            }
            c += 1
        }
        return start
    }

    /// Allocates `count` contiguous host clusters (refcount 0 -> 1) and returns the host
    /// offset of the first. The cursor moves past them and never moves back.
    func allocateClusters(_ s: inout QcowMetadataState, count: Int = 1, events: inout [IoEventPayload]?) throws(BlockError) -> UInt64 {
        let start = try findFree(&s, count: count)
        s.w.cursor = start + UInt64(count)
        s.w.hostEnd = max(s.w.hostEnd, (start + UInt64(count)) << cb)
        try extendFile(&s)
        for k in start..<(start + UInt64(count)) { try changeRefcount(&s, k, by: 1, events: &events) }
        return start << cb
    }

    /// Keeps the file's size ahead of the allocated end, in steps of 1/8 of the file (at
    /// least 16 MiB, at most 1 GiB), so data writes to new clusters never extend the file:
    /// an extending O_DIRECT write is serialised by the filesystem (ext4 and XFS take the
    /// inode lock and complete it synchronously), which halved fresh-cluster write rates.
    /// The tail past the allocated end is a hole; a clean close truncates it away.
    func extendFile(_ s: inout QcowMetadataState) throws(BlockError) {
        if s.w.hostEnd <= s.w.fileEnd { return }
        let step = min(max(UInt64(16 << 20), s.w.fileEnd / 8), UInt64(1 << 30))
        let target = (s.w.hostEnd + step + header.clusterSize - 1) & ~(header.clusterSize - 1)
        // Allocate the blocks too (unwritten extents) where the filesystem can: a write into
        // an unwritten extent only converts it, one into a hole also allocates.
        if bs_fallocate(file.fd, 0, Int64(s.w.fileEnd), Int64(target - s.w.fileEnd)) != 0 {
            try file.truncate(to: target)
        }
        s.w.fileEnd = target
    }

    /// Creates the refcount block for table index `ti`: its cluster comes from the cursor,
    /// its content is zeroes (dirty, pinned), and its own refcount is counted (possibly in itself).
    func allocateRefblock(_ s: inout QcowMetadataState, _ ti: Int, events: inout [IoEventPayload]?) throws(BlockError) -> UInt64 {
        let c = try findFree(&s, count: 1)
        s.w.cursor = c + 1
        s.w.hostEnd = max(s.w.hostEnd, (c + 1) << cb)
        try extendFile(&s)
        let off = c << cb
        s.refblockCache.put(off, [UInt8](repeating: 0, count: Int(header.clusterSize)))
        s.refblockCache.pinned.insert(off)
        s.w.dirtyRefblocks.insert(off)
        s.w.metadataClusters.insert(c)
        let old = s.refcountTable[ti]
        s.refcountTable[ti] = off
        s.w.dirtyRefTable.insert(ti)
        events?.append(.tableUpdate(table: .refcountTable, index: UInt64(ti), old: old, new: off))
        try changeRefcount(&s, c, by: 1, events: &events)
        return off
    }

    /// Moves the refcount table to a larger place at the allocation cursor (rare: the
    /// table covers `entries * clusterSize * 8 / refcountBits` clusters).
    ///
    /// Synchronous and ordered with datasyncs: every dirty refcount block is written, then the
    /// new table, then the header points at it; the old table is released by a later flush.
    func growRefcountTable(_ s: inout QcowMetadataState, toCover ti: Int, events: inout [IoEventPayload]?) throws(BlockError) {
        let cs = header.clusterSize
        let perCluster = Int(cs / 8)
        let wanted = max(ti + 1, s.refcountTable.count * 2)
        let clusters = (wanted + perCluster - 1) / perCluster
        if UInt64(clusters) * cs > Qcow2Header.maxRefcountTableBytes {
            throw BlockError(.overflow, "qcow2: the refcount table would grow past QEMU's limit of \(Qcow2Header.maxRefcountTableBytes) bytes", path: file.path, operation: "write")
        }
        let oldOffset = s.w.refcountTableOffset, oldClusters = s.w.refcountTableClusters
        let start = try findFree(&s, count: clusters)
        s.w.cursor = start + UInt64(clusters)
        s.w.hostEnd = max(s.w.hostEnd, (start + UInt64(clusters)) << cb)
        try extendFile(&s)
        s.refcountTable += [UInt64](repeating: 0, count: clusters * perCluster - s.refcountTable.count)
        for k in start..<(start + UInt64(clusters)) {
            s.w.metadataClusters.insert(k)
            try changeRefcount(&s, k, by: 1, events: &events)
        }
        // Everything the new table points at goes to disk first.
        for off in s.w.dirtyRefblocks {
            if let b = s.refblockCache.peek(off) { try file.writeBytes(b, at: off) }
        }
        var bytes = [UInt8](repeating: 0, count: clusters * Int(cs))
        for (i, e) in s.refcountTable.enumerated() { storeBE(e, into: &bytes, at: i * 8, width: 8) }
        let newOffset = start << cb
        try file.writeBytes(bytes, at: newOffset)
        try file.sync(dataOnly: true)
        var hdr = [UInt8](repeating: 0, count: 12)
        storeBE(newOffset, into: &hdr, at: 0, width: 8)
        storeBE(UInt64(clusters), into: &hdr, at: 8, width: 4)
        try file.writeBytes(hdr, at: 48)
        try file.sync(dataOnly: true)
        events?.append(.tableUpdate(table: .header, index: 48, old: oldOffset, new: newOffset))
        s.w.refcountTableOffset = newOffset
        s.w.refcountTableClusters = UInt32(clusters)
        s.w.dirtyRefTable.removeAll()
        var c = oldOffset >> cb
        while c < (oldOffset >> cb) + UInt64(oldClusters) { s.w.metadataClusters.remove(c); c += 1 }
        s.w.pendingFrees.append(QcowPendingFree(offset: oldOffset, length: UInt64(oldClusters) << cb, safeAfter: 0))
    }

    /// Makes the L2 table of L1 index `l1i` writable by this image alone and returns its
    /// host offset: a missing table is allocated (zeroes), a table shared with a snapshot
    /// (no COPIED flag in L1) is copied to a new cluster. The L1 entry changes in memory.
    func writableL2(_ s: inout QcowMetadataState, _ l1i: Int, events: inout [IoEventPayload]?) throws(BlockError) -> UInt64 {
        let e1 = s.l1[l1i]
        let off = e1 & Qcow2Entry.offsetMask
        if off != 0 && e1 & Qcow2Entry.copied != 0 { return off }
        let words = Int(header.clusterSize / 8)
        var table = [UInt64](repeating: 0, count: words)
        if off != 0 {
            if let t = try l2Table(&s, l1Index: l1i, guest: UInt64(l1i) * header.l2Entries << cb) { table = t }
            s.w.pendingFrees.append(QcowPendingFree(offset: off, length: header.clusterSize, safeAfter: s.w.flushSeq + 1))
        }
        let n = try allocateClusters(&s, events: &events)
        s.l2Cache.put(n, table)
        s.l2Cache.pinned.insert(n)
        s.w.dirtyL2.insert(n)
        s.w.metadataClusters.insert(n >> cb)
        if off != 0 { s.l2Cache.remove(off) }
        s.l1[l1i] = n | Qcow2Entry.copied
        s.w.dirtyL1.insert(l1i)
        events?.append(.tableUpdate(table: .l1, index: UInt64(l1i), old: e1, new: s.l1[l1i]))
        return n
    }

    /// Sets the L2 entry (and bitmap) of guest cluster `cluster` in a writable table.
    func setEntry(_ s: inout QcowMetadataState, cluster: UInt64, _ e: Qcow2L2Entry, events: inout [IoEventPayload]?) throws(BlockError) {
        let l2n = header.l2Entries
        let l1i = Int(cluster / l2n)
        let off = try writableL2(&s, l1i, events: &events)
        if s.l2Cache.peek(off) == nil { _ = try l2Table(&s, l1Index: l1i, guest: cluster << cb) }
        let i = Int(cluster % l2n)
        let ext = header.extendedL2
        var old: UInt64 = 0
        s.l2Cache.modify(off) { t in
            if ext {
                old = t[2 * i]
                t[2 * i] = e.entry
                t[2 * i + 1] = e.bitmap
            } else {
                old = t[i]
                t[i] = e.entry
            }
        }
        s.l2Cache.pinned.insert(off)
        s.w.dirtyL2.insert(off)
        events?.append(.tableUpdate(table: .l2, index: cluster % l2n, old: old, new: e.entry))
    }

    /// Releases a host range's refcounts once a flush has made the change stable.
    func deferFree(_ s: inout QcowMetadataState, offset: UInt64, length: UInt64) {
        if length == 0 || header.hasExternalData && offset == 0 { return }
        s.w.pendingFrees.append(QcowPendingFree(offset: offset, length: length, safeAfter: s.w.flushSeq + 1))
    }

    /// Refuses a data write whose host range overlaps metadata, marking the image corrupt
    /// as QEMU does (the corrupt bit is written before the error is returned).
    func checkOverlap(_ s: inout QcowMetadataState, host: UInt64, length: UInt64, guest: UInt64) throws(BlockError) {
        if header.hasExternalData || length == 0 { return }
        var c = host >> cb
        let last = (host + length - 1) >> cb
        while c <= last {
            if s.w.metadataClusters.contains(c) {
                try markCorrupt(&s)
                throw BlockError(.corruptImage, "qcow2: a data write to host \(hex(host))+\(length) (guest \(hex(guest))) would overwrite metadata in host cluster \(hex(c << cb)); the image is now marked corrupt (repair with qemu-img check -r all)",
                                 path: file.path, guestOffset: guest, hostOffset: c << cb, operation: "write")
            }
            c += 1
        }
    }

    /// Sets the corrupt bit on disk (v3) and refuses further writes.
    func markCorrupt(_ s: inout QcowMetadataState) throws(BlockError) {
        if s.w.incompatible & Qcow2Feature.corrupt != 0 { return }
        s.w.incompatible |= Qcow2Feature.corrupt
        if header.version == 3 {
            try writeHeaderField(at: 72, value: s.w.incompatible, width: 8)
            try file.sync(dataOnly: true)
        }
    }

}

/// `check` for QCOW2, counting as QEMU 7.2's qcow2_check_refcounts does: rebuild the
/// refcounts every metadata structure implies (header, L1/L2 of the active image and of every
/// snapshot, data and compressed clusters, snapshot table, refcount table and blocks,
/// encryption header, bitmaps), compare them cluster by cluster with the on-disk refcounts
/// (lower on disk: corruption; higher: leak), then check OFLAG_COPIED on the active L1/L2.
///
/// Reads every table directly from the file (no caches), so a repaired image re-checks
/// from disk. Repair (`-r leaks|all`, needs a writable open) rewrites refcount entries in
/// existing refcount blocks and COPIED flags; a refcount that would need a new refcount
/// block is reported as a check error ("need to rebuild refcount structures").
extension Qcow2Disk {
    /// Checks the image; with `repair`, fixes leaks (and with `.all`, corruptions) and then
    /// re-checks, as `qemu-img check -r` does.
    public func check(repair: RepairMode?) throws(BlockError) -> CheckReport {
        if repair != nil && !isWritable {
            throw BlockError(.readOnly, "repair needs a writable open; give --write", path: path, operation: "check")
        }
        var first = try runCheck(fix: repair)
        guard repair != nil else {
            if header.isDirty && !first.repairActions.isEmpty {
                first.repairActions.insert("the image is dirty (lazy refcounts): refcounts on disk are stale until repaired", at: 0)
            }
            return first
        }
        var final = first
        if first.leaksFixed + first.corruptionsFixed > 0 {
            final = try runCheck(fix: nil)
            final.leaksFixed = first.leaksFixed
            final.corruptionsFixed = first.corruptionsFixed
            final.repairActions = first.repairActions
        }
        if final.corruptions == 0 && final.checkErrors == 0 && (header.isDirty || header.isCorrupt) && header.version == 3 {
            let bits = header.incompatibleFeatures & ~(Qcow2Feature.dirty | Qcow2Feature.corrupt)
            var b = [UInt8](repeating: 0, count: 8)
            storeBE(bits, into: &b, at: 0, width: 8)
            try file.writeBytes(b, at: 72)
            try file.sync(dataOnly: true)
            final.repairActions.append("cleared the dirty/corrupt bits")
        }
        first = final
        return first
    }

    /// One pass of the check (see the type's comment).
    func runCheck(fix: RepairMode?) throws(BlockError) -> CheckReport {
        var ctx = try CheckContext(disk: self)
        try ctx.calculate()
        try ctx.compare(fix: fix)
        try ctx.checkCopied(fix: fix == .all)
        ctx.report.imageEndOffset = UInt64(ctx.highest + 1) * header.clusterSize
        return ctx.report
    }
}

/// State of one check pass.
struct CheckContext {
    let disk: Qcow2Disk
    let h: Qcow2Header
    let cs: UInt64
    let nb: Int
    let limit: Int
    var rc: RefcountArray
    var report = CheckReport()
    var highest = -1
    var blocks: [Int: [UInt8]] = [:]
    var dirtyBlocks: Set<Int> = []
    let perBlock: UInt64
    let refTable: [UInt64]

    init(disk: Qcow2Disk) throws(BlockError) {
        self.disk = disk
        h = disk.header
        cs = h.clusterSize
        let fileSize = try disk.file.size()
        nb = Int((fileSize + cs - 1) / cs)
        limit = nb + (1 << 20)
        rc = RefcountArray(clusters: nb, order: h.refcountOrder)
        perBlock = Qcow2Refcounts.entriesPerBlock(clusterBits: h.clusterBits, refcountOrder: h.refcountOrder)
        refTable = try QcowMetadata.readTable(disk.file, at: h.refcountTableOffset, entries: Int(h.refcountTableBytes / 8))
        report.totalClusters = (h.size + cs - 1) / cs
    }

    mutating func problem(_ m: String, leak: Bool = false) {
        if leak { report.leaks += 1 } else { report.corruptions += 1 }
        report.messages.append(m)
    }

    mutating func inc(_ offset: UInt64, _ length: UInt64) {
        let r = rc.add(offset: offset, length: length, clusterBits: h.clusterBits, limit: limit)
        for _ in 0..<r.overflows { problem("ERROR: overflow cluster offset=\(hex(offset))") }
        for _ in 0..<r.pastLimit { problem("ERROR: cluster at \(hex(offset)) lies far beyond the end of the file") }
    }

    /// Builds the in-memory refcounts (QEMU's calculate_refcounts).
    mutating func calculate() throws(BlockError) {
        inc(0, cs)
        try checkL1(offset: h.l1TableOffset, size: Int(h.l1Size), active: true)
        for s in disk.metadata.snapshots {
            try checkL1(offset: s.l1TableOffset, size: Int(s.l1Size), active: false)
        }
        inc(h.snapshotsOffset, disk.metadata.snapshotTableBytes)
        inc(h.refcountTableOffset, h.refcountTableBytes)
        if let e = disk.metadata.extensions.encryption { inc(e.offset, e.length) }
        if let b = disk.metadata.extensions.bitmaps, b.count > 0, b.directorySize > Qcow2BitmapsExtension.maxDirectorySize {
            // QEMU refuses such an image at open; counting its clusters would mark up to a
            // million clusters past the end of the file.
            problem("ERROR bitmap directory size \(b.directorySize) exceeds the maximum supported size (\(Qcow2BitmapsExtension.maxDirectorySize))")
        } else if let b = disk.metadata.extensions.bitmaps, b.count > 0 {
            inc(b.directoryOffset, b.directorySize)
            let dirEnd = b.directoryOffset.addingReportingOverflow(b.directorySize)
            if !dirEnd.overflow && dirEnd.partialValue <= disk.metadata.fileSize {
                let dir = try disk.file.readBytes(at: b.directoryOffset, count: Int(b.directorySize))
                for bm in (try? Qcow2Bitmap.parseDirectory(dir, count: b.count, path: disk.path)) ?? [] {
                    inc(bm.tableOffset, UInt64(bm.tableSize) * 8)
                    let tableEnd = bm.tableOffset.addingReportingOverflow(UInt64(bm.tableSize) * 8)
                    if UInt64(bm.tableSize) * 8 <= 64 << 20, !tableEnd.overflow, tableEnd.partialValue <= disk.metadata.fileSize {
                        let t = try QcowMetadata.readTable(disk.file, at: bm.tableOffset, entries: Int(bm.tableSize))
                        for e in t where e & Qcow2Entry.offsetMask != 0 { inc(e & Qcow2Entry.offsetMask, cs) }
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
                inc(off, cs)
                let c = Int(off / cs)
                if c < rc.counts.count && rc.counts[c] != 1 { problem("ERROR refcount block \(i) refcount=\(rc.counts[c])") }
            }
        }
    }

    /// Marks an L1 table, its L2 tables and their clusters as used (QEMU's check_refcounts_l1/l2).
    mutating func checkL1(offset: UInt64, size: Int, active: Bool) throws(BlockError) {
        inc(offset, UInt64(size) * 8)
        let l1 = try QcowMetadata.readTable(disk.file, at: offset, entries: size)
        for e in l1 {
            let l2off = e & Qcow2Entry.offsetMask
            if l2off == 0 { continue }
            inc(l2off, cs)
            if l2off & (cs - 1) != 0 { problem("ERROR l2_offset=\(hex(l2off)): Table is not cluster aligned; L1 entry corrupted") }
            let t = try QcowMetadata.readTable(disk.file, at: l2off, entries: Int(cs / 8))
            try checkL2(t, active: active)
        }
    }

    mutating func checkL2(_ t: [UInt64], active: Bool) throws(BlockError) {
        var next: UInt64 = 0
        let ext = h.extendedL2, extData = h.hasExternalData
        for i in 0..<Int(h.l2Entries) {
            let e = ext ? Qcow2L2Entry(entry: t[2 * i], bitmap: t[2 * i + 1]) : Qcow2L2Entry(entry: t[i], bitmap: 0)
            if e.isCompressed {
                if e.entry & Qcow2Entry.copied != 0 { problem("ERROR: coffset=\(hex(e.entry & ~(3 << 62))): copied flag must never be set for compressed clusters") }
                if extData { problem("ERROR compressed cluster \(i) with data file, entry=\(hex(e.entry))"); continue }
                if e.bitmap != 0 { problem("ERROR compressed cluster \(i) with non-zero subcluster allocation bitmap, entry=\(hex(e.entry))"); continue }
                let d = Qcow2CompressedDescriptor(entry: e.entry & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: h.clusterBits)
                inc(d.hostOffset, UInt64(d.length))
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
                if !extData { inc(off, cs) }
            } else if !zeroFlag && e.bitmap & Qcow2Entry.allAllocated != 0 {
                problem("ERROR: Unallocated cluster has non-zero subcluster allocation map")
            }
        }
    }

    /// The on-disk refcount of cluster `i` (nil when its refcount block cannot be read).
    mutating func onDisk(_ i: Int) throws(BlockError) -> UInt64? {
        let ti = Int(UInt64(i) / perBlock)
        if ti >= refTable.count { return 0 }
        let off = refTable[ti] & Qcow2Entry.offsetMask
        if off == 0 { return 0 }
        if off & (cs - 1) != 0 { return nil }
        if blocks[ti] == nil { blocks[ti] = try disk.file.readBytes(at: off, count: Int(cs)) }
        return Qcow2Refcounts.get(blocks[ti]!, index: Int(UInt64(i) % perBlock), order: h.refcountOrder)
    }

    /// Compares computed and on-disk refcounts (QEMU's compare_refcounts), repairing as allowed.
    mutating func compare(fix: RepairMode?) throws(BlockError) {
        let n = max(nb, rc.counts.count)
        var lastUnreadable = -1
        for i in 0..<n {
            guard let r1 = try onDisk(i) else {
                // One error per cluster inside the file, as QEMU counts them; past its end one
                // per refcount block (found by qcow2-read: 466,945 messages for a 100 KiB file).
                let ti = Int(UInt64(i) / perBlock)
                if i < nb || ti != lastUnreadable {
                    report.checkErrors += 1
                    report.messages.append("Can't get refcount for cluster \(i): refcount block is not cluster aligned")
                }
                lastUnreadable = ti
                continue
            }
            let r2 = i < rc.counts.count ? rc.counts[i] : 0
            if r1 > 0 || r2 > 0 { highest = i }
            if r1 == r2 { continue }
            let canFix = (r1 > r2 && fix != nil) || (r1 < r2 && fix == .all)
            if canFix, setOnDisk(i, r2) {
                if r1 > r2 { report.leaksFixed += 1 } else { report.corruptionsFixed += 1 }
                report.repairActions.append("Repairing cluster \(i) refcount=\(r1) reference=\(r2)")
                continue
            }
            if canFix && r1 < r2 {
                report.checkErrors += 1
                report.messages.append("ERROR need to rebuild refcount structures (cluster \(i) has no refcount block)")
                continue
            }
            problem("\(r1 < r2 ? "ERROR" : "Leaked") cluster \(i) refcount=\(r1) reference=\(r2)", leak: r1 > r2)
            if fix == nil { preview("set the refcount of cluster \(i) from \(r1) to \(r2) (-r \(r1 > r2 ? "leaks" : "all"))") }
        }
        for ti in dirtyBlocks {
            try disk.file.writeBytes(blocks[ti]!, at: refTable[ti] & Qcow2Entry.offsetMask)
        }
        if !dirtyBlocks.isEmpty { try disk.file.sync(dataOnly: true) }
    }

    /// The refcount the metadata implies for cluster `i` (what a repair would write).
    func computed(_ i: Int) -> UInt64 { i < rc.counts.count ? rc.counts[i] : 0 }

    /// Records what a repair would do, in a check without repair (at most 64 lines).
    mutating func preview(_ m: String) {
        if report.repairActions.count < 64 { report.repairActions.append("would " + m) }
        else if report.repairActions.count == 64 { report.repairActions.append("... (more)") }
    }

    /// Sets cluster `i`'s on-disk refcount in its (loaded) block; false when it has no block.
    mutating func setOnDisk(_ i: Int, _ v: UInt64) -> Bool {
        let ti = Int(UInt64(i) / perBlock)
        guard ti < refTable.count, refTable[ti] & Qcow2Entry.offsetMask != 0, blocks[ti] != nil else { return false }
        Qcow2Refcounts.set(&blocks[ti]!, index: Int(UInt64(i) % perBlock), order: h.refcountOrder, value: v)
        dirtyBlocks.insert(ti)
        return true
    }

    /// OFLAG_COPIED must be set exactly when the refcount is 1 (QEMU's check_oflag_copied).
    mutating func checkCopied(fix: Bool) throws(BlockError) {
        let l1 = try QcowMetadata.readTable(disk.file, at: h.l1TableOffset, entries: Int(h.l1Size))
        let ext = h.extendedL2, extData = h.hasExternalData
        let step = ext ? 2 : 1
        for (i, l1e) in l1.enumerated() {
            let l2off = l1e & Qcow2Entry.offsetMask
            if l2off == 0 { continue }
            guard let r = try onDisk(Int(l2off / cs)) else { continue }
            if (r == 1) != (l1e & Qcow2Entry.copied != 0) {
                if fix {
                    let v = r == 1 ? l1e | Qcow2Entry.copied : l1e & ~Qcow2Entry.copied
                    var b = [UInt8](repeating: 0, count: 8)
                    storeBE(v, into: &b, at: 0, width: 8)
                    try disk.file.writeBytes(b, at: h.l1TableOffset + UInt64(i) * 8)
                    report.corruptionsFixed += 1
                    report.repairActions.append("Repairing OFLAG_COPIED L2 cluster: l1_index=\(i) l1_entry=\(String(l1e, radix: 16)) refcount=\(r)")
                } else {
                    problem("ERROR OFLAG_COPIED L2 cluster: l1_index=\(i) l1_entry=\(String(l1e, radix: 16)) refcount=\(r)")
                    if computed(Int(l2off / cs)) == r { preview("\(r == 1 ? "set" : "clear") OFLAG_COPIED on L1 entry \(i) (-r all)") }
                }
            }
            var t = try QcowMetadata.readTable(disk.file, at: l2off, entries: Int(cs / 8))
            var dirty = false
            for j in 0..<Int(h.l2Entries) {
                let e = Qcow2L2Entry(entry: t[j * step], bitmap: ext ? t[j * step + 1] : 0)
                if e.isCompressed || !e.hasHostCluster(externalData: extData) { continue }
                let rr: UInt64
                if extData { rr = 1 } else { guard let x = try onDisk(Int(e.hostOffset / cs)) else { continue }; rr = x }
                if (rr == 1) != (e.entry & Qcow2Entry.copied != 0) {
                    if fix {
                        t[j * step] = rr == 1 ? e.entry | Qcow2Entry.copied : e.entry & ~Qcow2Entry.copied
                        dirty = true
                        report.corruptionsFixed += 1
                        report.repairActions.append("Repairing OFLAG_COPIED data cluster: l2_entry=\(String(e.entry, radix: 16)) refcount=\(rr)")
                    } else {
                        problem("ERROR OFLAG_COPIED data cluster: l2_entry=\(String(e.entry, radix: 16)) refcount=\(rr)")
                        if extData || computed(Int(e.hostOffset / cs)) == rr {
                            preview("\(rr == 1 ? "set" : "clear") OFLAG_COPIED on the L2 entry of host cluster \(hex(e.hostOffset)) (-r all)")
                        }
                    }
                }
            }
            if dirty {
                var b = [UInt8](repeating: 0, count: Int(cs))
                for (k, v) in t.enumerated() { storeBE(v, into: &b, at: k * 8, width: 8) }
                try disk.file.writeBytes(b, at: l2off)
            }
        }
        if fix { try disk.file.sync(dataOnly: true) }
    }
}

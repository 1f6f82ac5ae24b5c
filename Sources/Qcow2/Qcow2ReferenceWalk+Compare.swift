import BlockIO
import BlockInspect

extension Qcow2ReferenceWalk {
    /// Compares computed and on-disk refcounts (QEMU's compare_refcounts), repairing as
    /// allowed; on a live walk a surplus that queued releases account for is counted in
    /// ``CheckReport/releasesPending``, not as a leak. Repairs one refcount block at a time (each read once, written back once if repaired).
    /// With ``uses``, marks each differing cluster (bit 7) and unreferenced clusters with a
    /// refcount as ``HostRegionKind/leaked``.
    mutating func compare(fix: RepairMode?) throws(BlockError) {
        let n = max(nb, rc.count)
        let per = Int(perBlock)
        var anyWritten = false
        var i = 0
        while i < n {
            let ti = i / per
            let end = min(n, (ti + 1) * per)
            let off = ti < refTable.count ? refTable[ti] & Qcow2Entry.offsetMask : 0
            if off & (cs - 1) != 0 {
                // One error per cluster inside the file, as QEMU counts them; past its end one per
                // refcount block (found by qcow2-read: 466,945 messages for a 100 KiB file).
                for j in i..<end where j < nb || j == i {
                    report.checkErrors += 1
                    message("Can't get refcount for cluster \(j): refcount block is not cluster aligned")
                }
                i = end
                continue
            }
            var block: [UInt8]? = off == 0 ? nil : try reader.refblock(at: off, clusterSize: cs)
            var dirty = false
            for j in i..<end {
                let r1 = block.map { Qcow2Refcounts.get($0, index: j - ti * per, order: h.refcountOrder) } ?? 0
                let r2 = rc[j]
                if r1 > 0 || r2 > 0 { highest = j }
                if r1 == r2 { continue }
                observer?.mismatched(cluster: j, stored: r1, expected: r2)
                if r1 > r2, let p = pending[UInt64(j)], r1 - r2 <= p {
                    // A release ADR 0006 defers to a later flush: the stored refcount is high on
                    // purpose until then (on disk, qemu-img counts it as a leak).
                    report.releasesPending += 1
                    pendingFound[j] = r1 - r2
                    continue
                }
                if uses != nil, j < uses!.count {
                    if r2 == 0 && uses![j] & 0x7f == 0 { uses![j] = HostRegionKind.leaked.rawValue }
                    uses![j] |= 0x80
                }
                let canFix = (r1 > r2 && fix != nil) || (r1 < r2 && fix == .all)
                if canFix, block != nil {
                    Qcow2Refcounts.set(&block!, index: j - ti * per, order: h.refcountOrder, value: r2)
                    dirty = true
                    if r1 > r2 { report.leaksFixed += 1 } else { report.corruptionsFixed += 1 }
                    report.repairActions.append("Repairing cluster \(j) refcount=\(r1) reference=\(r2)")
                    continue
                }
                if canFix && r1 < r2 {
                    report.checkErrors += 1
                    message("ERROR need to rebuild refcount structures (cluster \(j) has no refcount block)")
                    continue
                }
                problem("\(r1 < r2 ? "ERROR" : "Leaked") cluster \(j) refcount=\(r1) reference=\(r2)", leak: r1 > r2)
                if fix == nil { preview("set the refcount of cluster \(j) from \(r1) to \(r2) (-r \(r1 > r2 ? "leaks" : "all"))") }
            }
            if dirty, let block {
                try metadata.file.writeBytes(block, at: off)
                anyWritten = true
            }
            i = end
            if ti & 63 == 0, cancelled(0.8 + 0.1 * Double(i) / Double(max(1, n))) {
                throw BlockError(.cancelled, "reference walk cancelled", path: path)
            }
        }
        if anyWritten { try metadata.file.sync(dataOnly: true) }
    }
}

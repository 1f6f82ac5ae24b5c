import BlockIO
import BlockInspect

/// `check` for QCOW2, counting as QEMU 7.2's qcow2_check_refcounts does: rebuild the
/// refcounts every metadata structure implies (header, L1/L2 of the active image and of every
/// snapshot, data and compressed clusters, snapshot table, refcount table and blocks,
/// encryption header, bitmaps), compare them cluster by cluster with the on-disk refcounts
/// (lower on disk: corruption; higher: leak), then check OFLAG_COPIED on the active L1/L2.
///
/// The counting is Qcow2ReferenceWalk's, shared with the structure model; check runs it over
/// the file (no caches), so a repaired image re-checks from disk. Repair (`-r leaks|all`, needs a writable open) rewrites refcount entries in
/// existing refcount blocks and COPIED flags; a refcount that would need a new refcount
/// block is reported as a check error ("need to rebuild refcount structures").
extension Qcow2Disk {
    /// Checks the image; with `repair`, fixes leaks (and with `.all`, corruptions) and then
    /// re-checks, as `qemu-img check -r` does.
    public func check(repair: RepairMode?) throws(BlockError) -> CheckReport {
        if repair != nil && !isWritable {
            throw BlockError(.readOnly, "repair needs a writable open", path: path, operation: "check")
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

    /// One pass of the check (see the type's comment): the shared reference walk over the
    /// file, compared with the stored refcounts, then the COPIED flags.
    func runCheck(fix: RepairMode?) throws(BlockError) -> CheckReport {
        var walk = try Qcow2ReferenceWalk(metadata: metadata)
        try walk.calculate()
        try walk.compare(fix: fix)
        try walk.checkCopied(fix: fix == .all)
        walk.report.imageEndOffset = UInt64(walk.highest + 1) * header.clusterSize
        return walk.report
    }
}

extension Qcow2ReferenceWalk {
    /// OFLAG_COPIED must be set exactly when the refcount is 1 (QEMU's check_oflag_copied):
    /// one corruption per active L1 or L2 entry whose flag disagrees, as qemu-img counts.
    /// Reads the tables through ``reader`` (live caches on a live walk, where a refcount
    /// lowered by a pending release counts as already lowered); with ``uses``, records each
    /// such entry's cluster in ``copiedWrong``. `fix` rewrites the flags in the file.
    mutating func checkCopied(fix: Bool) throws(BlockError) {
        let l1 = try reader.activeL1(h)
        let ext = h.extendedL2, extData = h.hasExternalData
        let step = ext ? 2 : 1
        for (i, l1e) in l1.enumerated() {
            let l2off = l1e & Qcow2Entry.offsetMask
            if l2off == 0 { continue }
            if i & 63 == 0, cancelled(0.9 + 0.1 * Double(i) / Double(max(1, l1.count))) {
                throw BlockError(.cancelled, "reference walk cancelled", path: path)
            }
            guard let stored = try onDisk(Int(l2off / cs)) else { continue }
            let r = effective(Int(l2off / cs), stored)
            if (r == 1) != (l1e & Qcow2Entry.copied != 0) {
                if fix {
                    let v = r == 1 ? l1e | Qcow2Entry.copied : l1e & ~Qcow2Entry.copied
                    var b = [UInt8](repeating: 0, count: 8)
                    storeBE(v, into: &b, at: 0, width: 8)
                    try metadata.file.writeBytes(b, at: h.l1TableOffset + UInt64(i) * 8)
                    report.corruptionsFixed += 1
                    report.repairActions.append("Repairing OFLAG_COPIED L2 cluster: l1_index=\(i) l1_entry=\(String(l1e, radix: 16)) refcount=\(r)")
                } else {
                    problem("ERROR OFLAG_COPIED L2 cluster: l1_index=\(i) l1_entry=\(String(l1e, radix: 16)) refcount=\(r)")
                    if uses != nil { copiedWrong.insert(Int(l2off / cs)) }
                    if computed(Int(l2off / cs)) == r { preview("\(r == 1 ? "set" : "clear") OFLAG_COPIED on L1 entry \(i) (-r all)") }
                }
            }
            let (l2End, wrapped) = l2off.addingReportingOverflow(cs)
            if wrapped || (l2End > fileLength && l2End - fileLength >= cs) { continue }   // past the end: not read (see inc)
            var t = try reader.l2(at: l2off, clusterSize: cs)
            if t.count < Int(h.l2Entries) * step { continue }
            var dirty = false
            for j in 0..<Int(h.l2Entries) {
                if t[j * step] == 0 { continue }   // unallocated: no COPIED flag to check
                let e = Qcow2L2Entry(entry: t[j * step], bitmap: ext ? t[j * step + 1] : 0)
                if e.isCompressed || !e.hasHostCluster(externalData: extData) { continue }
                let rr: UInt64
                if extData { rr = 1 } else { guard let x = try onDisk(Int(e.hostOffset / cs)) else { continue }; rr = effective(Int(e.hostOffset / cs), x) }
                if (rr == 1) != (e.entry & Qcow2Entry.copied != 0) {
                    if fix {
                        t[j * step] = rr == 1 ? e.entry | Qcow2Entry.copied : e.entry & ~Qcow2Entry.copied
                        dirty = true
                        report.corruptionsFixed += 1
                        report.repairActions.append("Repairing OFLAG_COPIED data cluster: l2_entry=\(String(e.entry, radix: 16)) refcount=\(rr)")
                    } else {
                        problem("ERROR OFLAG_COPIED data cluster: l2_entry=\(String(e.entry, radix: 16)) refcount=\(rr)")
                        if uses != nil, !extData { copiedWrong.insert(Int(e.hostOffset / cs)) }
                        if extData || computed(Int(e.hostOffset / cs)) == rr {
                            preview("\(rr == 1 ? "set" : "clear") OFLAG_COPIED on the L2 entry of host cluster \(hex(e.hostOffset)) (-r all)")
                        }
                    }
                }
            }
            if dirty {
                var b = [UInt8](repeating: 0, count: Int(cs))
                for (k, v) in t.enumerated() { storeBE(v, into: &b, at: k * 8, width: 8) }
                try metadata.file.writeBytes(b, at: l2off)
            }
        }
        if fix { try metadata.file.sync(dataOnly: true) }
    }

    /// The refcount of cluster `i` once the releases queued for it are applied (the stored
    /// one on a walk of a file).
    func effective(_ i: Int, _ stored: UInt64) -> UInt64 {
        guard let p = pending[UInt64(i)] else { return stored }
        return stored > p ? stored - p : 0
    }
}

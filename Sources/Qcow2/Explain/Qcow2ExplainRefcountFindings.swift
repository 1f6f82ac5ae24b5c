import BlockIO
import BlockInspect

extension Qcow2ExplainContext {
    /// The refcount table and blocks judged by content: table entries that are not aligned
    /// or lie outside the file, and blocks that hold no refcounts. A bad block is one finding
    /// that accounts for every refcount mismatch in the host range it counts for.
    mutating func refcountStructureFindings() -> [ExplainFinding] {
        var out: [ExplainFinding] = []
        let table = metadata.refcountTable
        let per = Int(Qcow2Refcounts.entriesPerBlock(clusterBits: h.clusterBits, refcountOrder: h.refcountOrder))
        var badEntries = 0, used = 0
        for (ti, e) in table.enumerated() {
            let off = e & Qcow2Entry.offsetMask
            if e == 0 { continue }
            used += 1
            if off & (cs - 1) != 0 || off >= fileSize || e & ~Qcow2Entry.offsetMask != 0 { badEntries += 1; continue }
            let first = ti * per, end = min(max(nb, uses.count), (ti + 1) * per)
            guard off != 0, first < end else { continue }
            // Judged against the walk: a block most of whose non-zero counts (stored or
            // expected) disagree with the references found, and whose content does not read as
            // refcounts (a zero block reads as none), is not the block it should be. Healthy
            // counts may be large (compressed clusters share a host cluster), so the content
            // test alone would not do; many leaks alone would not either.
            var mismatches = 0, live = 0
            for c in first..<end where c < uses.count {
                if uses[c] & 0x80 != 0 { mismatches += 1 }
                if uses[c] & 0x80 != 0 || expected[c] > 0 { live += 1 }
            }
            // Sub-byte widths hold any pattern, so only a near-total disagreement counts there.
            let majority = h.refcountOrder >= 3 ? mismatches * 2 > live : mismatches * 10 >= live * 9
            guard mismatches > 0, majority, let bytes = try? metadata.file.readBytes(at: off, count: Int(cs)),
                  Qcow2ContentClassifier.isZero(bytes) || !classifier.looksLikeRefcounts(bytes) else { continue }
            for c in first..<end { explain(c) }
            let looks = classifier.looksLike(bytes)
            let range = ExplainRange(UInt64(first) * cs, UInt64(end - first) * cs)
            let text = "The refcount block at \(hex(off)) (refcount table entry \(ti)) holds \(looks == .zeroes ? "only zeroes" : (looks == .l2Table ? "L2 entries" : "guest data")), not refcounts. It counts for host \(range.text); all \(mismatches) refcount errors and leaks `check` reports there come from it. The allocator reads these counts: it may hand out clusters that are in use, overwriting live data. `check -r all` rewrites the block from the references it finds, which is the right repair here."
            out.append(ExplainFinding(.metadataOverwritten, host: [ExplainRange(off, cs), range], looksLike: looks, clusters: UInt64(mismatches), text: text))
        }
        if badEntries > 0 {
            let bytes = (try? metadata.file.readBytes(at: h.refcountTableOffset, count: Int(cs))) ?? []
            let looks: ExplainLooksLike? = badEntries * 10 >= used ? classifier.looksLike(bytes) : nil
            let text = "The refcount table at \(hex(h.refcountTableOffset)) has \(badEntries) of \(used) entries that are not cluster-aligned offsets inside the file\(looks.map { $0 == .guestData ? ": it looks overwritten with guest data" : ": it looks like a \($0.rawValue)" } ?? ""). The clusters those entries count for have no readable refcounts, so the allocator cannot tell what is free. `check -r all` cannot rebuild refcount structures (\"need to rebuild\"): convert the image to a new file."
            out.append(ExplainFinding(.metadataOverwritten, host: [ExplainRange(h.refcountTableOffset, h.refcountTableBytes)], looksLike: looks, clusters: UInt64(badEntries), text: text))
        }
        return out
    }

    /// Runs of referenced clusters whose stored refcount is below (one finding) or above
    /// (another) their references, apart from those a finding already explains.
    func refcountRunFindings() -> [ExplainFinding] {
        var out: [ExplainFinding] = []
        func clusters(_ runs: [Qcow2ExplainObserver.Run]) -> [Int] {
            var cl: [Int] = []
            for r in runs { for c in r.first..<(r.first + r.count) where !isExplained(c) { cl.append(c) } }
            return cl
        }
        let low = clusters(obs.tooLow)
        if !low.isEmpty {
            let runs = hostRanges(low)
            let text = "Referenced clusters have a refcount below their references: " + runsText(runs, clusters: low.count) + (obs.maxStoredLow == 0 ? ", stored refcount 0" : "") + ". The allocator treats them as free (or as unshared) and may hand them out for new data or copy-on-write skipped, overwriting what the guest or a snapshot still reads. `check -r all` raises each refcount to its references; no data is lost by that."
            out.append(ExplainFinding(.refcountTooLow, host: runs, clusters: UInt64(low.count), text: text + dirtyNote))
        }
        let high = clusters(obs.tooHigh)
        if !high.isEmpty {
            let runs = hostRanges(high)
            let text = "Referenced clusters have a refcount above their references: " + runsText(runs, clusters: high.count) + ". Harmless to data (the clusters just stay allocated longer than needed, and writes copy first); `check -r leaks` lowers them, as qemu-img counts them among the leaks."
            out.append(ExplainFinding(.refcountTooHigh, host: runs, clusters: UInt64(high.count), text: text + dirtyNote))
        }
        return out
    }

    /// For a dirty image (lazy refcounts), why its refcounts disagree.
    var dirtyNote: String {
        h.isDirty ? " The image is marked dirty (lazy refcounts): its refcounts on disk are stale by design until QEMU repairs them at the next writable open, so this is expected after a crash, not damage." : ""
    }

    /// Clusters outside the refcount table that hold refcount-block bytes: leaked ones (read
    /// by ``classifyLeaked()``) and refcount-0 ones, inside the used part or past it (read
    /// here, at most 4,096).
    mutating func strandedRefcountBlockFindings() -> [ExplainFinding] {
        var leaked: [Int] = [], unused: [Int] = []
        for (c, l) in leakedLooks where l == .refcountBlock && !isExplained(c) { leaked.append(c); explain(c) }
        var scanned = 0
        var c = 0
        while c < min(nb, uses.count) && scanned < 4096 {
            if isFree(c) && !isExplained(c) {
                scanned += 1
                let classifier = classifier
                if withCluster(c, { classifier.looksLikeRefcounts($0) }) == true { unused.append(c); explain(c) }
            }
            c += 1
        }
        let all = leaked + unused
        guard !all.isEmpty else { return [] }
        let runs = hostRanges(all)
        let text = "\(all.count) cluster\(all.count == 1 ? "" : "s") outside the refcount table still hold refcount-block bytes (\(leaked.count) leaked, with a refcount; \(unused.count) with refcount 0): " + runsText(runs, clusters: all.count) + ". Refcount blocks were relocated and the old clusters dropped without being reused, as in cloud-hypervisor #8597; the file grows with each. No guest data is affected. `check -r leaks` frees the leaked ones; the unused ones are already free and reused by the next allocation, or given back by a convert."
        return [ExplainFinding(.strandedRefcountBlock, host: runs, looksLike: .refcountBlock, clusters: UInt64(all.count), text: text)]
    }

    /// The leaked clusters no other finding explains, as runs; with the guest windows whose
    /// L2 table maps nothing at all (an erased table leaves exactly this: cloud-hypervisor #8624).
    func leakedFindings() -> [ExplainFinding] {
        var cl: [Int] = []
        for c in 0..<min(nb, uses.count) where isLeaked(c) && !isExplained(c) { cl.append(c) }
        guard !cl.isEmpty else { return [] }
        let runs = hostRanges(cl)
        var looksCount: [ExplainLooksLike: Int] = [:]
        for c in cl { if let l = leakedLooks[c] { looksCount[l, default: 0] += 1 } }
        let looks = looksCount.max { $0.value < $1.value }?.key
        let windows = obs.emptyTables.filter { !isExplained(Int($0.offset / cs)) }.compactMap { $0.referrer.l1Index.map { guestWindow($0) } }
        var text = "Leaked: " + runsText(runs, clusters: cl.count) + " have a refcount but nothing references them (\(UInt64(cl.count) * cs) bytes)"
        if let looks { text += "; by content they look like \(looks.rawValue)" }
        text += ". "
        if !windows.isEmpty {
            text += "\(windows.count) guest window\(windows.count == 1 ? "" : "s") (listed) \(windows.count == 1 ? "has an L2 table" : "have L2 tables") that map nothing at all: if the guest had data there, an erased table (cloud-hypervisor #8624) would leave exactly these leaks, and they hold that data. "
        }
        text += "No guest data reads through them. `check -r leaks` sets their refcounts to 0 so the space is reused (the file does not shrink)."
        if reads >= Self.maxReads { text += " (Content was read for the first \(Self.maxReads) clusters only.)" }
        return [ExplainFinding(.leakedCluster, host: runs, guest: mergedRanges(windows), looksLike: looks, clusters: UInt64(cl.count), text: text)]
    }
}

import BlockIO
import BlockInspect

extension Qcow2ExplainContext {
    /// All findings, most harmful first: overwritten tables, double references, orphaned L2
    /// tables, then refcount runs, stranded refcount blocks and the remaining leaks.
    mutating func findings() -> [ExplainFinding] {
        var out: [ExplainFinding] = []
        out += l1Findings()
        let badStart = out.count
        out += badTableFindings()
        let badEnd = out.count
        out += refcountStructureFindings()
        out += doubleReferenceFindings()
        classifyLeaked()
        out += bitmapFindings()
        out += orphanedL2Findings()
        let stranded = strandedRefcountBlockFindings()
        for k in badStart..<badEnd { attributeAdjacentLeaks(to: &out[k]) }
        let erased = erasedTableFindings()
        if badEnd - badStart == 1 { attributeLeaks(to: &out[badStart]) }
        out += erased
        out += refcountRunFindings()
        out += stranded
        out += leakedFindings()
        return out
    }

    /// The active L1 table, judged by its entries: offsets cluster-aligned, inside the file,
    /// reserved bits clear.
    mutating func l1Findings() -> [ExplainFinding] {
        let l1 = structure.l1
        var bad = 0, used = 0
        for e in l1 where e != 0 {
            used += 1
            let off = e & Qcow2Entry.offsetMask
            if e & 0x7f00_0000_0000_01ff != 0 || off & (cs - 1) != 0 || off >= fileSize { bad += 1 }
        }
        guard bad > 0, bad * 10 >= used else { return [] }
        let bytes = (try? metadata.file.readBytes(at: h.l1TableOffset, count: Int(min(cs, UInt64(l1.count) * 8)))) ?? []
        let looks = classifier.looksLike(bytes)
        let text = "The L1 table at \(hex(h.l1TableOffset)) (\(l1.count) entries) holds \(bad) entries of \(used) that no QCOW2 writer produces: its content \(looks == .guestData ? "looks like guest data" : "looks like a \(looks.rawValue)"), not an L1 table. The whole guest disk is mapped through it, so guest reads return garbage or fail. `check -r all` cannot rebuild an L1 table; restore it from a copy or a snapshot's L1 table."
        return [ExplainFinding(.metadataOverwritten, host: [ExplainRange(h.l1TableOffset, UInt64(l1.count) * 8)], guest: [ExplainRange(0, h.size)],
                               looksLike: looks, clusters: 1, text: text)]
    }

    /// One finding per L2 table whose content is not an L2 table (left out of the counting by
    /// the observer, so its garbage adds no references).
    mutating func badTableFindings() -> [ExplainFinding] {
        var out: [ExplainFinding] = []
        for t in obs.badTables {
            explain(Int(t.offset / cs))
            let g = t.referrer.l1Index.map { guestWindow($0) }
            let looks = t.looksLike == .refcountBlock ? "refcount-block bytes (small big-endian counts)" : "guest data"
            var text = "The L2 table at \(hex(t.offset))"
            if let i = t.referrer.l1Index, let g { text += " (L1 index \(i) of \(view(t.referrer.snapshot)), guest \(g.text))" }
            text += " holds \(looks), not L2 entries (\(t.invalidEntries) of its entries are invalid). "
            text += "The guest window it mapped has lost its mapping: reads there return wrong data or fail, and the data clusters it pointed to are no longer referenced (they show as leaks). "
            text += "`check -r all` cannot rebuild the table; `-r leaks` would free the orphaned data clusters for reuse and lose that data for good. Copy the window's data out of the leaked clusters (host ranges here) before any repair."
            out.append(ExplainFinding(.metadataOverwritten, host: [ExplainRange(t.offset, cs)], guest: g.map { [$0] } ?? [],
                                      looksLike: t.looksLike, clusters: 0, text: text))
        }
        return out
    }

    /// Whether leaked cluster `c` may be orphaned guest data (not read, or read as data).
    func dataLike(_ c: Int) -> Bool {
        let look = leakedLooks[c]
        return look == nil || look == .guestData || look == .zeroes
    }

    /// Hands an overwritten L2 table the run of leaked data clusters that starts right after
    /// it: QEMU allocates a new table and then the data clusters of the write that needed it,
    /// so that run most likely is the window's data.
    mutating func attributeAdjacentLeaks(to f: inout ExplainFinding) {
        guard let table = f.host.first else { return }
        var c = Int(table.offset / cs) + 1
        var orphans: [Int] = []
        while c < nb && isLeaked(c) && !isExplained(c) && dataLike(c) && orphans.count < Int(h.l2Entries) {
            orphans.append(c); explain(c); c += 1
        }
        add(orphans, to: &f)
    }

    /// An L2 table the active L1 points to that holds only zeroes, followed by a run of leaked
    /// data clusters: the table was erased after its data was written (cloud-hypervisor #8624,
    /// a stale punch-hole over a cluster reused as an L2 table). `check` sees only the leaks.
    mutating func erasedTableFindings() -> [ExplainFinding] {
        var out: [ExplainFinding] = []
        for t in obs.emptyTables {
            let c = Int(t.offset / cs)
            guard !isExplained(c), let i = t.referrer.l1Index else { continue }
            let g = guestWindow(i)
            var f = ExplainFinding(.metadataOverwritten, host: [ExplainRange(t.offset, cs)], guest: [g], looksLike: .zeroes, clusters: 0,
                                   text: "The L2 table at \(hex(t.offset)) (L1 index \(i), guest \(g.text)) holds only zeroes, so the window reads as zeroes (or the backing file), yet leaked data clusters follow it: the table was most likely erased after its data was written, as a stale punch-hole did in cloud-hypervisor #8624. `check` reports only the leaks; `-r leaks` would free the window's data for good. The data can be recovered from the leaked clusters (host ranges here) or from a snapshot.")
            attributeAdjacentLeaks(to: &f)
            guard f.clusters > 0 else { continue }
            explain(c)
            out.append(f)
        }
        return out
    }

    /// Hands the leaked clusters no other finding explains, and that look like guest data, to
    /// the one overwritten L2 table (its orphaned data): their count and runs.
    mutating func attributeLeaks(to f: inout ExplainFinding) {
        var orphans: [Int] = []
        for c in 0..<min(nb, uses.count) where isLeaked(c) && !isExplained(c) && dataLike(c) { orphans.append(c); explain(c) }
        add(orphans, to: &f)
    }

    /// Adds `orphans` (leaked data clusters) to an overwritten table's finding.
    func add(_ orphans: [Int], to f: inout ExplainFinding) {
        guard !orphans.isEmpty else { return }
        let all = hostRanges(orphans) + f.host.dropFirst()
        let runs = mergedRanges(all)
        f.host = Array(([f.host[0]] + runs).prefix(ExplainFinding.maxRanges))
        f.clusters += UInt64(orphans.count)
        if let i = f.text.range(of: " The leaked data that is most likely this window's: ") { f.text = String(f.text[..<i.lowerBound]) }
        f.text += " The leaked data that is most likely this window's: " + runsText(runs, clusters: Int(f.clusters)) + "."
    }

    /// Reads the leaked clusters no finding has explained yet (bounded) and records what each
    /// looks like.
    mutating func classifyLeaked() {
        for c in 0..<min(nb, uses.count) where isLeaked(c) && !isExplained(c) {
            guard let b = read(c) else { break }
            leakedLooks[c] = classifier.looksLike(b)
        }
    }

    /// One finding per leaked cluster that holds a valid L2 table: how many data clusters it
    /// maps, whether they are intact (leaked with it), reused (referenced again) or freed, and
    /// the L1 slots it could fill.
    mutating func orphanedL2Findings() -> [ExplainFinding] {
        var out: [ExplainFinding] = []
        let l1 = structure.l1
        let emptySlots = l1.indices.filter { l1[$0] & Qcow2Entry.offsetMask == 0 && UInt64($0) * window < h.size }
        for c in leakedLooks.keys.sorted() where leakedLooks[c] == .l2Table && !isExplained(c) {
            guard let bytes = read(c) else { break }
            let off = UInt64(c) * cs
            let words = Qcow2ContentClassifier.words(bytes)
            // Not the active image's table: see isFlaglessTable.
            if isFlaglessTable(words) { continue }
            explain(c)
            let step = h.extendedL2 ? 2 : 1
            var intact = 0, reused = 0, freed = 0, total = 0
            var dataClusters: [Int] = []
            for i in 0..<min(Int(h.l2Entries), words.count / step) {
                let e = words[i * step]
                if e == 0 { continue }
                let host: UInt64
                if e & Qcow2Entry.compressed != 0 {
                    host = Qcow2CompressedDescriptor(entry: e & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: h.clusterBits).hostOffset
                } else {
                    host = e & Qcow2Entry.offsetMask
                    if host == 0 { continue }
                }
                total += 1
                let t = Int(host / cs)
                if isLeaked(t) { intact += 1; dataClusters.append(t); explain(t) }
                else if expected[t] > 0 { reused += 1 }
                else { freed += 1 }
            }
            // The slot it came from: a snapshot's L1 that still points to it names it; else every
            // empty slot of the active L1 is a candidate.
            var slots: [Int] = []
            for s in structure.snapshots ?? [] {
                if let t = try? QcowMetadata.readTable(metadata.file, at: s.l1TableOffset, entries: Int(s.l1Size)) {
                    for (i, e) in t.enumerated() where e & Qcow2Entry.offsetMask == off && !slots.contains(i) { slots.append(i) }
                }
            }
            let named = !slots.isEmpty
            if !named { slots = emptySlots }
            let guest = mergedRanges(slots.map { guestWindow($0) })
            var text = "The leaked cluster at \(hex(off)) holds a valid L2 table mapping \(total) data cluster\(total == 1 ? "" : "s"): \(intact) intact (leaked with it, content unchanged since), \(reused) reused by other structures, \(freed) freed (refcount 0, may be overwritten). "
            if named { text += "A snapshot's L1 table points to it at L1 index \(slots.map(String.init).joined(separator: ", ")): it most likely was the active image's table there too. " }
            else if slots.isEmpty { text += "No empty L1 slot is left for it: it was replaced by another table. " }
            else { text += "It was unlinked from the L1 table: it could fill \(slots.count) empty L1 slot\(slots.count == 1 ? "" : "s") (\(slots.prefix(8).map(String.init).joined(separator: ", "))\(slots.count > 8 ? ", ..." : "")), the guest windows listed. " }
            text += "The guest reads zeroes (or the backing file) where it mapped data. Re-linking it (writing \(hex(off | Qcow2Entry.copied)) to the right L1 slot) restores the \(intact) intact clusters; `check -r leaks` would instead free the table and its data for good."
            out.append(ExplainFinding(.orphanedL2Table, host: [ExplainRange(off, cs)] + hostRanges(dataClusters), guest: guest,
                                      looksLike: .l2Table, clusters: UInt64(total), text: text))
        }
        return out
    }

    /// One finding per host cluster reached from two places of the same view (two L2 entries,
    /// or an L2 entry and metadata) with a refcount below that; a cluster shared by a snapshot
    /// and the active image with a low refcount is a refcount-too-low, not this.
    mutating func doubleReferenceFindings() -> [ExplainFinding] {
        var out: [ExplainFinding] = []
        var lowShared: [Int] = []
        var rest = 0
        for c in obs.doubleCandidates.sorted() where !isExplained(c) {
            let refs = referrers[c] ?? []
            let views = Set(refs.map { $0.referrer.snapshot ?? -1 })
            let metadataRef = refs.contains { $0.kind.isMetadata }
            if !metadataRef && views.count == refs.count && refs.count > 1 && refs.allSatisfy({ $0.kind == .data || $0.kind == .compressed }) {
                lowShared.append(c)   // each view references it once: sharing with a low refcount
                continue
            }
            explain(c)
            if out.count >= 16 { rest += 1; continue }
            var guest: [ExplainRange] = []
            var who: [String] = []
            for r in refs {
                if let g = r.referrer.guestOffset(l2Entries: h.l2Entries, clusterBits: h.clusterBits) {
                    guest.append(ExplainRange(g, cs))
                    who.append("guest \(hex(g)) of \(view(r.referrer.snapshot))")
                } else {
                    who.append(r.kind.name)
                }
            }
            let stored = (try? metadata.refcount(ofCluster: UInt64(c))) ?? 0
            var text = "Host cluster \(hex(UInt64(c) * cs)) is referenced from \(refs.count) places (\(who.joined(separator: " and "))) but its refcount is \(stored). Both read the same bytes: a write through one changes what the other reads, and freeing one frees the other's data. One of the entries is wrong; the cluster it should point to may be among the leaked clusters. `check -r all` would raise the refcount to \(expected[c]), which keeps the sharing (later writes copy first) but does not give each its own data back."
            if let meta = refs.first(where: { $0.kind.isMetadata }), !guest.isEmpty {
                text += " The cluster is the image's \(meta.kind.name): the guest reads it as data, and a guest write there would overwrite that metadata. Clear the guest's L2 entry (the guest then reads zeroes there) before the image is written again."
            }
            out.append(ExplainFinding(.doubleReference, host: [ExplainRange(UInt64(c) * cs, cs)], guest: guest, clusters: 1, text: text))
        }
        if rest > 0 {
            out.append(ExplainFinding(.doubleReference, host: [], clusters: UInt64(rest),
                                      text: "\(rest) more host clusters are each referenced from two places of one view with a refcount below that (first 16 listed above)."))
        }
        for c in lowShared { obs.tooLowCount += 1; Qcow2ExplainObserver.extend(&obs.tooLow, c) }
        return out
    }
}

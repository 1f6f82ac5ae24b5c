import BlockIO
import BlockInspect

extension Qcow2Inspection {
    /// The refcount table, the references the walk found per host cluster (a histogram, as
    /// far as the image end `check` reports), `check`'s verdict, and one row per host cluster
    /// with its use, its stored refcount and where the two disagree.
    public func hostUnits() -> InspectHostUnits? {
        let cs = clusterSize
        let perBlock = cs * 8 / UInt64(max(1, refcountBits))
        let used = refcountTable.enumerated().filter { $0.element & Qcow2Entry.offsetMask != 0 }
        var lines = used.prefix(3).map { (i, e) in
            InspectCell(.counts, "[\(i)] block at \(hex(e & Qcow2Entry.offsetMask)) covers clusters \(UInt64(i) * perBlock)…\(UInt64(i + 1) * perBlock - 1)")
        }
        if used.count > 3 { lines.append(InspectCell(.dim, "… \(used.count - 3) more refcount blocks")) }
        var histogramHeading: String?
        var bars: [(label: String, units: Int, tone: InspectTone)] = []
        var summary: InspectCell?
        var problems: [String] = []
        if let u = usage {
            let r = u.report ?? CheckReport()
            let h = histogram(u, r)
            let counted = h.reduce(0) { $0 + $1.1 }
            histogramHeading = "References found per host cluster, \(counted) clusters\(r.imageEndOffset != nil ? " to the image end" : "")"
            bars = h.map { (v, n) in ("\(v) ref\(v == 1 ? "" : "s")", n, v == 0 ? .free : .normal) }
            summary = Qcow2Inspection.summaryLine(r)
            if let first = u.unreadable.first {
                let more = u.unreadable.count > 1 ? " (and \(u.unreadable.count - 1) more)" : ""
                problems.append("UNREADABLE: \(first.label)\(more); references in it are unknown")
            }
        }
        return InspectHostUnits(
            heading: "Refcount table at \(hex(refcountTableOffset)) (\(refcountTable.count) entries, \(refcountBits)-bit refcounts)",
            lines: lines, histogramHeading: histogramHeading, histogram: bars, summary: summary, status: usageStatus,
            problems: problems, listHeading: "Clusters:  index host offset     use              refcount", unit: cs,
            count: hostClusters, row: { [unowned self] i in clusterRow(i) }, matcher: { [unowned self] t in matcher(t) })
    }

    /// The summary line: `check`'s leaks and corruptions (the same walk), and beside them the
    /// releases a flush still has to apply (not leaks).
    static func summaryLine(_ r: CheckReport) -> InspectCell {
        let pending = r.releasesPending == 0 ? "" : ", \(r.releasesPending) release\(r.releasesPending == 1 ? "" : "s") pending (next flush)"
        if r.leaks + r.corruptions == 0 {
            return InspectCell(r.releasesPending == 0 ? .ok : .warning, r.releasesPending == 0 ? "clean: every refcount equals the references found" : "0 leaked, 0 corruptions\(pending)")
        }
        return InspectCell(.error, "\(r.leaks) leaked, \(r.corruptions) corruptions\(pending) (as check counts them; highlighted below)")
    }

    /// References per cluster up to the image's end as check reports it (the clusters past it,
    /// a preallocated tail, hold no references and are not counted); once per finished walk.
    private func histogram(_ u: HostUseMap, _ r: CheckReport) -> [(UInt64, Int)] {
        let gen = walker.generation
        if let c = histogramCache, c.generation == gen { return c.bars }
        var h = u.expectedHistogram().map { ($0.refcount, $0.units) }
        if let end = r.imageEndOffset, clusterSize > 0, let zero = h.firstIndex(where: { $0.0 == 0 }) {
            let endClusters = Int((end + clusterSize - 1) / clusterSize)
            h[zero].1 = max(0, h[zero].1 - max(0, u.count - endClusters))
            if h[zero].1 == 0 { h.remove(at: zero) }
        }
        histogramCache = (gen, h)
        return h
    }

    /// The row of host cluster `i`: index, offset, use (from the walk), stored refcount (read
    /// for this row only) and a note where it differs from the references.
    func clusterRow(_ i: Int) -> InspectCell {
        let cs = clusterSize
        let stored = refcount(ofClusterAt: UInt64(i) * cs)
        let storedText = stored.map { "\($0)" } ?? "?"
        let lead = "\(pad(String(i), 8, left: true)) \(pad(hex(UInt64(i) * cs), 14))"
        guard let u = usage else { return InspectCell(.dim, "\(lead) \(pad("…", 16)) refcount \(storedText)") }
        let exp = u.expectedRefcount(i) ?? 0
        let kind = u.kind(i)
        var tone = kind.tone
        var note = ""
        let pending = u.releasePending(i)
        if let st = stored, st > exp {
            // One space and the phrase first: it stays whole on an 80-column screen.
            if st - exp <= pending { tone = .warning; note = " \(InspectWords.releasePending): \(st - exp) reference\(st - exp == 1 ? "" : "s") dropped, refcount still \(st)" }
            else { tone = .error; note = "  LEAKED (\(st - exp) extra)" }
        }
        if (stored ?? 0) < exp { tone = .error; note = "  OVER-REFERENCED (\(exp) references, refcount \(stored ?? 0))" }
        if kind == .leaked, let first = u.unreadable.first {
            // check counts it as a leak, but the table that may reference it could not be read.
            tone = .warning
            note = "  no reference the walk could read (refcount \(storedText)); references unknown: \(first.label)"
        }
        if u.copiedFlagWrong(i) { tone = .error; note += "  COPIED flag wrong for refcount \(storedText)" }
        return InspectCell(tone, "\(lead) \(pad(kind.name, 16)) refcount \(storedText)\(note)")
    }

    /// "leak", "over", "mismatch", "corrupt" find refcounts that differ from the walk's;
    /// other text a kind name ("l2", "data"). Nil until the walk is done.
    private func matcher(_ text: String) -> ((Int) -> Bool)? {
        guard let u = usage else { return nil }
        let t = text.lowercased()
        let mismatch = ["leak", "over", "mismatch", "corrupt"].contains { t.hasPrefix($0) }
        let kinds = Set(HostRegionKind.allCases.filter { $0.name.lowercased().contains(t) })
        return { mismatch ? u.mismatched($0) : kinds.contains(u.kind($0)) }
    }
}

/// `s` padded with spaces to `n` characters (on the left with `left`).
func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
    s.count >= n ? s : left ? String(repeating: " ", count: n - s.count) + s : s + String(repeating: " ", count: n - s.count)
}

import BlockIO
import BlockInspect

extension Qcow2Structure {
    /// Explains the image (`blockscope explain`): the one reference walk `check` runs, with an
    /// observer, then the space table, the findings by cause and what each remedy gives back.
    /// A header that does not parse gives a report of what could be found by content.
    /// Read-only. Memory: about four bytes per host cluster (the walk's two, the observer's
    /// one, two more with snapshots), one cluster read at a time. `progress` is the walk's.
    public func explain(progress: ((Double) -> Bool)? = nil) throws(BlockError) -> ExplainReport {
        guard let h = header else {
            return try Qcow2HeaderRecovery(path: path, fileSize: fileSize, reason: problems.first?.label ?? "header unreadable").report()
        }
        guard let metadata else { return unreadableTables(h) }
        let file = metadata.file
        let size = fileSize
        let cs = h.clusterSize
        let nb = Int((size + cs - 1) / cs)
        let holes = HostHoles(file: file, size: size)
        let whole = holes.wholeUnits(unit: cs, size: size)
        let snaps = snapshots ?? []
        let classifier = Qcow2ContentClassifier(header: h, fileSize: size, snapshots: snaps.count)
        let obs = Qcow2ExplainObserver(clusters: nb, header: h, classifier: classifier, snapshots: snaps.count, wholeHole: whole)
        var w = try Qcow2ReferenceWalk(metadata: metadata, live: isLive, recordUses: true)
        w.observer = obs
        w.progress = progress
        try w.calculate()
        try w.compare(fix: nil)
        w.observer = nil
        var referrers: [Int: [(kind: HostRegionKind, referrer: Qcow2Referrer)]] = [:]
        if !obs.doubleCandidates.isEmpty {
            let rec = Qcow2ReferrerRecorder(targets: Set(obs.doubleCandidates), skip: obs.badOffsets, clusterBits: h.clusterBits)
            var w2 = try Qcow2ReferenceWalk(metadata: metadata, live: isLive)
            w2.observer = rec
            try w2.calculate()
            referrers = rec.found
        }
        var report = ExplainReport(format: "qcow2", fileSize: size, allocatedOnDisk: (try? file.allocatedSize()) ?? size, unit: cs)
        var ctx = Qcow2ExplainContext(structure: self, metadata: metadata, h: h, fileSize: size, uses: w.uses ?? [],
                                      expected: w.rc, highest: w.highest, obs: obs, classifier: classifier,
                                      referrers: referrers, check: w.report, holesTruncated: holes.truncated)
        report.findings = ctx.findings()
        report.space = Self.space(ctx: ctx, holes: holes, whole: whole)
        report.reclaim = Self.reclaim(ctx: ctx, report: report, whole: whole)
        return report
    }

    /// Bytes per kind: each cluster once, by what the walk found in it (see
    /// ``ExplainSpaceKind``); the last cluster counts only its bytes inside the file.
    static func space(ctx: Qcow2ExplainContext, holes: HostHoles, whole: HostHoles.ClusterBits) -> [(kind: ExplainSpaceKind, bytes: UInt64)] {
        let cs = ctx.h.clusterSize, size = ctx.fileSize
        let nb = Int((size + cs - 1) / cs)
        let usedEnd = min(size, UInt64(max(0, ctx.highest + 1)) * cs)
        var by: [ExplainSpaceKind: UInt64] = [:]
        func add(_ k: ExplainSpaceKind, _ b: UInt64) { by[k, default: 0] += b }
        // Per host-region kind, the space kind (data refined by the observer's flags below).
        var table = [ExplainSpaceKind](repeating: .unknown, count: 128)
        let pairs: [(HostRegionKind, ExplainSpaceKind)] = [
            (.qcowHeader, .header), (.l1Table, .l1), (.l2Table, .l2), (.refcountTable, .refcountTable),
            (.refcountBlock, .refcountBlocks), (.snapshotTable, .snapshotTables), (.snapshotL1Table, .snapshotL1),
            (.bitmapDirectory, .bitmapDirectory), (.bitmapTable, .bitmapTables), (.bitmapData, .bitmapData),
            (.encryptionHeader, .encryptionHeader), (.compressed, .compressed), (.leaked, .leaked), (.data, .data),
        ]
        for (h, e) in pairs { table[Int(h.rawValue)] = e }
        var counts = [UInt64](repeating: 0, count: 128)   // full clusters per host-region kind
        var dataCounts = [UInt64](repeating: 0, count: 4) // data, snapshot data, zeroed, holes
        let flags = ctx.obs.flags
        var c = 0
        let lastFull = Int(size / cs)    // clusters before it are whole
        while c < nb && UInt64(c) * cs < usedEnd {
            let start = UInt64(c) * cs
            let u = Int(c < ctx.uses.count ? ctx.uses[c] & 0x7f : 0)
            if c < lastFull && u != 0 && u != Int(HostRegionKind.data.rawValue) {
                counts[u] += 1
                c += 1
                continue
            }
            let b = min(cs, size - start)
            if u == 0 {
                let hb = holes.bytes(start, start + b)
                add(.holes, hb)
                add(.unused, b - hb)
            } else if u == Int(HostRegionKind.data.rawValue) {
                let f = flags[c]
                let i = whole[c] ? 3 : (f & Qcow2ExplainObserver.activeData != 0 ? 0 : (f & Qcow2ExplainObserver.snapshotRef != 0 ? 1 : (f & Qcow2ExplainObserver.activeZero != 0 ? 2 : 0)))
                if b == cs { dataCounts[i] += 1 } else { add([.data, .snapshotData, .zeroed, .holes][i], b) }
            } else {
                add(table[u], b)
            }
            c += 1
        }
        for u in 0..<128 where counts[u] > 0 { add(table[u], counts[u] * cs) }
        for (i, k) in [ExplainSpaceKind.data, .snapshotData, .zeroed, .holes].enumerated() { add(k, dataCounts[i] * cs) }
        if usedEnd < size {
            let hb = holes.bytes(usedEnd, size)
            add(.holes, hb)
            add(.pastEnd, size - usedEnd - hb)
        }
        return ExplainSpaceKind.qcow2.map { ($0, by[$0] ?? 0) }
    }

    /// What each remedy gives back, in bytes: `repair_leaks` (`check -r leaks`: the leaked
    /// clusters become free), `discard_zeroed` (the zeroed clusters), `delete_snapshot` (per
    /// snapshot name: clusters only it holds), `delete_all_snapshots`, `convert_size` (what a
    /// plain `qemu-img convert -O qcow2` writes, as `qemu-img measure` computes its required
    /// size) and `convert` (the file size minus that; negative when a convert grows the file).
    /// A raw external data file counts whole, as measure counts it. With a backing file the
    /// count here is this image's own data; ``ExplainReport/measureConvert(through:)`` over
    /// the open chain replaces it (a convert flattens the chain).
    static func reclaim(ctx: Qcow2ExplainContext, report: ExplainReport, whole: HostHoles.ClusterBits) -> [(key: String, value: JSONValue)] {
        let h = ctx.h, cs = h.clusterSize, size = ctx.fileSize
        var out: [(key: String, value: JSONValue)] = [
            ("repair_leaks", .size(report.bytes(.leaked))),
            ("discard_zeroed", .size(report.bytes(.zeroed))),
        ]
        let snaps = ctx.structure.snapshots ?? []
        if !snaps.isEmpty {
            var per = [UInt64](repeating: 0, count: snaps.count)
            var all: UInt64 = 0
            for (c, o) in ctx.obs.owner.enumerated() where (o >= 0 || o == -3) && !whole[c] {
                let b = min(cs, size - UInt64(c) * cs)
                if o >= 0 && Int(o) < per.count { per[Int(o)] += b }
                all += b
            }
            // Deleting every snapshot frees the snapshot table too.
            all += (ctx.metadata.snapshotTableBytes + cs - 1) / cs * cs
            var names: [(String, JSONValue)] = []
            for (i, s) in snaps.enumerated() { names.append((s.name, .size(per[i]))) }
            out.append(("delete_snapshot", .object(names)))
            out.append(("delete_all_snapshots", .size(all)))
        }
        let required = qcow2ConvertSize(virtualSize: h.size, dataClusters: ctx.obs.convert.clusters, hasBacking: h.hasExternalData && h.autoclearFeatures & Qcow2Feature.rawExternalData != 0)
        out.append(("convert_size", .size(required)))
        out.append(("convert", .int(Int64(bitPattern: size) - Int64(bitPattern: required))))
        return out
    }

    /// The report when the header parses but the tables it points to cannot be read (an L1 or
    /// refcount table past the end of the file, a snapshot table that does not parse): the
    /// header cluster is known, the rest is unknown, and one finding names what failed.
    func unreadableTables(_ h: Qcow2Header) -> ExplainReport {
        let cs = h.clusterSize
        var report = ExplainReport(format: "qcow2", fileSize: fileSize, allocatedOnDisk: fileSize, unit: cs)
        let head = min(cs, fileSize)
        report.space = ExplainSpaceKind.qcow2.map { k in (k, k == .header ? head : (k == .unknown ? fileSize - head : 0)) }
        // A header whose fields point past the end is reported once by the header and again
        // by the tables it could not read, with the same message: say it once.
        var said = Set<String>()
        let reasons = problems.map(\.label).filter { label in
            let message = label.range(of: ": ").map { String(label[$0.upperBound...]) } ?? label
            return said.insert(message).inserted
        }.joined(separator: "; ")
        report.findings = [ExplainFinding(.metadataOverwritten, host: problems.filter { $0.length > 0 }.map { ExplainRange($0.offset, $0.length) },
                                          guest: h.size > 0 ? [ExplainRange(0, h.size)] : [], clusters: UInt64(problems.count),
                                          text: "The header parses but the tables it points to cannot be read: \(reasons). Nothing of the guest disk can be located; `check` cannot run. If the file was truncated, the missing tail holds them.")]
        return report
    }
}

import BlockIO
import BlockInspect

/// Planning guest writes, zeroes and discards, and committing their allocations
/// (QEMU's qcow2-cluster.c: `qcow2_alloc_host_offset`, `qcow2_alloc_cluster_link_l2`,
/// zero and discard). Every call takes the metadata lock once; no data I/O happens under it.
extension QcowMetadata {
    /// Throws unless the write path may change the image now; sets the dirty bit of a
    /// lazy-refcounts image on its first write.
    func checkWritable(_ s: inout QcowMetadataState, _ offset: UInt64, _ op: String) throws(BlockError) {
        if !s.w.prepared {
            throw BlockError(.readOnly, "image is open read-only: cannot \(op)", path: file.path, guestOffset: offset, operation: op)
        }
        if s.w.incompatible & Qcow2Feature.corrupt != 0 {
            throw BlockError(.corruptImage, "qcow2: the image is marked corrupt; writes are refused (repair with qemu-img check -r all)", path: file.path, guestOffset: offset, operation: op)
        }
        if header.cryptMethod != 0 {
            throw BlockError(.unsupportedFeature, "qcow2: the image is encrypted; blockscope does not encrypt guest data", path: file.path, guestOffset: offset, operation: op)
        }
        if header.lazyRefcounts && header.version == 3 && s.w.incompatible & Qcow2Feature.dirty == 0 {
            s.w.incompatible |= Qcow2Feature.dirty
            try writeHeaderField(at: 72, value: s.w.incompatible, width: 8)
            s.w.setDirtyBit = true
        }
    }

    /// Throws `outOfBounds` unless `[offset, offset+length)` lies inside the disk.
    func checkRange(_ offset: UInt64, _ length: UInt64, _ op: String) throws(BlockError) -> UInt64 {
        let (end, o) = offset.addingReportingOverflow(length)
        if o || end > viewSize {
            throw BlockError(.outOfBounds, "\(op) of \(length) bytes at \(hex(offset)) ends past the end of the disk (size \(viewSize))", path: file.path, guestOffset: offset, operation: op)
        }
        return end
    }

    /// Whether any guest cluster of `[offset, end)` has an allocation in flight that the
    /// request must wait for (with `allowJoin`, a joinable fresh allocation does not count).
    func isBusy(_ s: inout QcowMetadataState, _ offset: UInt64, _ end: UInt64, allowJoin: Bool) -> Bool {
        if s.w.busy.isEmpty { return false }
        var c = offset >> cb
        while c <= (end - 1) >> cb {
            if let t = s.w.busy[c] {
                if !allowJoin || s.w.records[t]?.joinable != true { return true }
            }
            c += 1
        }
        return false
    }

    /// One write of a record finished: on success the L2 entry is set (COPIED, the union
    /// of the record's subclusters), and when its last write is done the record goes; a
    /// new cluster that no write of the record filled is released again.
    func finishWriter(_ s: inout QcowMetadataState, _ t: UInt64, success: Bool, events ev: inout [IoEventPayload]?) throws(BlockError) {
        guard var r = s.w.records[t] else { return }
        r.writers -= 1
        var failure: BlockError?
        if success {
            do throws(BlockError) {
                let e = try entry(&s, cluster: r.guestCluster) ?? Qcow2L2Entry(entry: 0, bitmap: 0)
                var bitmap: UInt64 = 0
                if header.extendedL2 { bitmap = r.fullBitmap ? Qcow2Entry.allAllocated : (e.bitmap | r.allocMask) & ~(r.allocMask << 32) }
                let n = Qcow2L2Entry(entry: r.host | Qcow2Entry.copied, bitmap: bitmap)
                if n != e { try setEntry(&s, cluster: r.guestCluster, n, events: &ev) }
                if !r.committed, let f = r.freeOld { deferFree(&s, offset: f.offset, length: f.length) }
                r.committed = true
            } catch let e { failure = e }
        }
        if r.writers > 0 {
            s.w.records[t] = r
        } else {
            s.w.records.removeValue(forKey: t)
            s.w.busy.removeValue(forKey: r.guestCluster)
            if !r.committed && r.newCluster { try? changeRefcount(&s, r.host >> cb, by: -1, events: &ev) }
        }
        if let failure { throw failure }
    }

    /// Plans a guest write of `length` bytes at `offset`: returns the host writes to issue,
    /// or `.busy` when a cluster of the range has an allocation in flight (retry later).
    ///
    /// Clusters that are allocated here (COPIED, touched subclusters allocated) are written
    /// in place with no metadata change. Any other cluster gets an allocation record: a new
    /// host cluster (refcount raised now) or the same one for a zero-flagged or partly
    /// allocated cluster, plus the copy-on-write fills its span needs (backing data, the old
    /// cluster's data, a decompressed cluster, or zeroes). The L2 entry changes in
    /// ``commit(_:success:events:)``, after the data write completed.
    public func planWrite(offset: UInt64, length: UInt64, zeroData: Bool = false, events wantEvents: Bool = false) throws(BlockError) -> Qcow2WritePlan {
        let end = try checkRange(offset, length, "write")
        if length == 0 { return .ready([], events: []) }
        return try plan(offset, end, "write", allowJoin: true, events: wantEvents) { (s, p) throws(BlockError) in
            try planLocked(&s, offset, end, zeroData: zeroData, &p)
        }
    }

    /// A plan being built: the host writes, the events, the allocation records made so far.
    struct PlanScratch {
        var out: [Qcow2ClusterWrite] = []
        var events: [IoEventPayload]?
        var created: [UInt64] = []
    }

    /// Takes the lock, checks the image may be written and that no cluster of `[offset, end)`
    /// waits for an allocation in flight (`.busy`), runs `body`, and returns the merged plan;
    /// when `body` fails half-way, the allocations it made are undone.
    func plan(_ offset: UInt64, _ end: UInt64, _ op: String, allowJoin: Bool, events wantEvents: Bool,
              _ body: (inout QcowMetadataState, inout PlanScratch) throws(BlockError) -> Void) throws(BlockError) -> Qcow2WritePlan {
        try state.withLock { (s) throws(BlockError) -> Qcow2WritePlan in
            try checkWritable(&s, offset, op)
            if isBusy(&s, offset, end, allowJoin: allowJoin) { return .busy }
            var p = PlanScratch(events: wantEvents ? [] : nil)
            // How the range maps before this request changes it (what step mode explains first).
            if wantEvents { p.events = (try? regionsBefore(&s, offset, end)) ?? [] }
            do throws(BlockError) { try body(&s, &p) } catch let e {
                rollback(&s, p.created)
                throw e
            }
            return .ready(QcowMetadata.merge(p.out), events: p.events ?? [])
        }
    }

    /// The hot path of ``planWrite(offset:length:zeroData:events:)``: the host offset for
    /// a write inside one cluster this image owns (no metadata change, no allocation in
    /// flight on it), or nil when the full planner is needed. One lock, no allocation.
    public func inPlaceHost(offset: UInt64, length: UInt64) throws(BlockError) -> UInt64? {
        let cs = header.clusterSize
        if length == 0 || (offset & (cs - 1)) + length > cs { return nil }
        let end = try checkRange(offset, length, "write")
        return try state.withLock { (s) throws(BlockError) -> UInt64? in
            guard s.w.prepared, s.w.incompatible & Qcow2Feature.corrupt == 0 else { return nil }
            let c = offset >> cb
            if !s.w.busy.isEmpty && s.w.busy[c] != nil { return nil }
            guard let e = try entry(&s, cluster: c) else { return nil }
            let a = offset & (cs - 1)
            guard writesInPlace(e, a, a + (end - offset)) else { return nil }
            let host = e.hostOffset + a
            // Overlaps with metadata are reported (and the image marked) by the full planner.
            if !header.hasExternalData && s.w.metadataClusters.contains(host >> cb) { return nil }
            try checkWritable(&s, offset, "write")
            return host
        }
    }

    /// Plans making `[offset, offset+length)` read as zeroes (`zero` and `discard` both do:
    /// a discarded range reads as zeroes afterwards, as the raw mirror's punched hole does).
    ///
    /// Whole clusters change metadata only: the zero flag (v3), all-zero subcluster bits
    /// (extended L2), or deallocation (v2 without a backing file); their old host clusters
    /// are released after the next flush. Whole subclusters of a cluster owned by this image
    /// get zero bits. What remains (partial clusters, v2 over a backing file, clusters shared
    /// with a snapshot) becomes a write of zeroes planned like ``planWrite(offset:length:zeroData:events:)``.
    public func planZero(offset: UInt64, length: UInt64, hasBacking: Bool, events wantEvents: Bool = false) throws(BlockError) -> Qcow2WritePlan {
        let end = try checkRange(offset, length, "zero")
        if length == 0 { return .ready([], events: []) }
        let cs = header.clusterSize, scs = header.subclusterSize
        let ext = header.extendedL2, extData = header.hasExternalData
        // A raw external data file must stay a raw image of the guest: zeroes are written.
        let writeAll = extData && header.autoclearFeatures & Qcow2Feature.rawExternalData != 0
        return try plan(offset, end, "zero", allowJoin: false, events: wantEvents) { (s, p) throws(BlockError) in
            if writeAll {
                try planLocked(&s, offset, end, zeroData: true, &p)
                return
            }
            var pos = offset
            while pos < end {
                let c = pos >> cb
                let cstart = c << cb
                let a = pos - cstart, b = min(end, cstart + cs) - cstart
                pos = cstart + b
                let e = try entry(&s, cluster: c) ?? Qcow2L2Entry(entry: 0, bitmap: 0)
                let hasHost = e.hasHostCluster(externalData: extData)
                if a == 0 && b == cs {
                    // Unallocated without a backing file already reads as zeroes.
                    if !hasBacking && e.entry == 0 && e.bitmap & Qcow2Entry.allAllocated == 0 { continue }
                    var n: Qcow2L2Entry
                    if ext {
                        n = Qcow2L2Entry(entry: extData && hasHost ? e.entry : 0, bitmap: Qcow2Entry.allAllocated << 32)
                    } else if header.version >= 3 {
                        n = Qcow2L2Entry(entry: extData && hasHost ? (e.entry | Qcow2Entry.zero) : Qcow2Entry.zero, bitmap: 0)
                    } else if !hasBacking {
                        n = Qcow2L2Entry(entry: 0, bitmap: 0)
                    } else {
                        try planLocked(&s, cstart, cstart + cs, zeroData: true, &p)
                        continue
                    }
                    if n == e { continue }
                    try setEntry(&s, cluster: c, n, events: &p.events)
                    releaseOld(&s, e)
                    continue
                }
                if readsAsZero(e, a, b, hasBacking: hasBacking) { continue }
                let owned = !e.isCompressed && (!hasHost || e.entry & Qcow2Entry.copied != 0 || extData)
                if ext && owned {
                    // Whole subclusters inside [a, b) become zero; the ragged edges are
                    // written in place. When an edge would need an allocation, the whole
                    // range is one zero write instead (one allocation per cluster and plan).
                    let first = (a + scs - 1) / scs, last = b / scs   // [first, last) fully covered
                    let headOK = a == first * scs || writesInPlace(e, a, first * scs)
                    let tailOK = last * scs >= b || writesInPlace(e, last * scs, b)
                    if first < last && headOK && tailOK {
                        var mask: UInt64 = 0
                        for sc in first..<last { mask |= 1 << sc }
                        let n = Qcow2L2Entry(entry: e.entry, bitmap: (e.bitmap & ~mask) | (mask << 32))
                        if n != e { try setEntry(&s, cluster: c, n, events: &p.events) }
                        if a < first * scs { try planLocked(&s, cstart + a, cstart + first * scs, zeroData: true, &p) }
                        if last * scs < b { try planLocked(&s, cstart + last * scs, cstart + b, zeroData: true, &p) }
                        continue
                    }
                }
                try planLocked(&s, cstart + a, cstart + b, zeroData: true, &p)
            }
        }
    }

    /// Queues the release of what an L2 entry pointed at (its host cluster or compressed bytes).
    func releaseOld(_ s: inout QcowMetadataState, _ e: Qcow2L2Entry) {
        if header.hasExternalData { return }
        if e.isCompressed {
            let d = Qcow2CompressedDescriptor(entry: e.entry & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: header.clusterBits)
            deferFree(&s, offset: d.hostOffset, length: UInt64(d.length))
        } else if e.hostOffset != 0 {
            deferFree(&s, offset: e.hostOffset, length: header.clusterSize)
        }
    }

    /// Undoes the allocation records (and joins) of a plan that failed half-way.
    func rollback(_ s: inout QcowMetadataState, _ tokens: [UInt64]) {
        var none: [IoEventPayload]? = nil
        for t in tokens { try? finishWriter(&s, t, success: false, events: &none) }
        changes.bump()   // the clusters those records held are free for deferred requests again
    }

    /// Whether cluster-relative bytes `[a, b)` of a cluster with entry `e` read as zeroes
    /// without a host cluster (zero flag or bits, or unallocated with no backing file).
    func readsAsZero(_ e: Qcow2L2Entry, _ a: UInt64, _ b: UInt64, hasBacking: Bool) -> Bool {
        let extData = header.hasExternalData
        if e.isCompressed || e.hasHostCluster(externalData: extData) { return false }
        let scs = header.subclusterSize
        for sc in (a / scs)...((b - 1) / scs) {
            switch e.type(subcluster: Int(sc), extendedL2: header.extendedL2, externalData: extData) {
            case .zeroPlain: continue
            case .unallocatedPlain: if hasBacking { return false }
            default: return false
            }
        }
        return true
    }

    /// Whether guest bytes `[a, b)` of a cluster with entry `e` can be written in place with
    /// no metadata change: the cluster is this image's own (COPIED), not compressed, and
    /// every touched subcluster holds data.
    func writesInPlace(_ e: Qcow2L2Entry, _ a: UInt64, _ b: UInt64) -> Bool {
        let extData = header.hasExternalData
        guard !e.isCompressed, e.hasHostCluster(externalData: extData), e.entry & Qcow2Entry.copied != 0 || extData else { return false }
        if !header.extendedL2 { return e.entry & Qcow2Entry.zero == 0 }
        let scs = header.subclusterSize
        var mask: UInt64 = 0
        for sc in (a / scs)...((b - 1) / scs) { mask |= 1 << sc }
        return e.bitmap & mask == mask && (e.bitmap >> 32) & mask == 0
    }

    /// Plans `[offset, end)` cluster by cluster (lock held, busy already checked).
    func planLocked(_ s: inout QcowMetadataState, _ offset: UInt64, _ end: UInt64, zeroData: Bool, _ p: inout PlanScratch) throws(BlockError) {
        let cs = header.clusterSize, scs = header.subclusterSize
        let ext = header.extendedL2, extData = header.hasExternalData
        // Room for one record and one piece per cluster at once: a fresh image's tables grew
        // from empty by doubling, rehashing every record each time (a 256 KiB write over 512-byte clusters
        // added 512; docs/FUZZING.md, "Throughput", fourth pass).
        let clusters = end > offset ? Int(((end - 1) >> cb) - (offset >> cb) + 1) : 0
        if clusters > 1 {
            s.w.records.reserveCapacity(s.w.records.count + clusters)
            s.w.busy.reserveCapacity(s.w.busy.count + clusters)
            p.out.reserveCapacity(p.out.count + clusters)
            p.created.reserveCapacity(p.created.count + clusters)
        }
        var pos = offset
        while pos < end {
            let c = pos >> cb
            let cstart = c << cb
            let a = pos - cstart, b = min(end, cstart + cs) - cstart
            let e = try entry(&s, cluster: c) ?? Qcow2L2Entry(entry: 0, bitmap: 0)
            if let t = s.w.busy[c], var r = s.w.records[t], r.joinable, !writesInPlace(e, a, b) {
                // A fresh allocation of this cluster is in flight: write into its cluster too.
                if header.extendedL2 { for sc in (a / scs)...((b - 1) / scs) { r.allocMask |= 1 << sc } }
                r.writers += 1
                s.w.records[t] = r
                p.created.append(t)
                try checkOverlap(&s, host: r.host + a, length: b - a, guest: pos)
                p.out.append(Qcow2ClusterWrite(guestOffset: pos, length: b - a, hostOffset: r.host + a, spanLength: b - a,
                                             dataOffsetInSpan: 0, fills: [], tokens: [t], zeroData: zeroData))
                pos = cstart + b
                continue
            }
            if writesInPlace(e, a, b) {
                let host = e.hostOffset + a
                try checkOverlap(&s, host: host, length: b - a, guest: pos)
                p.out.append(Qcow2ClusterWrite(guestOffset: pos, length: b - a, hostOffset: host, spanLength: b - a,
                                             dataOffsetInSpan: 0, fills: [], tokens: [], zeroData: zeroData))
                pos = cstart + b
                continue
            }
            _ = try writableL2(&s, Int(c / header.l2Entries), events: &p.events)
            let hasHost = e.hasHostCluster(externalData: extData)
            let inPlace = hasHost && (e.entry & Qcow2Entry.copied != 0 || extData)
            var host: UInt64, newCluster = false
            if inPlace {
                host = e.hostOffset
            } else if extData {
                host = cstart   // a raw external data file maps guest offsets 1:1
            } else {
                host = try allocateClusters(&s, events: &p.events)
                newCluster = true
            }
            if newCluster || extData { p.events?.append(.allocated(guestOffset: cstart, hostOffset: host, length: cs)) }
            // The span: the whole cluster, or with extended L2 the touched subclusters (the
            // edges of an in-place subcluster that already holds data are not rewritten).
            var s0: UInt64 = 0, s1: UInt64 = cs
            var allocMask: UInt64 = 0, full = !ext
            if ext {
                if !inPlace && (hasHost || e.isCompressed) {
                    full = true
                } else {
                    let scA = a / scs, scB = (b - 1) / scs
                    let t = { (sc: UInt64) in e.type(subcluster: Int(sc), extendedL2: true, externalData: extData) }
                    s0 = inPlace && t(scA) == .normal ? a : scA * scs
                    s1 = inPlace && t(scB) == .normal ? b : (scB + 1) * scs
                    for sc in scA...scB { allocMask |= 1 << sc }
                }
            }
            // Fills: how the untouched bytes of the span read now (cluster-relative offsets).
            var fills: [(at: UInt64, len: UInt64, src: Qcow2FillSource)] = []
            for (from, to) in [(s0, a), (b, s1)] where from < to {
                for m in try mapLocked(&s, offset: cstart + from, end: cstart + to) {
                    let src: Qcow2FillSource
                    switch m.kind {
                    case let .data(h): src = .host(offset: h)
                    case .zero: src = .zero
                    case .backing:
                        // Past the backing image's end (or without one) the bytes are zeroes.
                        let bEnd = s.w.backingSize
                        if m.guestOffset >= bEnd {
                            src = .zero
                        } else if m.guestOffset + m.length > bEnd {
                            fills.append((m.guestOffset - cstart, bEnd - m.guestOffset, .backing(guestOffset: m.guestOffset)))
                            fills.append((bEnd - cstart, m.guestOffset + m.length - bEnd, .zero))
                            continue
                        } else {
                            src = .backing(guestOffset: m.guestOffset)
                        }
                    case let .compressed(d, off): src = .compressed(descriptor: d, offsetInCluster: off)
                    }
                    fills.append((m.guestOffset - cstart, m.length, src))
                }
            }
            // A cluster past the old end of the file reads as zeroes: zero fills at the
            // span's edges need no write.
            if newCluster && (host >> cb) >= s.w.freshFrom {
                while let f = fills.first, f.src == .zero, f.at == s0 { s0 += f.len; fills.removeFirst() }
                while let f = fills.last, f.src == .zero, f.at + f.len == s1 { s1 -= f.len; fills.removeLast() }
            }
            try checkOverlap(&s, host: host + s0, length: s1 - s0, guest: pos)
            if p.events != nil {
                p.events! += QcowMetadata.fillEvents(fills, clusterStart: cstart, host: host, oldIsShared: hasHost && !inPlace)
            }
            var freeOld: (UInt64, UInt64)? = nil
            if !inPlace && !extData {
                if e.isCompressed {
                    let d = Qcow2CompressedDescriptor(entry: e.entry & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: header.clusterBits)
                    freeOld = (d.hostOffset, UInt64(d.length))
                } else if hasHost {
                    freeOld = (e.hostOffset, cs)
                }
            }
            // Later writes may join a fresh cluster whose old content was zeroes everywhere
            // (and whose span is exactly this write's data).
            let fresh = newCluster && (host >> cb) >= s.w.freshFrom
            let joinable = fresh && fills.isEmpty && s0 == a && s1 == b && !(ext && full)
                && readsAsZero(e, 0, cs, hasBacking: cstart < s.w.backingSize)
            let token = s.w.nextToken
            s.w.nextToken += 1
            s.w.records[token] = QcowAllocRecord(guestCluster: c, host: host, newCluster: newCluster, allocMask: allocMask,
                                                 fullBitmap: ext && full, freeOld: freeOld, joinable: joinable)
            s.w.busy[c] = token
            p.created.append(token)
            p.out.append(Qcow2ClusterWrite(guestOffset: pos, length: b - a, hostOffset: host + s0, spanLength: s1 - s0,
                                         dataOffsetInSpan: Int(a - s0),
                                         fills: fills.map { Qcow2Fill(spanOffset: Int($0.at - s0), length: Int($0.len), source: $0.src) },
                                         tokens: [token], zeroData: zeroData))
            pos = cstart + b
        }
    }

    /// Joins pieces that continue each other in guest and host space with no fills, so a
    /// sequential write over contiguous clusters becomes one host write.
    static func merge(_ pieces: [Qcow2ClusterWrite]) -> [Qcow2ClusterWrite] {
        if pieces.count < 2 { return pieces }
        var out: [Qcow2ClusterWrite] = []
        out.reserveCapacity(pieces.count)
        for p in pieces {
            if let last = out.last, last.fills.isEmpty, p.fills.isEmpty, last.zeroData == p.zeroData,
               last.dataOffsetInSpan == 0, p.dataOffsetInSpan == 0, last.spanLength == last.length, p.spanLength == p.length,
               last.guestOffset + last.length == p.guestOffset, last.hostOffset + last.spanLength == p.hostOffset {
                // In place: a copy of the last piece shared its token array with `out`, so
                // each append copied every token so far (quadratic in the pieces merged).
                let i = out.count - 1
                out[i].length += p.length
                out[i].spanLength += p.spanLength
                out[i].tokens.append(contentsOf: p.tokens)
            } else {
                out.append(p)
            }
        }
        return out
    }

    /// Applies (on success) or drops (on failure) the allocations of a completed host write:
    /// the L2 entry now points at the new data (COPIED, subcluster bits set), the old
    /// cluster is released after the next flush; a failed write's new cluster is released.
    public func commit(_ tokens: [UInt64], success: Bool, events wantEvents: Bool = false) throws(BlockError) -> [IoEventPayload] {
        if tokens.isEmpty { return [] }
        defer { changes.bump() }
        return try state.withLock { (s) throws(BlockError) -> [IoEventPayload] in
            var ev: [IoEventPayload]? = wantEvents ? [] : nil
            var firstError: BlockError?
            for t in tokens {
                do throws(BlockError) { try finishWriter(&s, t, success: success, events: &ev) } catch let e {
                    if firstError == nil { firstError = e }
                }
            }
            if let firstError { throw firstError }
            return ev ?? []
        }
    }
}

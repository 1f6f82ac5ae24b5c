/// `map` for QCOW2: block status per (sub)cluster through the backing chain, shaped and
/// merged like `qemu-img map --output=json` (QEMU 7.2's qcow2_co_block_status plus the
/// generic layer's rules).
///
/// Rules reproduced: normal data carries its host offset; zero clusters are present and
/// zero (with an offset when preallocated); compressed clusters are data without an offset;
/// unallocated ranges fall through to the backing image at depth+1, or read as zero with
/// `present:false` at the last image and past a shorter backing image's end (an unallocated
/// subcluster of an allocated cluster keeps its offset there). When the image looks
/// metadata-preallocated (QEMU's refcount heuristic), data ranges that are holes in the host
/// file also report `zero:true`.
extension Qcow2Disk: InspectableDisk {
    /// Extents of the whole guest range through the backing chain, merged like qemu-img.
    public func mapExtents() throws(BlockError) -> [MapExtent] {
        try mapExtents(detail: false)
    }

    /// Extents, optionally with blockscope's per-cluster detail (`compressed`, subcluster
    /// type names); detail extents merge only with identical detail.
    public func mapExtents(detail: Bool) throws(BlockError) -> [MapExtent] {
        var out: [MapExtent] = []
        let h = header
        let cs = h.clusterSize, scs = h.subclusterSize
        let l2n = h.l2Entries
        let prealloc = try looksMetadataPreallocated()
        let l1 = metadata.l1Table
        var backingMap: [MapExtent]? = nil
        let crypto = h.cryptMethod != 0

        func push(_ e: MapExtent) {
            if let last = out.last, last.canMerge(with: e) { out[out.count - 1].length += e.length } else { out.append(e) }
        }
        // An unallocated range: backing extents at depth+1, or zero at this depth.
        func fallThrough(_ start: UInt64, _ length: UInt64, offset: UInt64?, d: String?) throws(BlockError) {
            var pos = start
            let end = start + length
            if let b = backing, pos < b.logicalSize {
                if backingMap == nil {
                    // QEMU 7.2's VHDX driver has no block-status callback: the generic layer
                    // reports the whole backing range as data without offsets. Do the same.
                    if b.format != .vhdx, let ib = b as? any InspectableDisk { backingMap = try ib.mapExtents() } else {
                        backingMap = [MapExtent(start: 0, length: b.logicalSize, depth: 0, present: true, zero: false, data: true)]
                    }
                }
                let bend = min(end, b.logicalSize)
                for e in backingMap! where e.start + e.length > pos && e.start < bend {
                    let s = max(e.start, pos), t = min(e.start + e.length, bend)
                    push(MapExtent(start: s, length: t - s, depth: e.depth + 1, present: e.present, zero: e.zero, data: e.data,
                                   offset: e.offset.map { $0 + (s - e.start) }, detail: detail ? (e.detail ?? "backing") : nil))
                }
                pos = bend
            }
            if pos < end {
                push(MapExtent(start: pos, length: end - pos, depth: 0, present: false, zero: true, data: false,
                               offset: offset.map { $0 + (pos - start) }, detail: d))
            }
        }

        var cluster: UInt64 = 0
        let clusters = (logicalSize + cs - 1) / cs
        while cluster < clusters {
            let l1i = Int(cluster / l2n)
            let tableEnd = min(clusters, UInt64(l1i + 1) * l2n)
            let start = cluster * cs
            let rangeEnd = min(logicalSize, tableEnd * cs)
            if l1i >= l1.count || l1[l1i] & Qcow2Entry.offsetMask == 0 {
                try fallThrough(start, rangeEnd - start, offset: nil, d: detail ? "unallocated" : nil)
                cluster = tableEnd
                continue
            }
            let entries = try metadata.entries(firstCluster: cluster, count: Int(tableEnd - cluster))
            for (k, eo) in entries.enumerated() {
                let c = cluster + UInt64(k)
                let cStart = c * cs
                let cEnd = min(logicalSize, cStart + cs)
                guard let e = eo else { try fallThrough(cStart, cEnd - cStart, offset: nil, d: detail ? "unallocated" : nil); continue }
                var pos = cStart
                while pos < cEnd {
                    let sc = Int((pos - cStart) / scs)
                    let scEnd = min(cEnd, pos + scs)
                    let t = e.type(subcluster: sc, extendedL2: h.extendedL2, externalData: h.hasExternalData)
                    let host = crypto ? nil : Optional(e.hostOffset + (pos - cStart))
                    let d: String? = detail ? (h.extendedL2 && t != .compressed ? "subcluster \(t.rawValue)" : t.rawValue) : nil
                    switch t {
                    case .normal:
                        if prealloc, let host {
                            for (off, len, isHole) in hostRuns(host, scEnd - pos) {
                                push(MapExtent(start: pos + (off - host), length: len, depth: 0, present: true, zero: isHole, data: true, offset: off, detail: d))
                            }
                        } else {
                            push(MapExtent(start: pos, length: scEnd - pos, depth: 0, present: true, zero: false, data: true, offset: host, detail: d))
                        }
                    case .compressed:
                        push(MapExtent(start: pos, length: scEnd - pos, depth: 0, present: true, zero: false, data: true, offset: nil, detail: d))
                    case .zeroAlloc:
                        push(MapExtent(start: pos, length: scEnd - pos, depth: 0, present: true, zero: true, data: false, offset: host, detail: d))
                    case .zeroPlain:
                        push(MapExtent(start: pos, length: scEnd - pos, depth: 0, present: true, zero: true, data: false, offset: nil, detail: d))
                    case .unallocatedAlloc:
                        try fallThrough(pos, scEnd - pos, offset: host, d: d)
                    case .unallocatedPlain:
                        try fallThrough(pos, scEnd - pos, offset: nil, d: d)
                    case .invalid:
                        throw BlockError(.corruptImage, "qcow2: L2 entry \(hex(e.entry)) has an invalid subcluster bitmap \(hex(e.bitmap))", path: path, guestOffset: pos, operation: "map")
                    }
                    pos = scEnd
                }
            }
            cluster = tableEnd
        }
        return out
    }

    /// Splits a host range of the data file into data and hole runs (SEEK_DATA/SEEK_HOLE);
    /// bytes past the end of the file count as a hole.
    private func hostRuns(_ host: UInt64, _ length: UInt64) -> [(UInt64, UInt64, Bool)] {
        var out: [(UInt64, UInt64, Bool)] = []
        var pos = host
        let end = host + length
        while pos < end {
            guard let d = dataFile.nextData(from: pos), d < end else { out.append((pos, end - pos, true)); break }
            if d > pos { out.append((pos, d - pos, true)) }
            let hEnd = min(end, dataFile.nextHole(from: d) ?? end)
            out.append((d, hEnd - d, false))
            pos = hEnd
        }
        return out
    }

    /// QEMU's qcow2_detect_metadata_preallocation: the image counts as metadata-preallocated
    /// when clusters with a nonzero refcount reach max(allocated*10/9, allocated+2), where
    /// allocated is the file's allocated size in clusters.
    func looksMetadataPreallocated() throws(BlockError) -> Bool {
        let cs = header.clusterSize
        let fileLength = try file.size()
        let real = try file.allocatedSize() / cs
        let threshold = max(real * 10 / 9, real + 2)
        let end = (fileLength + cs - 1) / cs
        var count: UInt64 = 0
        var i: UInt64 = 0
        while i < end && count < threshold {
            if try metadata.refcount(ofCluster: i) != 0 { count += 1 }
            i += 1
        }
        return count >= threshold
    }
}

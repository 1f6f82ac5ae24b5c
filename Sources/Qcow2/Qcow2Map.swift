import BlockIO
import BlockInspect

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
        try forEachMapExtent(detail: detail) { out.append($0) }
        return out
    }

    /// Streams the merged extents (with `detail`, blockscope's per-cluster detail) to `body`.
    ///
    /// Memory stays bounded by one L2 table and one pending extent whatever the image size:
    /// L2 tables are read one at a time without entering the metadata cache, and the
    /// SEEK_DATA/SEEK_HOLE answer for a host range is reused for every cluster inside it.
    public func forEachMapExtent(detail: Bool, _ body: (MapExtent) throws(BlockError) -> Void) throws(BlockError) {
        let h = header
        let cs = h.clusterSize, scs = h.subclusterSize
        let l2n = h.l2Entries
        let prealloc = try looksMetadataPreallocated()
        let l1Count = metadata.l1Table.count
        var backingMap: [MapExtent]? = nil
        let crypto = h.cryptMethod != 0
        let ext = h.extendedL2, extData = h.hasExternalData
        let step = ext ? 2 : 1
        var holes = HostHoleCursor(file: dataFile)
        // The extent being merged, as scalars: extending it costs a few compares and no
        // copy of a MapExtent (whose optional String makes every copy retain/release).
        var run = (start: UInt64(0), length: UInt64(0), depth: 0, present: false, zero: false, data: false, offset: UInt64?.none)
        var runDetail: String? = nil
        var hasRun = false

        func add(_ start: UInt64, _ length: UInt64, depth: Int = 0, present: Bool, zero: Bool, data: Bool, offset: UInt64?, detail d: String?) throws(BlockError) {
            if length == 0 { return }
            if hasRun && run.start + run.length == start && run.depth == depth && run.present == present && run.zero == zero
                && run.data == data && runDetail == d {
                switch (run.offset, offset) {
                case (nil, nil):
                    run.length += length
                    return
                case let (a?, b?) where a + run.length == b:
                    run.length += length
                    return
                default: break
                }
            }
            if hasRun {
                try body(MapExtent(start: run.start, length: run.length, depth: run.depth, present: run.present, zero: run.zero,
                                   data: run.data, offset: run.offset, detail: runDetail))
            }
            run = (start, length, depth, present, zero, data, offset)
            runDetail = d
            hasRun = true
        }
        func push(_ e: MapExtent) throws(BlockError) {
            try add(e.start, e.length, depth: e.depth, present: e.present, zero: e.zero, data: e.data, offset: e.offset, detail: e.detail)
        }
        // An unallocated range: backing extents at depth+1, or zero at this depth.
        func fallThrough(_ start: UInt64, _ length: UInt64, offset: UInt64?, d: String?) throws(BlockError) {
            var pos = start
            let end = start + length
            if let b = backing, pos < b.logicalSize {
                if backingMap == nil {
                    // A backing format whose QEMU driver has no block-status callback (VHDX in
                    // QEMU 7.2): the generic layer reports the whole range as data without
                    // offsets. Do the same.
                    if let ib = b as? any InspectableDisk, ib.reportsBlockStatus { backingMap = try ib.mapExtents() } else {
                        backingMap = [MapExtent(start: 0, length: b.logicalSize, depth: 0, present: true, zero: false, data: true)]
                    }
                }
                let bend = min(end, b.logicalSize)
                // Start at the backing map's first extent that ends past `pos`.
                let bm = backingMap!
                for e in bm[firstExtentIndex(endingAfter: pos, in: bm)...] {
                    if e.start >= bend { break }
                    let s = max(e.start, pos), t = min(e.start + e.length, bend)
                    try push(MapExtent(start: s, length: t - s, depth: e.depth + 1, present: e.present, zero: e.zero, data: e.data,
                                       offset: e.offset.map { $0 + (s - e.start) }, detail: detail ? (e.detail ?? "backing") : nil))
                }
                pos = bend
            }
            if pos < end {
                try add(pos, end - pos, present: false, zero: true, data: false, offset: offset.map { $0 + (pos - start) }, detail: d)
            }
        }

        var cluster: UInt64 = 0
        let clusters = (logicalSize + cs - 1) / cs
        while cluster < clusters {
            let l1i = Int(cluster / l2n)
            // Past the L1 table nothing is allocated: the rest is one range, not a step per L2
            // table's span (a snapshot's guest size may be 2^62 bytes over a one-entry L1:
            // 2^41 steps, found by qcow2-read as a hang).
            let tableEnd = l1i < l1Count ? min(clusters, UInt64(l1i + 1) * l2n) : clusters
            let start = cluster * cs
            let rangeEnd = min(logicalSize, tableEnd * cs)
            guard l1i < l1Count, let t = try metadata.scanL2Table(l1Index: l1i) else {
                try fallThrough(start, rangeEnd - start, offset: nil, d: detail ? "unallocated" : nil)
                cluster = tableEnd
                continue
            }
            let first = Int(cluster % l2n)
            let n = Int(tableEnd - cluster)
            let fast = !detail && !ext && !crypto && !extData
            var k = 0
            while k < n {
                let i = (first + k) * step
                // Fast path: a run of normal clusters whose host clusters follow each other
                // (what preallocation and sequential writes produce) is one range to add.
                if fast, t[i] & (Qcow2Entry.compressed | Qcow2Entry.zero) == 0, t[i] & Qcow2Entry.offsetMask != 0 {
                    let host = t[i] & Qcow2Entry.offsetMask
                    var m = 1
                    while k + m < n, t[i + m] & ~Qcow2Entry.copied == (t[i] & ~Qcow2Entry.copied) + UInt64(m) * cs { m += 1 }
                    let gStart = (cluster + UInt64(k)) * cs
                    let gEnd = min(logicalSize, gStart + UInt64(m) * cs)
                    if prealloc {
                        var p = host
                        let hEnd = host + (gEnd - gStart)
                        while p < hEnd {
                            let hr = holes.run(at: p)
                            let q = min(hr.end, hEnd)
                            try add(gStart + (p - host), q - p, present: true, zero: hr.hole, data: true, offset: p, detail: nil)
                            p = q
                        }
                    } else {
                        try add(gStart, gEnd - gStart, present: true, zero: false, data: true, offset: host, detail: nil)
                    }
                    k += m
                    continue
                }
                // Fast path: a run of all-zero entries (unallocated, no flags) falls through at once.
                if fast, t[i] == 0 {
                    var m = 1
                    while k + m < n, t[i + m] == 0 { m += 1 }
                    let gStart = (cluster + UInt64(k)) * cs
                    try fallThrough(gStart, min(logicalSize, gStart + UInt64(m) * cs) - gStart, offset: nil, d: nil)
                    k += m
                    continue
                }
                defer { k += 1 }
                let e = Qcow2L2Entry(entry: t[i], bitmap: ext ? t[i + 1] : 0)
                let cStart = (cluster + UInt64(k)) * cs
                let cEnd = min(logicalSize, cStart + cs)
                var pos = cStart
                while pos < cEnd {
                    let sc = Int((pos - cStart) / scs)
                    let scEnd = ext ? min(cEnd, pos + scs) : cEnd
                    let ty = e.type(subcluster: sc, extendedL2: ext, externalData: extData)
                    let host = crypto ? nil : Optional(e.hostOffset + (pos - cStart))
                    let d: String? = detail ? (ext && ty != .compressed ? "subcluster \(ty.rawValue)" : ty.rawValue) : nil
                    switch ty {
                    case .normal:
                        if prealloc, let host {
                            // Data and hole runs of the host file (SEEK_DATA/SEEK_HOLE, cached per run).
                            var p = host
                            let hEnd = host + (scEnd - pos)
                            while p < hEnd {
                                let hr = holes.run(at: p)
                                let q = min(hr.end, hEnd)
                                try add(pos + (p - host), q - p, present: true, zero: hr.hole, data: true, offset: p, detail: d)
                                p = q
                            }
                        } else {
                            try add(pos, scEnd - pos, present: true, zero: false, data: true, offset: host, detail: d)
                        }
                    case .compressed:
                        try add(pos, scEnd - pos, present: true, zero: false, data: true, offset: nil, detail: d)
                    case .zeroAlloc:
                        try add(pos, scEnd - pos, present: true, zero: true, data: false, offset: host, detail: d)
                    case .zeroPlain:
                        try add(pos, scEnd - pos, present: true, zero: true, data: false, offset: nil, detail: d)
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
        if hasRun {
            try body(MapExtent(start: run.start, length: run.length, depth: run.depth, present: run.present, zero: run.zero,
                               data: run.data, offset: run.offset, detail: runDetail))
        }
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

/// The data/hole run of a host file around an offset (SEEK_DATA/SEEK_HOLE), remembered so
/// that the clusters inside one run cost no system call. Bytes past the end of the file
/// count as a hole. Valid while the file does not change under it (one `map` pass).
struct HostHoleCursor {
    let file: SystemFile
    private var start: UInt64 = 0
    private var end: UInt64 = 0
    private var hole = false

    init(file: SystemFile) { self.file = file }

    /// The end of the run that contains `pos` and whether that run is a hole.
    mutating func run(at pos: UInt64) -> (end: UInt64, hole: Bool) {
        if pos >= start && pos < end { return (end, hole) }
        start = pos
        if let d = file.nextData(from: pos) {
            if d > pos { end = d; hole = true } else { end = max(pos + 1, file.nextHole(from: pos) ?? .max); hole = false }
        } else {
            end = .max
            hole = true
        }
        return (end, hole)
    }
}

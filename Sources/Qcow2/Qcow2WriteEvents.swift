import BlockIO
import BlockInspect

/// What a write, zero or discard plan tells a watcher (step mode, the event log): how the
/// range mapped before the request, which copy-on-write fills the new clusters need, and the
/// summary the request's `mappingResolved` event states. Only built when events are wanted.
extension QcowMetadata {
    /// At most this many `regionBefore` events per request (a long write over a fragmented
    /// image would otherwise flood the event ring); the mapping summary counts them all.
    static let maxRegionEvents = 64

    /// How `[offset, end)` maps now, as `regionBefore` events (lock held): data this image
    /// owns (COPIED, refcount 1) is `.allocated`, data also referenced elsewhere (no COPIED
    /// flag or refcount above 1, e.g. after `qemu-img snapshot -c`) is `.shared`, unallocated
    /// ranges are `.backing` where the backing chain holds data and `.unallocated` elsewhere
    /// (reads as zeroes: a hole in the chain, past the backing file, or without one).
    func regionsBefore(_ s: inout QcowMetadataState, _ offset: UInt64, _ end: UInt64) throws(BlockError) -> [IoEventPayload] {
        typealias Region = (guest: UInt64, length: UInt64, kind: RegionKind, host: UInt64, refcount: UInt64)
        var out: [Region] = []
        func add(_ r: Region) {
            if var last = out.last, last.kind == r.kind, last.guest + last.length == r.guest, last.refcount == r.refcount,
               r.kind != .compressed, last.host == 0 && r.host == 0 || last.host + last.length == r.host {
                last.length += r.length
                out[out.count - 1] = last
            } else {
                out.append(r)
            }
        }
        let extData = header.hasExternalData, cs = header.clusterSize
        for m in try mapLocked(&s, offset: offset, end: end) {
            switch m.kind {
            case let .data(h):
                // Split at cluster boundaries: each cluster has its own COPIED flag and refcount.
                var g = m.guestOffset
                while g < m.guestOffset + m.length {
                    let n = min(m.guestOffset + m.length, (g & ~(cs - 1)) + cs) - g
                    let host = h + (g - m.guestOffset)
                    let e = try entry(&s, cluster: g >> cb)
                    let copied = extData || (e?.entry ?? 0) & Qcow2Entry.copied != 0
                    let rc = extData ? 1 : try refcount(&s, host >> cb)
                    add((g, n, copied && rc <= 1 ? .allocated : .shared, host, rc))
                    g += n
                }
            case .zero:
                add((m.guestOffset, m.length, .zero, 0, 0))
            case .backing:
                // `.backing` only where the chain holds data (qemu-img map's data at depth >= 1).
                let bEnd = s.w.backingSize
                let inside = m.guestOffset < bEnd ? min(m.length, bEnd - m.guestOffset) : 0
                if inside > 0 {
                    if let a = s.w.backingData?() {
                        for p in a.split(m.guestOffset, inside) { add((p.offset, p.length, p.data ? .backing : .unallocated, 0, 0)) }
                    } else {
                        add((m.guestOffset, inside, .backing, 0, 0))
                    }
                }
                if inside < m.length { add((m.guestOffset + inside, m.length - inside, .unallocated, 0, 0)) }
            case let .compressed(d, _):
                add((m.guestOffset, m.length, .compressed, d.hostOffset, 0))
            }
        }
        return out.prefix(QcowMetadata.maxRegionEvents).map {
            .regionBefore(guestOffset: $0.guest, length: $0.length, kind: $0.kind, hostOffset: $0.host, refcount: $0.refcount)
        }
    }

    /// The `copyOnWrite` events of one planned cluster whose new (or reused) host cluster
    /// starts at `host`: one per fill, with cluster-relative offsets `at`.
    static func fillEvents(_ fills: [(at: UInt64, len: UInt64, src: Qcow2FillSource)], clusterStart cstart: UInt64, host: UInt64,
                           oldIsShared: Bool) -> [IoEventPayload] {
        fills.map { f in
            let (source, from): (RegionKind, UInt64)
            switch f.src {
            case .zero: (source, from) = (.zero, 0)
            case let .backing(g): (source, from) = (.backing, g)
            case let .host(h): (source, from) = (oldIsShared ? .shared : .allocated, h)
            case let .compressed(d, _): (source, from) = (.compressed, d.hostOffset)
            }
            return .copyOnWrite(guestOffset: cstart + f.at, length: f.len, source: source, from: from, into: host + f.at)
        }
    }
}

extension Qcow2WritePlan {
    /// What a request's `mappingResolved` event states, from the `regionBefore` events its
    /// plan produced: how many regions the range had, their kind (`.mixed` when they differ)
    /// and the first region's host offset (0 when it has none). A plan without such events
    /// (planned without events) reads as one allocated region at the first piece's host.
    public static func mappingSummary(_ events: [IoEventPayload], pieces: [Qcow2ClusterWrite]) -> (regions: Int, kind: RegionKind, host: UInt64) {
        var n = 0, kind: RegionKind? = nil, host: UInt64 = 0
        for case let .regionBefore(_, _, k, h, _) in events {
            if n == 0 { host = h; kind = k } else if kind != k { kind = .mixed }
            n += 1
        }
        if n == 0 {
            let first = pieces.first.map { $0.hostOffset + UInt64($0.dataOffsetInSpan) } ?? 0
            return (pieces.count, .allocated, first)
        }
        return (n, kind ?? .allocated, host)
    }
}

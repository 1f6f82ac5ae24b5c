import BlockIO
import BlockInspect

/// Everything the findings are built from: the walk's use map and expected refcounts, the
/// observer's flags, runs and tables, and the image's header and tables. The findings mark
/// the clusters they account for (``Qcow2ExplainObserver/explained``) so that a later, more
/// general class (refcount runs, leaks) does not count them again.
struct Qcow2ExplainContext {
    let structure: Qcow2Structure
    let metadata: QcowMetadata
    let h: Qcow2Header
    let fileSize: UInt64
    let uses: [UInt8]
    let expected: RefcountArray
    let highest: Int
    let obs: Qcow2ExplainObserver
    let classifier: Qcow2ContentClassifier
    let referrers: [Int: [(kind: HostRegionKind, referrer: Qcow2Referrer)]]
    let check: CheckReport
    let holesTruncated: Bool
    /// Clusters read by content so far; reading stops at ``maxReads`` (said in the texts).
    var reads = 0
    static let maxReads = 16384
    /// Leaked clusters' content, by cluster, for those read (bounded by ``maxReads``).
    var leakedLooks: [Int: ExplainLooksLike] = [:]
    /// The buffer ``withCluster(_:_:)`` reads into.
    let scratch = Qcow2ExplainScratch()

    var cs: UInt64 { h.clusterSize }
    var nb: Int { obs.flags.count }
    /// Guest bytes one L2 table maps.
    var window: UInt64 { h.l2Entries * h.clusterSize }

    func isLeaked(_ c: Int) -> Bool { c < uses.count && uses[c] & 0x7f == HostRegionKind.leaked.rawValue }
    func isFree(_ c: Int) -> Bool { c < uses.count && uses[c] & 0x7f == 0 }
    func isExplained(_ c: Int) -> Bool { c < nb && obs.flags[c] & Qcow2ExplainObserver.explained != 0 }
    func explain(_ c: Int) { if c < nb { obs.flags[c] |= Qcow2ExplainObserver.explained } }

    /// Cluster `c`'s bytes (nil when unreadable or past the read budget).
    mutating func read(_ c: Int) -> [UInt8]? {
        guard reads < Self.maxReads, UInt64(c) * cs < fileSize else { return nil }
        reads += 1
        return try? metadata.file.readBytes(at: UInt64(c) * cs, count: Int(min(cs, fileSize - UInt64(c) * cs)))
    }

    /// `body` of cluster `c`'s bytes, read into a buffer every call reuses (nil when unreadable
    /// or past the read budget, as for ``read(_:)``). The scan for stranded refcount blocks
    /// reads up to 4,096 free clusters: an array for each was a tenth of explaining a small
    /// damaged image.
    mutating func withCluster<R>(_ c: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        guard reads < Self.maxReads, UInt64(c) * cs < fileSize else { return nil }
        reads += 1
        let b = scratch.buffer(Int(min(cs, fileSize - UInt64(c) * cs)))
        guard (try? metadata.file.read(into: b, at: UInt64(c) * cs)) != nil else { return nil }
        return body(UnsafeRawBufferPointer(b))
    }

    /// The guest window L1 index `i` maps, clipped to the virtual size.
    func guestWindow(_ i: Int) -> ExplainRange {
        let start = UInt64(i) * window
        return ExplainRange(start, start >= h.size ? 0 : min(window, h.size - start))
    }

    /// "the active image" or "snapshot 'name'".
    func view(_ snapshot: Int?) -> String {
        guard let s = snapshot else { return "the active image" }
        let snaps = structure.snapshots ?? []
        return s < snaps.count ? "snapshot '\(snaps[s].name)'" : "snapshot \(s)"
    }

    /// Runs of consecutive clusters as host byte ranges.
    func hostRanges(_ clusters: [Int]) -> [ExplainRange] {
        var out: [ExplainRange] = []
        for c in clusters.sorted() {
            let off = UInt64(c) * cs
            if let last = out.last, last.offset + last.length == off { out[out.count - 1].length += cs }
            else { out.append(ExplainRange(off, cs)) }
        }
        return out
    }

    /// "N clusters in R runs, 0x..-0x.., ..." for texts (the first few runs).
    func runsText(_ ranges: [ExplainRange], clusters: Int) -> String {
        let shown = ranges.prefix(4).map(\.text).joined(separator: ", ")
        let more = ranges.count > 4 ? ", ..." : ""
        return "\(clusters) cluster\(clusters == 1 ? "" : "s") in \(ranges.count) run\(ranges.count == 1 ? "" : "s") (\(shown)\(more))"
    }
}

/// One buffer, grown as needed, that ``Qcow2ExplainContext/withCluster(_:_:)`` reads every
/// cluster into.
final class Qcow2ExplainScratch {
    private var storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    /// The first `count` bytes of the buffer (its contents are whatever the last read left).
    func buffer(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if storage.count < count {
            storage.deallocate()
            storage = .allocate(byteCount: count, alignment: 8)
        }
        return UnsafeMutableRawBufferPointer(rebasing: storage[0..<count])
    }

    deinit { storage.deallocate() }
}

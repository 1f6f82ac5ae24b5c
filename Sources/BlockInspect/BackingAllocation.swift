import BlockIO

/// Where a backing chain holds data, as `qemu-img map` reports it at depth 1 and beyond:
/// the guest ranges whose extents say `"data": true`. Elsewhere below an unallocated range of
/// the top image (the chain is unallocated there, or a backing zero cluster) the guest reads
/// zeroes, and a view must say so rather than "read from the backing file".
///
/// Built once from the backing disk's map (``InspectableDisk/mapExtents()``: one pass over
/// its L2 tables or BAT, merged extents only), then read-only: safe from any thread. A
/// backing disk that cannot be mapped (QEMU 7.2 has no block status for VHDX either) counts
/// as data over its whole size, as `qemu-img map` shows it.
public struct BackingAllocation: Sendable {
    /// Sorted, disjoint guest ranges `[start, end)` holding data in the chain.
    private let data: [(start: UInt64, end: UInt64)]
    /// The backing image's guest size: past it the chain holds nothing.
    public let backingSize: UInt64

    /// The data ranges of `backing` (the disk a QCOW2 image names as its backing file).
    public init(backing: any DiskFile) throws(BlockError) {
        backingSize = backing.logicalSize
        var out: [(start: UInt64, end: UInt64)] = []
        if let ib = backing as? any InspectableDisk, ib.reportsBlockStatus {
            try ib.forEachMapExtent(detail: false) { e in
                guard e.data, e.length > 0 else { return }
                if let last = out.last, last.end == e.start { out[out.count - 1].end = e.start + e.length } else { out.append((e.start, e.start + e.length)) }
            }
        } else if backing.logicalSize > 0 {
            out = [(0, backing.logicalSize)]
        }
        data = out
    }

    /// Creates the answer from known data ranges (sorted, disjoint; tests).
    public init(dataRanges: [(start: UInt64, end: UInt64)], backingSize: UInt64) {
        data = dataRanges
        self.backingSize = backingSize
    }

    /// Whether any byte of guest range `[offset, offset+length)` holds data in the chain.
    public func holdsData(_ offset: UInt64, _ length: UInt64) -> Bool {
        let end = offset + max(length, 1)
        var lo = 0, hi = data.count
        while lo < hi {   // the first range ending after `offset`
            let mid = (lo + hi) / 2
            if data[mid].end <= offset { lo = mid + 1 } else { hi = mid }
        }
        return lo < data.count && data[lo].start < end
    }

    /// The pieces of `[offset, offset+length)` in order, each with whether the chain holds
    /// data there (at most one piece per data range it touches, plus the gaps).
    public func split(_ offset: UInt64, _ length: UInt64) -> [(offset: UInt64, length: UInt64, data: Bool)] {
        var out: [(offset: UInt64, length: UInt64, data: Bool)] = []
        var pos = offset
        let end = offset + length
        for r in data where r.end > pos && r.start < end {
            if r.start > pos { out.append((pos, r.start - pos, false)) }
            let s = max(r.start, pos), t = min(r.end, end)
            out.append((s, t - s, true))
            pos = t
        }
        if pos < end { out.append((pos, end - pos, false)) }
        return out
    }
}

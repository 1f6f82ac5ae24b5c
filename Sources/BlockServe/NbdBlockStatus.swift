import BlockIO
import Synchronization

/// One `base:allocation` extent: a length and NBD_STATE_HOLE / NBD_STATE_ZERO bits.
package struct NbdExtent: Sendable, Equatable {
    /// Length in bytes (fits the wire's u32: extents are clipped to the request length).
    package var length: UInt32
    /// NBD_STATE_HOLE (1) and NBD_STATE_ZERO (2) bits.
    package var flags: UInt32
}

/// `base:allocation` answers from the format's own map (`InspectableDisk.mapExtents`, the
/// same extents `blockscope map` prints), shared by every connection of an export.
///
/// The flags follow qemu-nbd: NBD_STATE_HOLE when the chain stores no data for the range,
/// NBD_STATE_ZERO when it reads as zeroes; adjacent extents with equal flags merge. The
/// whole-disk map is computed once and cached; every write, trim or zero request marks it
/// stale (``beginMutation()`` before submitting, ``endMutation()`` after completing), and
/// while any such request is in flight each query recomputes instead of caching.
package final class NbdAllocationMap: Sendable {
    private struct Cache {
        var starts: [UInt64] = []
        var lengths: [UInt64] = []
        var flags: [UInt32] = []
        var generation: UInt64 = .max
    }
    private let disk: any DiskFile
    private let cache = Mutex(Cache())
    private let generation = Atomic<UInt64>(0)
    private let mutating = Atomic<Int>(0)

    /// Creates the map of `disk` (nothing is computed until the first query).
    package init(disk: any DiskFile) { self.disk = disk }

    /// Marks the map stale because a modifying request is about to be submitted.
    package func beginMutation() {
        mutating.add(1, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
    }

    /// Marks the map stale because a modifying request has completed.
    package func endMutation() {
        generation.add(1, ordering: .sequentiallyConsistent)
        mutating.subtract(1, ordering: .sequentiallyConsistent)
    }

    /// Extents covering `[offset, offset+length)` from the start, at most `maxCount` of them
    /// (the last one clipped to the range). Needs `offset + length` within the disk.
    package func extents(offset: UInt64, length: UInt32, maxCount: Int) throws(BlockError) -> [NbdExtent] {
        let gen = generation.load(ordering: .sequentiallyConsistent)
        let busy = mutating.load(ordering: .sequentiallyConsistent) > 0
        var snapshot: Cache? = cache.withLock { c in c.generation == gen && !busy ? c : nil }
        if snapshot == nil {
            var fresh = try compute()
            if !busy && generation.load(ordering: .sequentiallyConsistent) == gen {
                fresh.generation = gen
                let f = fresh
                cache.withLock { $0 = f }
            }
            snapshot = fresh
        }
        guard let c = snapshot else { return [] }
        return Self.slice(c.starts, c.lengths, c.flags, offset: offset, length: UInt64(length), maxCount: maxCount)
    }

    private static func slice(_ starts: [UInt64], _ lengths: [UInt64], _ flags: [UInt32], offset: UInt64, length: UInt64, maxCount: Int) -> [NbdExtent] {
        // Binary search for the extent containing `offset`.
        var lo = 0, hi = starts.count
        while lo + 1 < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= offset { lo = mid } else { hi = mid }
        }
        var out: [NbdExtent] = []
        var pos = offset
        let end = offset + length
        var i = lo
        while pos < end && i < starts.count && out.count < maxCount {
            let eEnd = starts[i] + lengths[i]
            if eEnd > pos {
                let t = min(eEnd, end)
                out.append(NbdExtent(length: UInt32(t - pos), flags: flags[i]))
                pos = t
            }
            i += 1
        }
        return out
    }

    private func compute() throws(BlockError) -> Cache {
        var c = Cache()
        func push(_ start: UInt64, _ len: UInt64, _ f: UInt32) {
            if len == 0 { return }
            if let last = c.flags.last, last == f, c.starts[c.starts.count - 1] + c.lengths[c.lengths.count - 1] == start {
                c.lengths[c.lengths.count - 1] += len
            } else {
                c.starts.append(start); c.lengths.append(len); c.flags.append(f)
            }
        }
        guard let inspectable = disk as? any InspectableDisk else {
            push(0, disk.logicalSize, 0)
            return c
        }
        var pos: UInt64 = 0
        for e in try inspectable.mapExtents() where e.length > 0 {
            if e.start > pos { push(pos, e.start - pos, 0) }
            let f = (e.data ? 0 : Nbd.stateHole) | (e.zero ? Nbd.stateZero : 0)
            push(e.start, e.length, f)
            pos = e.start + e.length
        }
        if pos < disk.logicalSize { push(pos, disk.logicalSize - pos, 0) }
        return c
    }
}

import BlockIO

/// The holes of a host file (SEEK_DATA/SEEK_HOLE), for `explain`'s space accounting:
/// sorted hole ranges, and per unit whether the unit is a hole throughout. Bounded: after
/// ``maxExtents`` hole ranges the rest of the file counts as data (``truncated``).
package struct HostHoles {
    /// Hole ranges `[start, end)`, sorted, inside the file.
    package private(set) var holes: [(start: UInt64, end: UInt64)] = []
    /// Whether the scan stopped at ``maxExtents``.
    package private(set) var truncated = false
    package static let maxExtents = 1 << 22

    /// Scans `file` up to `size`.
    package init(file: SystemFile, size: UInt64) {
        var off: UInt64 = 0
        while off < size {
            guard let d = file.nextData(from: off) else { holes.append((off, size)); break }
            if d > off { holes.append((off, min(d, size))) }
            if d >= size { break }
            guard let hEnd = file.nextHole(from: d) else { break }
            off = hEnd
            if holes.count >= Self.maxExtents { truncated = true; break }
        }
    }

    /// Hole bytes inside `[start, end)`.
    package func bytes(_ start: UInt64, _ end: UInt64) -> UInt64 {
        var lo = 0, hi = holes.count
        while lo < hi { let m = (lo + hi) / 2; if holes[m].end <= start { lo = m + 1 } else { hi = m } }
        var total: UInt64 = 0
        var i = lo
        while i < holes.count && holes[i].start < end {
            total += min(end, holes[i].end) - max(start, holes[i].start)
            i += 1
        }
        return total
    }

    /// One bit per unit: set when the unit `[i*unit, min((i+1)*unit, size))` is a hole throughout.
    package struct ClusterBits {
        private var bits: [UInt64]
        package init(count: Int) { bits = [UInt64](repeating: 0, count: (count + 63) / 64) }
        package subscript(i: Int) -> Bool {
            get { i >= 0 && i / 64 < bits.count && bits[i / 64] >> UInt64(i % 64) & 1 != 0 }
            set { if newValue { bits[i / 64] |= 1 << UInt64(i % 64) } else { bits[i / 64] &= ~(1 << UInt64(i % 64)) } }
        }
    }

    /// The units of `unit` bytes that are holes throughout, for a file of `size` bytes.
    package func wholeUnits(unit: UInt64, size: UInt64) -> ClusterBits {
        let n = Int((size + unit - 1) / unit)
        var b = ClusterBits(count: n)
        for hole in holes {
            var first = (hole.start + unit - 1) / unit
            let endUnit = hole.end >= size ? UInt64(n) : hole.end / unit
            while first < endUnit { b[Int(first)] = true; first += 1 }
        }
        return b
    }
}

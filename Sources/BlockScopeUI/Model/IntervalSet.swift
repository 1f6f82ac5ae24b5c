/// A set of byte ranges, kept sorted and merged (the ranges written this session).
package struct IntervalSet: Sendable, Equatable {
    /// Sorted, non-overlapping, non-adjacent half-open ranges.
    package private(set) var ranges: [Range<UInt64>] = []

    /// Creates an empty set.
    package init() {}

    /// Adds `[start, start + length)`: a binary search finds the ranges it touches, which
    /// merge into one (O(log n) plus the array move).
    package mutating func insert(_ start: UInt64, length: UInt64) {
        guard length > 0 else { return }
        var lo = start, hi = start &+ length
        if hi < lo { hi = .max }
        // First range that ends at or after lo (adjacent ranges merge too).
        var a = 0, b = ranges.count
        while a < b {
            let m = (a + b) / 2
            if ranges[m].upperBound < lo { a = m + 1 } else { b = m }
        }
        var j = a
        while j < ranges.count && ranges[j].lowerBound <= hi {
            lo = min(lo, ranges[j].lowerBound)
            hi = max(hi, ranges[j].upperBound)
            j += 1
        }
        ranges.replaceSubrange(a..<j, with: [lo..<hi])
    }

    /// Whether any byte of `[start, start + length)` is in the set.
    package func intersects(_ start: UInt64, length: UInt64) -> Bool {
        let end = start &+ length
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound <= start { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].lowerBound < end
    }

    /// Total bytes covered.
    package var count: UInt64 { ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) } }
}

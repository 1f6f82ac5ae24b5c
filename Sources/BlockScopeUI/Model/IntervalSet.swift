/// A set of byte ranges, kept sorted and merged (the ranges written this session).
public struct IntervalSet: Sendable, Equatable {
    /// Sorted, non-overlapping, non-adjacent half-open ranges.
    public private(set) var ranges: [Range<UInt64>] = []

    /// Creates an empty set.
    public init() {}

    /// Adds `[start, start + length)`.
    public mutating func insert(_ start: UInt64, length: UInt64) {
        guard length > 0 else { return }
        var lo = start, hi = start &+ length
        if hi < lo { hi = .max }
        var out: [Range<UInt64>] = []
        out.reserveCapacity(ranges.count + 1)
        var placed = false
        for r in ranges {
            if r.upperBound < lo { out.append(r) }
            else if r.lowerBound > hi {
                if !placed { out.append(lo..<hi); placed = true }
                out.append(r)
            } else {
                lo = min(lo, r.lowerBound); hi = max(hi, r.upperBound)
            }
        }
        if !placed { out.append(lo..<hi) }
        ranges = out
    }

    /// Whether any byte of `[start, start + length)` is in the set.
    public func intersects(_ start: UInt64, length: UInt64) -> Bool {
        let end = start &+ length
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound <= start { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].lowerBound < end
    }

    /// Total bytes covered.
    public var count: UInt64 { ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) } }
}

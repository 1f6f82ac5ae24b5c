/// A log-linear latency histogram: 8 linear buckets per power of two of nanoseconds, so a
/// percentile read from it is within about 6% of the true value (exact below 16 ns).
///
/// Recording is one array increment (the 512 buckets are allocated at the first record),
/// cheap enough for a queue's completion path under its registry lock.
package struct LatencyHistogram: Sendable, Equatable {
    /// Latencies recorded.
    public private(set) var count: UInt64 = 0
    /// The largest latency recorded, in ns.
    public private(set) var maxNs: UInt64 = 0
    private var buckets: [UInt64] = []
    /// Buckets: 8 per power of two up to 2^63 ns.
    package static let size = 64 * 8

    /// Creates an empty histogram.
    public init() {}

    /// The bucket of a latency of `ns` nanoseconds.
    package static func bucket(_ ns: UInt64) -> Int {
        if ns < 8 { return Int(ns) }
        let p = 63 - ns.leadingZeroBitCount
        let step = (ns >> UInt64(p - 3)) & 7
        return min(size - 1, p * 8 + Int(step) - 16)
    }

    /// The smallest latency bucket `b` holds.
    package static func lowerBound(_ b: Int) -> UInt64 {
        if b < 8 { return UInt64(b) }
        let p = (b + 16) / 8, step = (b + 16) % 8
        return UInt64(8 + step) << UInt64(p - 3)
    }

    /// Records one latency of `ns` nanoseconds.
    @inline(__always)
    public mutating func record(_ ns: UInt64) {
        if buckets.isEmpty { buckets = [UInt64](repeating: 0, count: Self.size) }
        buckets[Self.bucket(ns)] &+= 1
        count &+= 1
        if ns > maxNs { maxNs = ns }
    }

    /// Adds every latency of `other`.
    public mutating func merge(_ other: LatencyHistogram) {
        guard other.count > 0 else { return }
        if buckets.isEmpty { buckets = [UInt64](repeating: 0, count: Self.size) }
        for i in 0..<Self.size { buckets[i] &+= other.buckets[i] }
        count &+= other.count
        maxNs = max(maxNs, other.maxNs)
    }

    /// The latency below which `p` percent of the recorded ones lie (the middle of the
    /// bucket that holds it, never above ``maxNs``), or nil when nothing was recorded.
    public func percentile(_ p: Double) -> UInt64? {
        guard count > 0 else { return nil }
        let rank = max(1, UInt64((Double(count) * p / 100).rounded(.up)))
        var seen: UInt64 = 0
        for (b, n) in buckets.enumerated() where n > 0 {
            seen += n
            if seen >= rank {
                let lo = Self.lowerBound(b), hi = b + 1 < Self.size ? Self.lowerBound(b + 1) : lo
                return min(maxNs, lo + (hi - lo) / 2)
            }
        }
        return maxNs
    }
}

extension LatencyHistogram {
    /// The latencies recorded since `earlier` was copied from this same histogram (its
    /// largest value: the top of the highest bucket left, never above ``maxNs``).
    public func since(_ earlier: LatencyHistogram) -> LatencyHistogram {
        guard earlier.count > 0 else { return self }
        var d = LatencyHistogram()
        guard count > earlier.count else { return d }
        d.buckets = [UInt64](repeating: 0, count: Self.size)
        var top = 0
        for i in 0..<Self.size {
            let n = buckets[i] &- earlier.buckets[i]
            d.buckets[i] = n
            if n > 0 { top = i }
        }
        d.count = count &- earlier.count
        d.maxNs = min(maxNs, top + 1 < Self.size ? Self.lowerBound(top + 1) - 1 : maxNs)
        return d
    }
}

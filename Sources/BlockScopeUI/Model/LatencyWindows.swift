import BlockCore

/// The time window the Completions view states its figures over.
package enum StatsWindow: String, Sendable, CaseIterable {
    /// The completions of the last second.
    case lastSecond = "last 1 s"
    /// Everything since the job (or the session, without a job) started.
    case whole = "whole job"
}

/// Which side of a read/write split a completion counts on.
package enum Direction: Int, Sendable, CaseIterable {
    /// Reads.
    case read
    /// Writes, zeroes and discards.
    case write
    /// Flushes.
    case sync

    /// The direction of a guest operation.
    package init(_ op: GuestOp) {
        switch op {
        case .read: self = .read
        case .write, .zero, .discard: self = .write
        case .fsync: self = .sync
        }
    }
}

/// Completion latencies over two named windows, split by direction: the last second's
/// samples (exact values, at most 16384 kept) and the whole run's log-linear histogram
/// (8 buckets per power of two: a percentile is within 9% of the true value).
///
/// Fed from completion events, which the stream may drop under load: the figures are from
/// the completions seen (``seen``), the rates in the view come from the engine's counters.
package struct LatencyWindows {
    struct Sample: Sendable { var time: UInt64; var ns: UInt64; var dir: Direction }
    private var recent = Ring<Sample>(capacity: 16384)
    /// Histogram per direction: bucket index from ``bucket(_:)``.
    private(set) var histograms = [[UInt64]](repeating: [UInt64](repeating: 0, count: LatencyWindows.buckets), count: 3)
    /// Completions seen per direction since ``wholeStart``.
    package private(set) var seen = [UInt64](repeating: 0, count: 3)
    /// Largest latency seen per direction since ``wholeStart``.
    package private(set) var maxNs = [UInt64](repeating: 0, count: 3)
    /// When the whole window began (monotonic ns; 0 = at the first completion).
    package private(set) var wholeStart: UInt64 = 0
    static let buckets = 64 * 8

    /// Creates empty windows.
    package init() {}

    /// The histogram bucket of a latency: 8 linear steps per power of two of nanoseconds.
    static func bucket(_ ns: UInt64) -> Int {
        if ns < 8 { return Int(ns) }
        let p = 63 - ns.leadingZeroBitCount          // 2^p <= ns
        let step = (ns >> UInt64(p - 3)) & 7          // the next three bits
        return min(buckets - 1, p * 8 + Int(step) - 16)
    }

    /// The smallest latency of bucket `b` and the first of the next.
    static func bounds(_ b: Int) -> (UInt64, UInt64) {
        if b < 8 { return (UInt64(b), UInt64(b + 1)) }
        let p = (b + 16) / 8, step = UInt64((b + 16) % 8)
        let lo = (UInt64(1) << UInt64(p)) + step << UInt64(p - 3)
        let (hi, over) = lo.addingReportingOverflow(UInt64(1) << UInt64(p - 3))
        return (lo, over ? .max : hi)
    }

    /// Counts one completion.
    mutating func record(time: UInt64, latencyNs: UInt64, op: GuestOp) {
        let d = Direction(op)
        if wholeStart == 0 { wholeStart = time }
        recent.append(Sample(time: time, ns: latencyNs, dir: d))
        histograms[d.rawValue][LatencyWindows.bucket(latencyNs)] += 1
        seen[d.rawValue] += 1
        maxNs[d.rawValue] = max(maxNs[d.rawValue], latencyNs)
    }

    /// Forgets the whole window (a job started); the last second's samples stay.
    mutating func resetWhole(now: UInt64) {
        histograms = [[UInt64]](repeating: [UInt64](repeating: 0, count: LatencyWindows.buckets), count: 3)
        seen = [0, 0, 0]
        maxNs = [0, 0, 0]
        wholeStart = now
    }

    /// The latencies of `window` for `dirs`, as a summary.
    package func summary(_ window: StatsWindow, _ dirs: Set<Direction>, now: UInt64 = monotonicNanos()) -> LatencySummary {
        switch window {
        case .lastSecond:
            let from = now > 1_000_000_000 ? now - 1_000_000_000 : 0
            let v = recent.elements.filter { $0.time >= from && dirs.contains($0.dir) }.map(\.ns).sorted()
            func pct(_ p: Double) -> UInt64? {
                v.isEmpty ? nil : v[min(v.count - 1, max(0, Int((p / 100 * Double(v.count)).rounded(.up)) - 1))]
            }
            var h = [UInt64](repeating: 0, count: LatencyWindows.buckets)
            for ns in v { h[LatencyWindows.bucket(ns)] += 1 }
            return LatencySummary(count: UInt64(v.count), p50: pct(50), p99: pct(99), p999: pct(99.9), max: v.last, histogram: h, exact: true)
        case .whole:
            var h = [UInt64](repeating: 0, count: LatencyWindows.buckets)
            var n: UInt64 = 0, mx: UInt64 = 0
            for d in dirs {
                for (i, c) in histograms[d.rawValue].enumerated() { h[i] += c }
                n += seen[d.rawValue]
                mx = max(mx, maxNs[d.rawValue])
            }
            func pct(_ p: Double) -> UInt64? {
                if n == 0 { return nil }
                let target = max(1, UInt64((p / 100 * Double(n)).rounded(.up)))
                var acc: UInt64 = 0
                for (i, c) in h.enumerated() {
                    acc += c
                    // The bucket's upper bound, but never above the largest value seen.
                    if acc >= target { return min(mx, LatencyWindows.bounds(i).1 - 1) }
                }
                return mx
            }
            return LatencySummary(count: n, p50: pct(50), p99: pct(99), p999: pct(99.9), max: n == 0 ? nil : mx, histogram: h, exact: false)
        }
    }
}

/// Percentiles, maximum and histogram of one window and direction set.
package struct LatencySummary: Sendable {
    /// Completions counted.
    package var count: UInt64
    /// Percentiles and maximum in ns (nil without completions).
    package var p50: UInt64?, p99: UInt64?, p999: UInt64?, max: UInt64?
    /// Counts per ``LatencyWindows`` bucket.
    package var histogram: [UInt64]
    /// Whether the percentiles are exact values (the last second) or histogram bounds.
    package var exact: Bool

    /// The histogram folded into power-of-two rows: (upper bound in ns, count), lowest first,
    /// from the first non-empty row to the last.
    package var octaves: [(upper: UInt64, count: UInt64)] {
        guard let first = histogram.firstIndex(where: { $0 > 0 }), let last = histogram.lastIndex(where: { $0 > 0 }) else { return [] }
        var rows: [(upper: UInt64, count: UInt64)] = []
        for i in first...last {
            let lo = LatencyWindows.bounds(i).0
            let p = lo == 0 ? 0 : 63 - lo.leadingZeroBitCount        // 2^p <= lo
            let upper: UInt64 = p >= 63 ? .max : UInt64(1) << UInt64(p + 1)
            if let l = rows.last, l.upper == upper { rows[rows.count - 1].count += histogram[i] } else { rows.append((upper, histogram[i])) }
        }
        return rows
    }
}

import BlockIO
import Foundation
import Synchronization

/// When a rate-limited job may issue its next request, per direction (fio's `rate`,
/// `rate_iops`, `rate_process`).
///
/// Each direction has a due time that advances by the request's share of a second (bytes
/// over `rate`, or 1/`rate_iops`, whichever is longer); with `rate_process=poisson` the gap
/// is drawn from an exponential distribution with that mean.
struct RatePacer {
    private var due: [UInt64] = [0, 0, 0]
    private let bytesPerSec: [UInt64]
    private let iops: [UInt64]
    private let poisson: Bool
    private var rng: Xorshift64Star
    let active: Bool

    init(job: FioJob, seed: UInt64) {
        bytesPerSec = job.rateBytes
        iops = job.rateIops
        poisson = job.rateProcess == .poisson
        rng = Xorshift64Star(seed: seed ^ 0xA5A5_5A5A)
        active = job.isRateLimited
    }

    /// Nanoseconds until a request of `length` bytes in direction `dir` may go (0: now).
    func wait(_ dir: Int, now: UInt64) -> UInt64 { due[dir] > now ? due[dir] - now : 0 }

    /// Books a request of `length` bytes in direction `dir` issued at `now`.
    mutating func issued(_ dir: Int, length: UInt64, now: UInt64) {
        var gap = 0.0
        if bytesPerSec[dir] > 0 { gap = Double(length) * 1e9 / Double(bytesPerSec[dir]) }
        if iops[dir] > 0 { gap = max(gap, 1e9 / Double(iops[dir])) }
        if gap == 0 { return }
        if poisson { gap *= -log(max(Double(rng.next() >> 11) * 0x1p-53, 1e-12)) }
        // Never bank more than one gap of idle time (fio does not let a late job burst).
        due[dir] = max(due[dir], now &- UInt64(gap)) &+ UInt64(gap)
    }
}

/// fio's token flow control: jobs with the same `flow_id` keep their request counts in the
/// ratio of their `flow` weights; a job ahead of the slowest sleeps `flow_sleep`.
final class FlowGroups: Sendable {
    private let state = Mutex<[Int: [Int: Double]]>([:])

    /// Registers `member` of `group` (before any thread starts).
    func join(group: Int, member: Int) {
        state.withLock { $0[group, default: [:]][member] = 0 }
    }

    /// Removes a finished member, so the others do not wait for it.
    func leave(group: Int, member: Int) {
        _ = state.withLock { $0[group]?.removeValue(forKey: member) }
    }

    /// Records `ios` more requests of `member` with weight `weight`; returns whether the
    /// member is now ahead of the slowest member of its group by more than one request.
    func advance(group: Int, member: Int, weight: Int, ios: Int) -> Bool {
        state.withLock { s in
            guard var g = s[group], let mine = g[member] else { return false }
            let now = mine + Double(ios) / Double(max(1, weight))
            g[member] = now
            s[group] = g
            let slowest = g.values.min() ?? now
            return now - slowest > 1.0 / Double(max(1, weight))
        }
    }

    /// Whether `member` is still ahead of the slowest member.
    func isAhead(group: Int, member: Int, weight: Int) -> Bool {
        state.withLock { s in
            guard let g = s[group], let mine = g[member] else { return false }
            return mine - (g.values.min() ?? mine) > 1.0 / Double(max(1, weight))
        }
    }
}

/// fio's latency-target search: the deepest queue (1...iodepth) whose completion latencies
/// meet `latency_target` at `latency_percentile` over each `latency_window`.
///
/// Starts at depth 1 and bisects: a window that meets the target raises the lower bound,
/// one that misses lowers the upper bound. O(1) per completion (it counts misses).
struct LatencyTargetSearch {
    let targetNs: UInt64
    let windowNs: UInt64
    let percentile: Double
    private(set) var depth = 1
    private var low = 1
    private var high: Int
    private var windowStart: UInt64 = 0
    private var ios: UInt64 = 0
    private var misses: UInt64 = 0
    /// Windows measured.
    private(set) var windows = 0

    init(job: FioJob, maxDepth: Int) {
        targetNs = job.latencyTargetNs
        windowNs = job.latencyWindowNs > 0 ? job.latencyWindowNs : 1_000_000_000
        percentile = job.latencyPercentile
        high = maxDepth
    }

    /// Records one completion; may change ``depth`` at the end of a window.
    mutating func record(latencyNs: UInt64, now: UInt64) {
        if windowStart == 0 { windowStart = now }
        ios += 1
        if latencyNs > targetNs { misses += 1 }
        guard now - windowStart >= windowNs else { return }
        let allowed = Double(ios) * (100 - percentile) / 100
        if Double(misses) <= allowed {
            low = depth
        } else {
            high = max(low, depth - 1)
            if depth == low { low = max(1, low / 2) }
        }
        depth = low >= high ? low : (low + high + 1) / 2
        windows += 1
        windowStart = now; ios = 0; misses = 0
    }
}

/// fio's steady-state check: one sample a second after the ramp; steady when the last
/// `ss_dur` of samples deviate from their mean (or slope) by no more than the limit.
struct SteadyStateMonitor {
    let spec: SteadyStateSpec
    private var samples: [Double] = []
    private var lastTime: UInt64 = 0
    private var lastIos: UInt64 = 0
    private var lastBytes: UInt64 = 0
    private var lastLatSum: Double = 0
    private let window: Int
    /// Whether steady state was reached.
    private(set) var attained = false

    init(spec: SteadyStateSpec) {
        self.spec = spec
        window = max(2, Int(spec.durationNs / 1_000_000_000))
    }

    /// Feeds the job's running totals; returns true once steady (the job should end).
    mutating func check(now: UInt64, start: UInt64, ios: UInt64, bytes: UInt64, latencySumNs: Double) -> Bool {
        if now < start + spec.rampNs { return false }
        if lastTime == 0 { lastTime = now; lastIos = ios; lastBytes = bytes; lastLatSum = latencySumNs; return false }
        guard now - lastTime >= 1_000_000_000 else { return false }
        let secs = Double(now - lastTime) / 1e9
        let dIos = Double(ios - lastIos)
        let v: Double
        switch spec.metric {
        case .iops: v = dIos / secs
        case .bw: v = Double(bytes - lastBytes) / secs
        case .lat: v = dIos > 0 ? (latencySumNs - lastLatSum) / dIos : 0
        }
        lastTime = now; lastIos = ios; lastBytes = bytes; lastLatSum = latencySumNs
        samples.append(v)
        if samples.count > window { samples.removeFirst(samples.count - window) }
        guard samples.count == window else { return false }
        let mean = samples.reduce(0, +) / Double(window)
        let measure: Double
        if spec.slope {
            let xm = Double(window - 1) / 2
            var num = 0.0, den = 0.0
            for (i, y) in samples.enumerated() { num += (Double(i) - xm) * (y - mean); den += (Double(i) - xm) * (Double(i) - xm) }
            measure = abs(num / max(den, 1e-12))
        } else {
            measure = samples.map { abs($0 - mean) }.max() ?? 0
        }
        let limit = spec.percent ? spec.limit / 100 * mean : spec.limit
        if measure <= limit { attained = true }
        return attained
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// fio's random map: one bit per block of a job's region, so that random I/O touches each
/// block once per loop (unless `norandommap`).
///
/// Two levels: a bit per block and a bit per fully used 64-block word, so finding the next
/// free block from a drawn one scans at most 64 summary words per 4096 * 64 blocks.
/// Memory is blocks/8 bytes (32 KiB for 1 GiB of 4 KiB blocks).
package struct RandomMap: Sendable {
    /// Number of blocks.
    public let blocks: UInt64
    private var words: [UInt64]
    private var full: [UInt64]
    /// Blocks marked used.
    public private(set) var used: UInt64 = 0

    /// Creates an empty map of `blocks` blocks.
    public init(blocks: UInt64) {
        self.blocks = blocks
        let n = Int((blocks + 63) / 64)
        words = [UInt64](repeating: 0, count: n)
        full = [UInt64](repeating: 0, count: (n + 63) / 64)
    }

    /// Whether every block is used.
    public var isFull: Bool { used >= blocks }

    /// Marks every block free again (a new loop).
    public mutating func reset() {
        for i in words.indices { words[i] = 0 }
        for i in full.indices { full[i] = 0 }
        used = 0
    }

    /// Whether block `b` is used.
    @inline(__always)
    public func isUsed(_ b: UInt64) -> Bool { words[Int(b >> 6)] & (1 << (b & 63)) != 0 }

    /// Marks blocks `b ..< b + count` used (those past the end are ignored).
    public mutating func mark(_ b: UInt64, count: UInt64 = 1) {
        var i = b
        let end = min(blocks, b + count)
        while i < end {
            let w = Int(i >> 6)
            let bit: UInt64 = 1 << (i & 63)
            if words[w] & bit == 0 {
                words[w] |= bit
                used += 1
                if isWordFull(w) { full[w >> 6] |= 1 << UInt64(w & 63) }
            }
            i += 1
        }
    }

    @inline(__always)
    private func isWordFull(_ w: Int) -> Bool {
        let last = w == words.count - 1 && blocks % 64 != 0
        return last ? words[w] == (UInt64(1) << (blocks % 64)) - 1 : words[w] == ~0
    }

    /// Free blocks in a row from `b`, counting at most `limit` (0 when `b` is used).
    public func freeRun(from b: UInt64, limit: UInt64) -> UInt64 {
        var n: UInt64 = 0
        while n < limit && b + n < blocks && !isUsed(b + n) { n += 1 }
        return n
    }

    /// The first free block at or after `b`, wrapping to the start; nil when the map is full.
    public func nextFree(from b: UInt64) -> UInt64? {
        if isFull { return nil }
        if !isUsed(b) { return b }
        let n = words.count
        var w = Int(b >> 6)
        // The rest of the drawn block's word first.
        let rest = ~words[w] & (~UInt64(0) << (b & 63))
        if rest != 0, let f = candidate(w, rest) { return f }
        for _ in 0..<(n + 64) {
            w = (w + 1) % n
            // Skip 64 full words at a time through the summary.
            if w & 63 == 0, full[w >> 6] == ~0, w + 64 <= n { w += 63; continue }
            if full[w >> 6] & (1 << UInt64(w & 63)) != 0 { continue }
            if let f = candidate(w, ~words[w]) { return f }
        }
        return nil
    }

    @inline(__always)
    private func candidate(_ w: Int, _ freeBits: UInt64) -> UInt64? {
        guard freeBits != 0 else { return nil }
        let f = UInt64(w) * 64 + UInt64(freeBits.trailingZeroBitCount)
        return f < blocks ? f : nil
    }
}

/// Draws block indices in `0..<blocks` from one of fio's distributions, O(1) per draw.
///
/// Zipf uses Gray et al.'s closed form (the method fio uses) over at most 10^7 ranks, whose
/// zeta sum is computed once; zipf and pareto ranks are scattered over the region by a hash,
/// so the hottest blocks are not all at the start; normal averages 12 uniform draws around
/// the middle and adds a uniform jitter of the given deviation, as fio does.
package struct OffsetSampler: Sendable {
    enum Model: Sendable {
        case uniform
        case zipf(theta: Double, alpha: Double, zetan: Double, eta: Double, ranks: UInt64)
        case pareto(power: Double)
        case normal(jitter: UInt64)
        case zoned(cumulative: [UInt64], starts: [UInt64], lengths: [UInt64])
    }
    let model: Model
    /// Number of blocks drawn from.
    public let blocks: UInt64
    private let scatter: UInt64

    /// Ranks zipf's zeta sum is computed over (fio's cap).
    static let maxZipfRanks: UInt64 = 10_000_000

    /// A sampler over `blocks` blocks of `blockSize` bytes (for `zoned_abs`), scattering with `seed`.
    public init(_ d: RandomDistribution, blocks: UInt64, blockSize: UInt64, seed: UInt64) {
        self.blocks = max(1, blocks)
        scatter = seed | 1
        switch d {
        case .random:
            model = .uniform
        case .zipf(let theta):
            let n = min(self.blocks, Self.maxZipfRanks)
            var zetan = 0.0
            var i: UInt64 = 1
            while i <= n { zetan += pow(Double(i), -theta); i += 1 }
            let zeta2 = 1 + pow(2, -theta)
            let eta = (1 - pow(2 / Double(n), 1 - theta)) / (1 - zeta2 / zetan)
            model = .zipf(theta: theta, alpha: 1 / (1 - theta), zetan: zetan, eta: eta, ranks: n)
        case .pareto(let h):
            model = .pareto(power: log(h) / log(1 - h))
        case .normal(let dev):
            model = .normal(jitter: min(self.blocks / 2, UInt64((Double(self.blocks) * dev / 100).rounded(.up))))
        case .zoned(let zones), .zonedAbs(let zones):
            var cumulative: [UInt64] = [], starts: [UInt64] = [], lengths: [UInt64] = []
            var acc: UInt64 = 0, at: UInt64 = 0
            let absolute: Bool
            if case .zonedAbs = d { absolute = true } else { absolute = false }
            for z in zones {
                var len = absolute ? z.size / max(1, blockSize) : self.blocks * z.size / 100
                if at >= self.blocks { break }
                len = max(1, min(len, self.blocks - at))
                acc += UInt64(z.accessPercent)
                cumulative.append(acc); starts.append(at); lengths.append(len)
                at += len
            }
            if cumulative.isEmpty { cumulative = [100]; starts = [0]; lengths = [self.blocks] }
            cumulative[cumulative.count - 1] = max(cumulative[cumulative.count - 1], 100)
            model = .zoned(cumulative: cumulative, starts: starts, lengths: lengths)
        }
    }

    /// The next block index.
    @inline(__always)
    public func draw(_ rng: inout Xorshift64Star) -> UInt64 {
        switch model {
        case .uniform:
            return rng.below(blocks)
        case let .zipf(theta, alpha, zetan, eta, ranks):
            let u = unit(&rng)
            let uz = u * zetan
            var rank: UInt64
            if uz < 1 { rank = 0 }
            else if uz < 1 + pow(0.5, theta) { rank = 1 }
            else { rank = UInt64(Double(ranks) * pow(eta * u - eta + 1, alpha)) }
            rank = min(rank, ranks - 1)
            return spread(rank)
        case let .pareto(power):
            let rank = UInt64(Double(blocks - 1) * pow(unit(&rng), power))
            return spread(min(rank, blocks - 1))
        case let .normal(jitter):
            var sum: UInt64 = 0
            for _ in 0..<12 { sum += rng.below(blocks + 1) }
            var v = Int64((sum + 11) / 12)
            if jitter > 0 { v += Int64(rng.below(jitter)) - Int64(jitter / 2) }
            return UInt64(min(max(v, 0), Int64(blocks - 1)))
        case let .zoned(cumulative, starts, lengths):
            let pick = rng.below(100)
            var z = 0
            while z < cumulative.count - 1 && pick >= cumulative[z] { z += 1 }
            return starts[z] + rng.below(lengths[z])
        }
    }

    @inline(__always)
    private func unit(_ rng: inout Xorshift64Star) -> Double { Double(rng.next() >> 11) * 0x1p-53 }

    /// Scatters a rank over the blocks (a multiplicative hash, then modulo).
    @inline(__always)
    private func spread(_ rank: UInt64) -> UInt64 {
        var h = (rank &+ 1) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        h = h &* scatter
        h ^= h >> 32
        return h % blocks
    }
}

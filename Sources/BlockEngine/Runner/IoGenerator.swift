import BlockCore

/// A seeded xorshift64* pseudo-random generator: fast, reproducible, no system calls.
///
/// Seeded through splitmix64 so that nearby seeds (job 0, 1, 2...) give unrelated
/// streams. Never use `SystemRandomNumberGenerator` on the hot path: it makes a
/// `getrandom` call per value.
public struct Xorshift64Star: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from `seed` (any value, zero included).
    public init(seed: UInt64) {
        var z = seed &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z = z ^ (z >> 31)
        state = z == 0 ? 0x2545_F491_4F6C_DD1D : z
    }

    /// The next 64 random bits.
    @inline(__always)
    public mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// A value in `0..<bound` (bound > 0), by multiply-shift (no division).
    @inline(__always)
    public mutating func below(_ bound: UInt64) -> UInt64 {
        bound.multipliedFullWidth(by: next()).high
    }
}

/// What a planned request does.
public enum PlannedOp: UInt8, Sendable {
    /// A read.
    case read
    /// A write.
    case write
    /// A discard.
    case trim
    /// A flush.
    case fsync
}

/// One request a job thread will issue: operation, guest range and the seed of its data.
public struct PlannedIo: Sendable, Equatable {
    /// The operation.
    public var op: PlannedOp
    /// Guest offset in bytes.
    public var offset: UInt64
    /// Length in bytes (0 for a flush).
    public var length: UInt64
    /// Seed of the block's contents (writes with verify) — also recorded in traces.
    public var seed: UInt64
}

/// Produces the deterministic request sequence of one job thread.
///
/// Given the job, the disk size and the thread index, the sequence is the same on every
/// run; this is what makes `randseed` reproducible and `verify_only` possible. Random
/// offsets are uniform (with repetition, like fio's `norandommap`) and aligned to
/// ``FioJob/alignment``; sequential offsets wrap around the region.
public struct IoGenerator: Sendable {
    /// The job.
    public let job: FioJob
    /// Start of the region.
    public let regionStart: UInt64
    /// Length of the region.
    public let regionLength: UInt64
    private var rng: Xorshift64Star
    private var seqOffset: UInt64
    /// Requests produced (flushes excluded).
    public private(set) var count: UInt64 = 0
    /// Bytes produced.
    public private(set) var bytes: UInt64 = 0
    private var writesSinceFsync = 0
    private var fsyncDue = false
    private let limitIos: UInt64?
    private let limitBytes: UInt64?

    /// Creates the generator for thread `thread` of `job` on a disk of `diskSize` bytes.
    public init(job: FioJob, diskSize: UInt64, thread: Int) throws(BlockError) {
        self.job = job
        guard job.offset < diskSize else {
            throw BlockError(.outOfBounds, "job '\(job.name)': offset \(job.offset) is past the end of the disk (size \(diskSize))")
        }
        let len = job.size ?? (diskSize - job.offset)
        let (end, o) = job.offset.addingReportingOverflow(len)
        if o || end > diskSize {
            throw BlockError(.outOfBounds, "job '\(job.name)': offset \(job.offset) + size \(len) is past the end of the disk (size \(diskSize))")
        }
        if len < job.bsMax {
            throw BlockError(.invalidArgument, "job '\(job.name)': region of \(len) bytes is smaller than the block size \(job.bsMax)")
        }
        regionStart = job.offset
        regionLength = len
        seqOffset = job.offset
        rng = Xorshift64Star(seed: job.randseed &+ UInt64(thread) &* 0x1000_0000_01B3)
        if let n = job.numberIos {
            limitIos = n; limitBytes = nil
        } else if job.timeBased {
            limitIos = nil; limitBytes = nil
        } else {
            limitIos = nil; limitBytes = len
        }
    }

    /// Whether the amount of I/O (number_ios or size) has been produced.
    public var isExhausted: Bool {
        if let limitIos, count >= limitIos { return true }
        if let limitBytes, bytes >= limitBytes { return true }
        return false
    }

    /// The next request, or nil when the job's amount of I/O is done.
    public mutating func next() -> PlannedIo? {
        if fsyncDue {
            fsyncDue = false
            return PlannedIo(op: .fsync, offset: 0, length: 0, seed: 0)
        }
        if isExhausted { return nil }
        var length = job.bsMin
        if job.bsMax > job.bsMin {
            let steps = job.bsMax / job.bsMin
            length = min(job.bsMax, job.bsMin * (1 + rng.below(steps)))
        }
        if let limitBytes, bytes + length > limitBytes, limitBytes - bytes >= job.bsMin {
            length = (limitBytes - bytes) / job.bsMin * job.bsMin
        }
        let offset: UInt64
        if job.rw.isRandom {
            let slots = (regionLength - length) / job.alignment + 1
            offset = regionStart + job.alignment * rng.below(slots)
        } else {
            if seqOffset + length > regionStart + regionLength { seqOffset = regionStart }
            offset = seqOffset
            seqOffset += length + job.sequentialSkip
        }
        let op: PlannedOp
        switch job.rw {
        case .read, .randread: op = .read
        case .write, .randwrite: op = .write
        case .trim, .randtrim: op = .trim
        case .readwrite, .randrw: op = rng.below(100) < UInt64(job.rwmixread) ? .read : .write
        }
        let seed = op == .write ? rng.next() : 0
        count += 1
        bytes += length
        if op == .write && job.fsync > 0 {
            writesSinceFsync += 1
            if writesSinceFsync >= job.fsync { writesSinceFsync = 0; fsyncDue = true }
        }
        return PlannedIo(op: op, offset: offset, length: length, seed: seed)
    }
}

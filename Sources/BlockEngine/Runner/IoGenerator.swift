import BlockIO

/// A seeded xorshift64* pseudo-random generator: fast, reproducible, no system calls.
///
/// Seeded through splitmix64 so that nearby seeds (job 0, 1, 2...) give unrelated
/// streams. Never use `SystemRandomNumberGenerator` on the hot path: it makes a
/// `getrandom` call per value.
package struct Xorshift64Star: RandomNumberGenerator, Sendable {
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
package enum PlannedOp: UInt8, Sendable {
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
package struct PlannedIo: Sendable, Equatable {
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
/// run (unless `randrepeat=0`); this is what makes `randseed` reproducible and
/// `verify_only` possible. Random offsets follow the job's distribution, aligned to
/// ``FioJob/alignment``; with the random map (fio's default for uniform random I/O) each
/// block is used once per loop. Sequential offsets advance by the request plus
/// ``FioJob/sequentialSkip`` (negative: backwards).
///
/// A forward sequential job (`rw=read`, `write`, `trim`, with or without a `:skip`) runs
/// in passes as fio does: a pass ends when the next position is at or past the region's
/// end (or its block would cross the end of the disk), or when the bytes moved so far
/// reach `io_size` (else `size`) times the passes begun, at most `loops`. After `loops`
/// passes fio starts more while fewer than `io_size` bytes were moved in all, so a region
/// shorter than `io_size` is covered again (fio's `keep_running`). With a skip, a next
/// position at or past the disk's size restarts at the region-relative position equal to
/// the region's start (fio compares its region-relative position with the file size).
/// Other sequential jobs wrap around the region.
package struct IoGenerator: Sendable {
    /// The job.
    public let job: FioJob
    /// Start of the region (the job's offset plus this thread's `offset_increment`).
    public let regionStart: UInt64
    /// Length of the region.
    public let regionLength: UInt64
    /// Bytes one loop transfers (`io_size`, else the region's length).
    public let bytesPerLoop: UInt64
    private var rng: Xorshift64Star
    private var nextSeq: UInt64
    private var zoneDone: UInt64 = 0
    private var loopBytes: UInt64 = 0
    /// Loops finished so far (a `verify` job checks each loop's blocks before the next).
    public private(set) var loopsCompleted = 0
    /// Size of the disk in bytes (fio's end-of-file checks use it, not the region).
    private let diskSize: UInt64
    /// Forward sequential I/O in fio's passes (see the type's comment).
    private let fioPasses: Bool
    /// The position of the next request lies past the region (fio's pass ends there).
    private var atRegionEnd = false
    private var passEnded = false
    private var map: RandomMap?
    private let samplers: [OffsetSampler]
    private let blocks: UInt64
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
        let (inc, o1) = job.offsetIncrement.multipliedReportingOverflow(by: UInt64(thread))
        let (start, o2) = job.offset.addingReportingOverflow(inc)
        guard !o1, !o2, start < diskSize else {
            throw BlockError(.outOfBounds, "job '\(job.name)' thread \(thread): offset \(o1 || o2 ? UInt64.max : start) is past the end of the disk (size \(diskSize))")
        }
        var len = job.fillDevice ? diskSize - start : (job.size ?? job.fileSize ?? (diskSize - start))
        if job.size == nil && !job.fillDevice { len = min(len, diskSize - start) }
        let (end, o) = start.addingReportingOverflow(len)
        if o || end > diskSize {
            throw BlockError(.outOfBounds, "job '\(job.name)' thread \(thread): offset \(start) + size \(len) is past the end of the disk (size \(diskSize))")
        }
        if len < job.bsMax {
            throw BlockError(.invalidArgument, "job '\(job.name)': region of \(len) bytes is smaller than the block size \(job.bsMax)")
        }
        regionStart = start
        regionLength = len
        self.diskSize = diskSize
        bytesPerLoop = job.ioSize ?? len
        nextSeq = start
        var seed = job.randseed &+ UInt64(thread) &* 0x1000_0000_01B3
        if !job.randrepeat { seed ^= monotonicNanos() }
        rng = Xorshift64Star(seed: seed)
        blocks = max(1, len / job.alignment)
        samplers = job.distribution.map { OffsetSampler($0, blocks: max(1, len / job.alignment), blockSize: job.alignment, seed: seed ^ 0x5DEE_CE66) }
        map = job.usesRandomMap ? RandomMap(blocks: blocks) : nil
        fioPasses = (job.rw == .read || job.rw == .write || job.rw == .trim) && job.sequentialSkip >= 0
            && job.numberIos == nil && !job.timeBased && !job.zoneStrided
        if let n = job.numberIos {
            limitIos = n; limitBytes = nil
        } else if job.timeBased || fioPasses {
            limitIos = nil; limitBytes = nil
        } else {
            let (total, o) = bytesPerLoop.multipliedReportingOverflow(by: UInt64(job.loops))
            limitIos = nil; limitBytes = o ? UInt64.max : total
        }
    }

    /// Whether the amount of I/O (number_ios, or size/io_size times loops) has been produced.
    public var isExhausted: Bool {
        if let limitIos, count >= limitIos { return true }
        if let limitBytes, bytes >= limitBytes { return true }
        return passEnded
    }

    /// The next request, or nil when the job's amount of I/O is done.
    public mutating func next() -> PlannedIo? {
        if fsyncDue {
            fsyncDue = false
            return PlannedIo(op: .fsync, offset: 0, length: 0, seed: 0)
        }
        if isExhausted { return nil }
        let op: PlannedOp
        switch job.rw {
        case .read, .randread: op = .read
        case .write, .randwrite: op = .write
        case .trim, .randtrim: op = .trim
        case .readwrite, .randrw: op = rng.below(100) < UInt64(job.rwmixread) ? .read : .write
        }
        let dir = op == .read ? 0 : (op == .write ? 1 : 2)
        var length = blockSize(dir)
        // fio does not shorten the last request of a job with mixed sizes (it may overshoot `size`).
        if job.bsMin == job.bsMax, let limit = fioPasses ? passBudget : limitBytes, bytes + length > limit, limit - bytes >= job.bsMin {
            length = (limit - bytes) / job.bsMin * job.bsMin
        }
        let offset: UInt64
        if job.rw.isRandom {
            (offset, length) = randomOffset(dir, length)
        } else {
            offset = sequentialOffset(length)
        }
        let seed = op == .write ? rng.next() : 0
        count += 1
        bytes += length
        loopBytes += length
        if fioPasses ? (atRegionEnd || bytes >= passBudget) : loopBytes >= bytesPerLoop {
            loopsCompleted += 1
            if fioPasses && loopsCompleted >= job.loops {
                // fio's keep_running: after `loops` passes, another while fewer than io_size
                // (else size) bytes were moved, unless a job without io_size reached the end.
                // The bytes moved include the verify reads of a verifying write job (fio
                // counts both directions), each written block read back once.
                let verifies = job.rw == .write && job.verify != nil && job.doVerify
                let (twice, o) = bytes.multipliedReportingOverflow(by: 2)
                let moved = verifies ? (o ? .max : twice) : bytes
                let more = moved < bytesPerLoop && bytesPerLoop - moved >= job.bsMax && (job.ioSize != nil || !atRegionEnd)
                if !more { passEnded = true }
            }
            atRegionEnd = false
            // A new loop: sequential I/O restarts at the region's start, the random map empties.
            loopBytes = 0
            nextSeq = regionStart
            zoneDone = 0
            map?.reset()
        }
        if op == .write && job.fsync > 0 {
            writesSinceFsync += 1
            if writesSinceFsync >= job.fsync { writesSinceFsync = 0; fsyncDue = true }
        }
        return PlannedIo(op: op, offset: offset, length: length, seed: seed)
    }

    @inline(__always)
    private mutating func blockSize(_ dir: Int) -> UInt64 {
        let split = job.bsSplit[dir]
        if !split.isEmpty {
            if split.count == 1 { return split[0].size }
            var pick = Int(rng.below(100))
            for e in split {
                if pick < e.percent { return e.size }
                pick -= e.percent
            }
            return split[split.count - 1].size
        }
        if job.bsMax > job.bsMin {
            let steps = job.bsMax / job.bsMin
            return min(job.bsMax, job.bsMin * (1 + rng.below(steps)))
        }
        return job.bsMin
    }

    /// A random offset for a request of `length` bytes in direction `dir`, and the length to
    /// use: with the random map a request never covers a used block, so (as fio marks its map)
    /// it is cut to the free run of blocks at the drawn block.
    private mutating func randomOffset(_ dir: Int, _ length: UInt64) -> (UInt64, UInt64) {
        let align = job.alignment
        var length = length
        var b = samplers[dir].draw(&rng)
        if map != nil {
            if map!.isFull { map!.reset() }
            b = map!.nextFree(from: min(b, blocks - 1)) ?? b
            let want = (length + align - 1) / align
            if want > 1 {
                let run = map!.freeRun(from: b, limit: want)
                if run < want { length = run * align }
            }
            map!.mark(b, count: (length + align - 1) / align)
        }
        let lastFit = (regionLength - length) / align
        return (regionStart + align * min(b, lastFit), length)
    }

    /// The cumulative bytes at which the current pass ends: `io_size` (else `size`) times the
    /// passes begun, at most `loops` (fio's `io_bytes_exceeded`).
    private var passBudget: UInt64 {
        let (b, o) = bytesPerLoop.multipliedReportingOverflow(by: UInt64(min(loopsCompleted + 1, job.loops)))
        return o ? .max : b
    }

    private mutating func sequentialOffset(_ length: UInt64) -> UInt64 {
        var pos = nextSeq - regionStart
        if fioPasses {
            // The pass-end check ran after the previous request; a longer block (bsrange)
            // that would cross the disk's end starts the region again.
            if regionStart + pos + length > diskSize { pos = 0 }
        } else if pos + length > regionLength { pos = 0 }
        if job.zoneStrided && job.zoneSize > 0 && zoneDone >= job.zoneSize {
            zoneDone = 0
            pos += job.zoneSkip
            if pos + length > regionLength { pos = 0 }
        }
        let offset = regionStart + pos
        zoneDone += length
        // fio: the next position is this request's end plus the skip; a position before the
        // start wraps to the end minus the skip (backwards), one past the end to the start.
        var next = Int64(pos + length)
        if fioPasses {
            if job.sequentialSkip > 0 {
                next += job.sequentialSkip
                // fio compares the region-relative position with the file's size and then
                // restarts at the region's start taken as a relative position.
                if UInt64(next) >= diskSize { next = Int64(regionStart) }
            }
            let n = UInt64(next)
            atRegionEnd = n >= regionLength || regionStart + n >= diskSize || regionStart + n + job.bsMin > diskSize
            nextSeq = regionStart + (atRegionEnd ? 0 : n)
            return offset
        }
        if job.sequentialSkip != 0 && next != 0 {
            next += job.sequentialSkip
            if next < 0 || next >= Int64(regionLength) {
                next = job.sequentialSkip > 0 ? 0 : max(0, Int64(regionLength) + job.sequentialSkip)
            }
        }
        nextSeq = regionStart + UInt64(next)
        return offset
    }
}

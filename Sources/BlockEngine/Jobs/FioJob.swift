import BlockIO

/// The I/O pattern of a job (fio's `rw=`).
package enum RwMode: String, Sendable, CaseIterable {
    /// Sequential reads.
    case read
    /// Sequential writes.
    case write
    /// Random reads.
    case randread
    /// Random writes.
    case randwrite
    /// Sequential mixed reads and writes (`rw` or `readwrite`), split by `rwmixread`.
    case readwrite
    /// Random mixed reads and writes, split by `rwmixread`.
    case randrw
    /// Sequential trims (discards).
    case trim
    /// Random trims.
    case randtrim

    /// Whether offsets are drawn at random (otherwise they advance sequentially).
    public var isRandom: Bool { self == .randread || self == .randwrite || self == .randrw || self == .randtrim }
    /// Whether the job writes (so needs a writable image).
    public var writes: Bool { self != .read && self != .randread }
    /// Whether reads and writes are mixed.
    public var isMixed: Bool { self == .readwrite || self == .randrw }
}

/// What a `verify=` job stores in each block (or each `verify_interval` of a block) and checks.
///
/// fio's checksum names map onto the two checksums blockscope's header carries: `crc32c`
/// for the CRC family and xxhash, `md5` for md5 and the SHA family (the header layout is
/// blockscope's own, see ``BlockPattern``).
package enum VerifyKind: String, Sendable, CaseIterable {
    /// Header plus CRC-32C (Castagnoli) of the data, 4 bytes.
    case crc32c
    /// Header plus MD5 of the data, 16 bytes.
    case md5
    /// fio's `meta`: the header (magic, offset, seed, length) is what is checked; the data
    /// behind it is generated from the seed (or `verify_pattern`) and compared byte for byte.
    case meta
    /// fio's `pattern`: no header; every byte must repeat `verify_pattern`.
    case pattern

    /// Whether blocks carry blockscope's 48-byte header.
    public var hasHeader: Bool { self != .pattern }
}

/// One entry of fio's `bssplit`: a block size and the share of requests that use it.
package struct BlockSizeShare: Sendable, Equatable {
    /// Block size in bytes.
    public var size: UInt64
    /// Share in percent (entries of one direction sum to 100).
    public var percent: Int
    /// Creates an entry.
    public init(size: UInt64, percent: Int) { self.size = size; self.percent = percent }
}

/// One zone of a `zoned`/`zoned_abs` distribution: a share of the accesses and where they land.
package struct AccessZone: Sendable, Equatable {
    /// Share of accesses in percent.
    public var accessPercent: Int
    /// Size of the zone: percent of the region (`zoned`) or bytes (`zoned_abs`).
    public var size: UInt64
    /// Creates a zone.
    public init(accessPercent: Int, size: UInt64) { self.accessPercent = accessPercent; self.size = size }
}

/// How random offsets are drawn (fio's `random_distribution`).
///
/// Any model other than `.random` turns the random map off, as in fio.
package enum RandomDistribution: Sendable, Equatable {
    /// Uniform.
    case random
    /// Zipf with exponent theta (> 0, not 1); hot blocks are scattered over the region.
    case zipf(theta: Double)
    /// Pareto with power h (0 < h < 1).
    case pareto(h: Double)
    /// Approximately normal around the middle; deviation in percent (0...100) of the region.
    case normal(deviation: Double)
    /// Zones sized in percent of the region.
    case zoned([AccessZone])
    /// Zones sized in bytes from the start of the region.
    case zonedAbs([AccessZone])
}

/// How a rate-limited job spaces its requests (fio's `rate_process`).
package enum RateProcess: String, Sendable {
    /// Evenly spaced.
    case linear
    /// Exponentially distributed gaps with the same mean (a Poisson arrival process).
    case poisson
}

/// What steady-state detection measures.
package enum SteadyStateMetric: String, Sendable {
    /// Requests per second.
    case iops
    /// Bytes per second.
    case bw
    /// Mean completion latency.
    case lat
}

/// fio's steady-state detection (`ss=`, `ss_dur`, `ss_ramp`): end the job once the last
/// `ss_dur` of one-second samples is flat enough.
package struct SteadyStateSpec: Sendable, Equatable {
    /// What is sampled once a second.
    public var metric: SteadyStateMetric
    /// Check the slope of a least-squares line (true) or the largest deviation from the mean.
    public var slope: Bool
    /// The limit: a percent of the mean when ``percent``, else an absolute IOPS or bytes/s.
    public var limit: Double
    /// Whether ``limit`` is a percent of the window's mean.
    public var percent: Bool
    /// Length of the window of one-second samples, nanoseconds.
    public var durationNs: UInt64 = 0
    /// Time before the first sample, nanoseconds.
    public var rampNs: UInt64 = 0
    /// Creates a criterion.
    public init(metric: SteadyStateMetric, slope: Bool, limit: Double, percent: Bool) {
        self.metric = metric; self.slope = slope; self.limit = limit; self.percent = percent
    }
}

/// Which jobs an `exitall` job stops when it finishes (fio's `exit_what`).
package enum ExitWhat: String, Sendable {
    /// Jobs of the same reporting group.
    case group
    /// Every job running now (later stonewalled jobs still run).
    case stonewall
    /// Every job, including those not started yet.
    case all
}

/// One job of a fio job file: a section's keys merged over the `[global]` keys before it.
///
/// Sizes are bytes, times nanoseconds. A job with `numjobs=N` runs as N threads, each with
/// its own queue and its own PRNG stream (seeded from ``randseed`` and the thread index).
/// Per-direction values (`bssplit`, `rate`, ...) are indexed read, write, trim.
public struct FioJob: Sendable, Equatable {
    /// The section name (or `name=`).
    public var name: String
    /// The line of the section header in the job file.
    public var line: Int = 0
    /// The I/O pattern.
    package var rw: RwMode = .read
    /// Bytes added after each sequential request (fio's `rw=write:64k` suffix); negative
    /// values go backwards (`rw=read:-8k`), 0 for none.
    public var sequentialSkip: Int64 = 0
    /// Percentage of reads in a mixed job (0...100).
    public var rwmixread: Int = 50
    /// Smallest block size in bytes (over every direction and `bssplit` entry).
    public var bsMin: UInt64 = 4096
    /// Largest block size in bytes (equal to ``bsMin`` unless `bsrange`/`bssplit` was given).
    public var bsMax: UInt64 = 4096
    /// `bssplit` (or per-direction `bs=`) entries per direction; empty: use ``bsMin``...``bsMax``.
    package var bsSplit: [[BlockSizeShare]] = [[], [], []]
    /// Alignment of random offsets in bytes (nil: the smallest block size).
    public var blockalign: UInt64? = nil
    /// Length of the job's region (nil: `filesize`, else from the offset to the end of the disk).
    public var size: UInt64? = nil
    /// fio's `filesize`: the region's length when `size` is not given.
    public var fileSize: UInt64? = nil
    /// Bytes to transfer per loop (nil: the region's length), wrapping around the region.
    public var ioSize: UInt64? = nil
    /// Times the whole amount of I/O is repeated (fio's `loops`).
    public var loops: Int = 1
    /// Start of the job's region in bytes.
    public var offset: UInt64 = 0
    /// Added to ``offset`` once per thread index (thread N starts at offset + N * increment).
    public var offsetIncrement: UInt64 = 0
    /// Requests kept in flight per thread.
    public var iodepth: Int = 1
    /// Threads running this job, each on its own queue.
    public var numjobs: Int = 1
    /// Stop after this many requests per thread (overrides ``size`` as the amount of I/O).
    public var numberIos: UInt64? = nil
    /// Time limit in nanoseconds (`runtime`, `timeout`).
    public var runtimeNs: UInt64? = nil
    /// Keep going (wrapping around the region) until ``runtimeNs`` has passed.
    public var timeBased: Bool = false
    /// Wait this long before starting, nanoseconds.
    public var startDelayNs: UInt64 = 0
    /// Run this long before statistics start counting, nanoseconds (fio's `ramp_time`).
    public var rampTimeNs: UInt64 = 0
    /// Issue a flush after every N writes (0: never).
    public var fsync: Int = 0
    /// Flush once at the end of the job.
    public var endFsync: Bool = false
    /// Seed of the job's PRNG (fio's default is 0x89).
    public var randseed: UInt64 = 0x89
    /// Whether runs repeat the same sequence (`randrepeat`); false seeds from the clock.
    public var randrepeat: Bool = true
    /// Whether random offsets touch each block once per loop (false: `norandommap`).
    public var randomMap: Bool = true
    /// How random offsets are drawn, per direction.
    package var distribution: [RandomDistribution] = [.random, .random, .random]
    /// Bandwidth caps per direction, bytes per second (0: none).
    public var rateBytes: [UInt64] = [0, 0, 0]
    /// IOPS caps per direction (0: none).
    public var rateIops: [UInt64] = [0, 0, 0]
    /// Minimum bandwidth per direction, bytes per second (0: none); a warning when missed.
    public var rateMinBytes: [UInt64] = [0, 0, 0]
    /// Minimum IOPS per direction (0: none); a warning when missed.
    public var rateMinIops: [UInt64] = [0, 0, 0]
    /// How rate-limited requests are spaced.
    package var rateProcess: RateProcess = .linear
    /// Pause after every ``thinktimeBlocks`` requests, nanoseconds (0: none).
    public var thinktimeNs: UInt64 = 0
    /// Requests between pauses of ``thinktimeNs``.
    public var thinktimeBlocks: Int = 1
    /// Weight in fio's token flow control among jobs with the same ``flowID`` (0: off).
    public var flow: Int = 0
    /// The flow group.
    public var flowID: Int = 0
    /// Sleep when ahead of the flow group, nanoseconds.
    public var flowSleepNs: UInt64 = 0
    /// Start only after every earlier job has finished (and begin a new reporting group).
    public var stonewall: Bool = false
    /// Begin a new reporting group.
    public var newGroup: Bool = false
    /// Start only after the job of this name has finished (fio's `wait_for`).
    public var waitFor: String? = nil
    /// When this job finishes, stop others (which: ``exitWhat``).
    public var exitall: Bool = false
    /// Which jobs ``exitall`` stops.
    package var exitWhat: ExitWhat = .group
    /// fio's latency target: search for the deepest queue whose ``latencyPercentile`` of
    /// completion latencies over each ``latencyWindowNs`` stays at or below this (ns; 0: off).
    public var latencyTargetNs: UInt64 = 0
    /// Window of the latency-target search, nanoseconds.
    public var latencyWindowNs: UInt64 = 0
    /// Percentile of the latency-target search (fio's default 100).
    public var latencyPercentile: Double = 100
    /// Steady-state detection, when set.
    package var steadyState: SteadyStateSpec? = nil
    /// Write blocks with a verification header and check them afterwards.
    package var verify: VerifyKind? = nil
    /// Whether the verify phase runs (fio's `do_verify`); a read job with `verify` checks what it reads.
    public var doVerify: Bool = true
    /// Bytes per verification header (fio's `verify_interval`; nil: the whole block).
    public var verifyInterval: UInt64? = nil
    /// Data bytes repeated in verified blocks instead of seeded data (fio's `verify_pattern`).
    public var verifyPattern: [UInt8]? = nil
    /// Verify written blocks after every N writes instead of only at the end (0: at the end).
    public var verifyBacklog: Int = 0
    /// Only check blocks an earlier run with the same seed wrote; write nothing.
    public var verifyOnly: Bool = false
    /// fio's `zonemode=strided`: sequential I/O does ``zoneSize`` bytes, then skips ``zoneSkip``.
    public var zoneStrided: Bool = false
    /// Bytes done per zone with ``zoneStrided`` (0: the whole region).
    public var zoneSize: UInt64 = 0
    /// Bytes skipped after each zone with ``zoneStrided``.
    public var zoneSkip: UInt64 = 0
    /// Write sequentially until the end of the disk (fio's `fill_device`).
    public var fillDevice: Bool = false
    /// Never have two overlapping requests in flight at once.
    public var serializeOverlap: Bool = false
    /// The engine: `.uring` for io_uring/libaio, `.sync` for sync/psync/pvsync.
    public var engine: EngineKind = .auto
    /// Open the image with O_DIRECT (buffers are always 4 KiB aligned).
    public var direct: Bool = false
    /// Report with the other `group_reporting` jobs of the same group as one entry.
    public var groupReporting: Bool = false
    /// The reporting group (fio's `groupid`): incremented by `stonewall` and `new_group`.
    public var groupID: Int = 0

    /// Creates a job with fio's defaults.
    public init(name: String) { self.name = name }

    /// The effective alignment of random offsets.
    public var alignment: UInt64 { blockalign ?? bsMin }

    /// Whether every block size, the offset and the alignment are multiples of `block`
    /// (4096: what O_DIRECT needs on blockscope's images); false for fio's sub-4 KiB `bssplit`s.
    public func fits(directBlock block: UInt64 = 4096) -> Bool {
        let sizes = [bsMin, alignment, offset, offsetIncrement] + bsSplit.flatMap { $0.map { $0.size } }
        return sizes.allSatisfy { $0 % block == 0 }
    }

    /// Whether any rate cap is set.
    public var isRateLimited: Bool { rateBytes.contains { $0 > 0 } || rateIops.contains { $0 > 0 } }

    /// Whether the random map is in use (random I/O, uniform, not `norandommap`).
    public var usesRandomMap: Bool {
        rw.isRandom && randomMap && distribution.allSatisfy { $0 == .random }
    }
}

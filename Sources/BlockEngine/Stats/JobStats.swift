import BlockIO
import Histogram
#if canImport(Glibc)
import Glibc
#endif

/// Counts and completion latencies of one direction (read, write, trim or sync) of a job.
///
/// Latencies are nanoseconds in an HDR histogram (3 significant digits, resizing itself),
/// so percentiles are exact to 0.1% at any magnitude and merging threads is lossless.
public struct DirectionStats: Sendable {
    /// Completed requests.
    public var ios: UInt64 = 0
    /// Bytes transferred.
    public var bytes: UInt64 = 0
    /// Completion latency (submission to reaped completion), nanoseconds.
    public var clat: Histogram<UInt64>

    /// Empty statistics.
    public init() {
        clat = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        clat.autoResize = true
    }

    /// Records one completed request.
    @inline(__always)
    public mutating func record(latencyNs: UInt64, bytes: UInt64) {
        ios += 1
        self.bytes += bytes
        _ = clat.record(max(latencyNs, 1))
    }

    /// Adds another thread's statistics.
    public mutating func merge(_ o: DirectionStats) {
        ios += o.ios
        bytes += o.bytes
        clat.add(o.clat)
    }

    /// The percentiles fio prints by default.
    public static let fioPercentiles: [Double] = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99]

    /// Latency at `p` percent, nanoseconds (0 when empty).
    public func percentile(_ p: Double) -> UInt64 { ios == 0 ? 0 : clat.valueAtPercentile(p) }
}

/// The result of one job thread (or of a job's threads merged by `group_reporting`).
public struct JobResult: Sendable {
    /// The job.
    public var job: FioJob
    /// Threads merged into this result.
    public var threads: Int = 1
    /// The queue ID of the (first) thread.
    public var queueID: Int
    /// Reads.
    public var read = DirectionStats()
    /// Writes.
    public var write = DirectionStats()
    /// Trims.
    public var trim = DirectionStats()
    /// Flushes.
    public var sync = DirectionStats()
    /// Wall time of the job thread, nanoseconds.
    public var elapsedNs: UInt64 = 0
    /// The error that ended the thread, if any.
    public var error: BlockError?
    /// CPU time the job thread spent in user space, nanoseconds.
    public var userCpuNs: UInt64 = 0
    /// CPU time the job thread spent in the kernel, nanoseconds.
    public var systemCpuNs: UInt64 = 0
    /// The queue depth a `latency_target` search settled on (0: no search).
    public var latencyDepth: Int = 0
    /// Whether `ss=` steady-state detection ended the job.
    public var steadyStateAttained: Bool = false

    /// Creates an empty result.
    public init(job: FioJob, queueID: Int) {
        self.job = job
        self.queueID = queueID
    }

    /// Adds another thread's result (for group reporting); elapsed time is the longest.
    public mutating func merge(_ o: JobResult) {
        threads += o.threads
        read.merge(o.read)
        write.merge(o.write)
        trim.merge(o.trim)
        sync.merge(o.sync)
        elapsedNs = max(elapsedNs, o.elapsedNs)
        userCpuNs += o.userCpuNs
        systemCpuNs += o.systemCpuNs
        if error == nil { error = o.error }
        latencyDepth = max(latencyDepth, o.latencyDepth)
        steadyStateAttained = steadyStateAttained || o.steadyStateAttained
    }
}

/// CPU time of the calling thread: (user, system) nanoseconds (`getrusage(RUSAGE_THREAD)`).
public func threadCpuTimes() -> (user: UInt64, system: UInt64) {
    var ru = rusage()
    if getrusage(__rusage_who_t(1) /* RUSAGE_THREAD */, &ru) != 0 { return (0, 0) }
    func ns(_ t: timeval) -> UInt64 { UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_usec) * 1000 }
    return (ns(ru.ru_utime), ns(ru.ru_stime))
}

import BlockCore
import Foundation

/// Options of a ``Workload`` beyond what its jobs say.
public struct WorkloadOptions: Sendable {
    /// Receives every queue's events (an ``EventStream``, a ``StepGate``, a fan-out); nil: none.
    public var eventSink: (any IoEventSink)? = nil
    /// How job threads submit (see ``SubmitPolicy``).
    public var submitPolicy: SubmitPolicy = .perCompletion
    /// Forces an engine for every job; `.auto` keeps each job's `ioengine`.
    public var engine: EngineKind = .auto
    /// Applies every completed write/zero/discard to this raw file (forces overlap serialisation).
    public var mirror: MirrorFile? = nil
    /// Records every guest request for a trace (forces overlap serialisation).
    public var recordTrace = false
    /// The queue ID of the first job thread; threads get consecutive IDs from here.
    public var firstQueueID = 0

    /// Default options: no events, per-completion submission, each job's engine.
    public init() {}
}

/// Runs parsed fio jobs on a shared ``DiskFile``: one thread and one queue per job thread.
///
/// Jobs run concurrently, as fio's do; `numjobs=N` gives N threads. Each thread keeps its
/// queue's slots busy (see ``SubmitPolicy``). The workload can be paused, resumed and
/// stopped from any thread, and its live counters read with ``snapshot()`` while it runs
/// (the TUI polls them every frame). After the threads finish, blocks written with
/// `verify` (or listed by a `verify_only` job's dry run) are read back and checked.
///
/// ```swift
/// let w = try Workload(disk: disk, jobs: file.jobs, options: opts)
/// try w.start()
/// // ... w.snapshot(), w.pause(), w.resume() from the UI thread ...
/// let result = try w.wait()
/// ```
public final class Workload: @unchecked Sendable {
    /// The disk the jobs run on.
    public let disk: any DiskFile
    /// The jobs.
    public let jobs: [FioJob]
    /// The options.
    public let options: WorkloadOptions
    private let workers: [JobWorker]
    private let control = WorkloadControl()
    private let cond = NSCondition()
    private var running = 0
    private var started = false
    /// Monotonic time the workload started (0 before ``start()``).
    public private(set) var startTime: UInt64 = 0

    /// Prepares the job threads; throws when a job does not fit the disk or needs `--write`.
    public init(disk: any DiskFile, jobs: [FioJob], options: WorkloadOptions = WorkloadOptions()) throws(BlockError) {
        self.disk = disk
        self.jobs = jobs
        self.options = options
        let serialize = options.mirror != nil || options.recordTrace || jobs.contains { $0.serializeOverlap || $0.verify != nil }
        let overlap = serialize ? OverlapGuard() : nil
        let lbs = UInt64(max(1, disk.topology.logicalBlockSize))
        var ws: [JobWorker] = []
        var q = options.firstQueueID
        for j in jobs {
            if j.rw.writes && !j.verifyOnly && !disk.isWritable {
                throw BlockError(.readOnly, "job '\(j.name)' writes (rw=\(j.rw.rawValue)) but the image is open read-only", path: disk.path)
            }
            if j.bsMin % lbs != 0 || j.offset % lbs != 0 || j.alignment % lbs != 0 {
                throw BlockError(.invalidArgument, "job '\(j.name)': bs, offset and blockalign must be multiples of the disk's \(lbs)-byte logical block (O_DIRECT)", path: disk.path)
            }
            let engine = options.engine != .auto ? options.engine : j.engine
            for t in 0..<j.numjobs {
                ws.append(try JobWorker(job: j, thread: t, queueID: q, disk: disk, engine: engine, policy: options.submitPolicy,
                                        sink: options.eventSink, control: control, overlap: overlap, mirror: options.mirror,
                                        recordTrace: options.recordTrace, startTime: 0))
                q += 1
            }
        }
        workers = ws
    }

    /// Number of queues (job threads).
    public var queueCount: Int { workers.count }

    /// The live counters of every queue, in queue order.
    public var counters: [QueueCounters] { workers.map { $0.counters } }

    /// Starts one thread per job thread and returns at once.
    public func start() throws(BlockError) {
        cond.lock()
        defer { cond.unlock() }
        if started { throw BlockError(.invalidArgument, "workload already started") }
        started = true
        startTime = monotonicNanos()
        running = workers.count
        for w in workers {
            w.startTime = startTime
            let t = Thread { [self] in
                if w.job.verifyOnly { w.dryRunWrites() } else { w.run() }
                w.counters.doneFlag.store(true, ordering: .releasing)
                cond.lock()
                running -= 1
                cond.broadcast()
                cond.unlock()
            }
            t.stackSize = 1 << 20
            t.name = "blockscope-job-\(w.queueID)"
            t.start()
        }
    }

    /// Waits for every thread, then verifies; returns the results (per thread, in queue order).
    ///
    /// Throws the first error a thread hit or a verification failure.
    public func wait() throws(BlockError) -> WorkloadResult {
        cond.lock()
        while running > 0 { cond.wait() }
        cond.unlock()
        let elapsed = monotonicNanos() - startTime
        var result = WorkloadResult(jobs: workers.map { $0.result }, elapsedNs: elapsed)
        if let e = workers.compactMap({ $0.result.error }).first { throw e }
        if options.recordTrace {
            result.trace = workers.flatMap { $0.trace }.sorted { $0.time < $1.time }
        }
        let verifying = workers.filter { $0.job.verify != nil }
        if !verifying.isEmpty && !control.stopRequested {
            var map: [UInt64: (UInt64, Set<UInt64>)] = [:]
            for w in verifying {
                for (off, seeds) in w.written { map[off, default: (w.job.bsMin, [])].1.formUnion(seeds) }
            }
            result.verifiedBlocks = try Verifier.verify(disk: disk, blocks: map, queueID: options.firstQueueID + workers.count)
        }
        return result
    }

    /// ``start()`` then ``wait()``.
    public func run() throws(BlockError) -> WorkloadResult {
        try start()
        return try wait()
    }

    /// Stops issuing new requests; in-flight requests complete, then threads wait.
    public func pause() { control.pause() }
    /// Resumes after ``pause()``.
    public func resume() { control.resume() }
    /// Ends the run early: threads stop issuing, drain and finish (results are partial).
    public func stop() { control.stop() }
    /// Whether the workload is paused.
    public var isPaused: Bool { control.paused }

    /// Whether every thread has finished.
    public var isFinished: Bool {
        cond.lock()
        defer { cond.unlock() }
        return started && running == 0
    }

    /// The live counters of every queue now, with the fraction done when it is known.
    public func snapshot() -> WorkloadSnapshot {
        let qs = workers.map { $0.counters.snapshot() }
        let elapsed = startTime == 0 ? 0 : monotonicNanos() - startTime
        var fractions: [Double] = []
        for (w, s) in zip(workers, qs) {
            if s.finished { fractions.append(1); continue }
            var f = 0.0
            if let rt = w.job.runtimeNs, rt > 0 { f = max(f, Double(elapsed) / Double(rt)) }
            if let n = w.job.numberIos, n > 0 { f = max(f, Double(s.totalIos - s.syncIos) / Double(n)) }
            else if !w.job.timeBased {
                let planned = w.counters.plannedBytes.load(ordering: .relaxed)
                if planned > 0 { f = max(f, Double(s.readBytes + s.writeBytes) / Double(planned)) }
            }
            fractions.append(min(1, f))
        }
        let progress = fractions.isEmpty ? nil : fractions.min()
        return WorkloadSnapshot(elapsedNs: elapsed, queues: qs, progress: progress)
    }
}

/// Everything a finished ``Workload`` measured.
public struct WorkloadResult: Sendable {
    /// One result per job thread, in queue order.
    public var jobs: [JobResult]
    /// Wall time of the whole workload, nanoseconds.
    public var elapsedNs: UInt64
    /// Blocks read back and verified.
    public var verifiedBlocks: UInt64 = 0
    /// Guest requests in submission order (when tracing).
    public var trace: [TraceRequest] = []

    /// Creates a result.
    public init(jobs: [JobResult], elapsedNs: UInt64) {
        self.jobs = jobs
        self.elapsedNs = elapsedNs
    }

    /// Results as fio reports them: threads of a `group_reporting` job merged into one.
    public var reported: [JobResult] {
        var out: [JobResult] = []
        var index: [String: Int] = [:]
        for r in jobs {
            if r.job.groupReporting, let i = index["\(r.job.name)#\(r.job.line)"] {
                out[i].merge(r)
            } else {
                if r.job.groupReporting { index["\(r.job.name)#\(r.job.line)"] = out.count }
                out.append(r)
            }
        }
        return out
    }
}

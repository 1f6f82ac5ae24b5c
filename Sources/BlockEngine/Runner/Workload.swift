import BlockIO
import Foundation

/// Options of a ``Workload`` beyond what its jobs say.
public struct WorkloadOptions: Sendable {
    /// Receives every queue's events (an ``EventStream``, a ``StepGate``, a fan-out); nil: none.
    public var eventSink: (any IoEventSink)? = nil
    /// How job threads submit (see ``SubmitPolicy``).
    package var submitPolicy: SubmitPolicy = .perCompletion
    /// Forces an engine for every job; `.auto` keeps each job's `ioengine`.
    public var engine: EngineKind = .auto
    /// Applies every completed write/zero/discard to this raw file (forces overlap serialisation).
    package var mirror: MirrorFile? = nil
    /// Records every guest request for a trace (forces overlap serialisation).
    public var recordTrace = false
    /// The queue ID of the first job thread; threads get consecutive IDs from here.
    public var firstQueueID = 0
    /// Where every job thread's queue records the requests it holds (the exact in-flight set a
    /// live view shows); nil: not tracked.
    public var inFlightRegistry: InFlightRegistry? = nil
    /// What the registry calls the workload's queues: each is named `LABEL #N` (N from 0, one
    /// per job thread; the TUI passes `job FILE`); nil: `job NAME #THREAD` from the job's name.
    public var queueLabel: String? = nil

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
    /// For each worker, the workers it waits for (`stonewall`, `wait_for`).
    private let dependencies: [[Int]]
    private var finished: [Bool]
    private var began: [Bool]
    private let control = WorkloadControl()
    private let cond = ConditionLock()
    private var running = 0
    private var started = false
    /// Monotonic time the workload started (0 before ``start()``).
    public private(set) var startTime: UInt64 = 0
    /// Monotonic time the last thread finished (0 while any runs); the clock stops there.
    private var endTime: UInt64 = 0

    /// Prepares the job threads; throws when a job does not fit the disk or needs `--write`.
    public init(disk: any DiskFile, jobs: [FioJob], options: WorkloadOptions = WorkloadOptions()) throws(BlockError) {
        self.disk = disk
        self.jobs = jobs
        self.options = options
        let serialize = options.mirror != nil || options.recordTrace || jobs.contains { $0.serializeOverlap || $0.verify != nil }
        let overlap = serialize ? OverlapGuard() : nil
        let lbs = UInt64(max(1, disk.topology.logicalBlockSize))
        var ws: [JobWorker] = []
        var deps: [[Int]] = []
        var firstWorker: [Int] = []     // per job: index of its first worker
        var q = options.firstQueueID
        let flows = jobs.contains { $0.flow > 0 } ? FlowGroups() : nil
        for (ji, j) in jobs.enumerated() {
            firstWorker.append(ws.count)
            var mine: [Int] = []
            if j.stonewall { mine = Array(0..<ws.count) }
            if let name = j.waitFor, let k = jobs[..<ji].lastIndex(where: { $0.name == name }) {
                mine += Array(firstWorker[k]..<firstWorker[k] + jobs[k].numjobs)
            }
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
                let w = ws[ws.count - 1]
                w.index = ws.count - 1
                w.inFlightRegistry = options.inFlightRegistry
                w.queueLabel = options.queueLabel.map { "\($0) #\(w.index)" } ?? "job \(j.name) #\(t)"
                if j.flow > 0, let flows {
                    w.flowGroups = flows
                    flows.join(group: j.flowID, member: w.index)
                }
                deps.append(mine)
                q += 1
            }
        }
        workers = ws
        dependencies = deps
        finished = Array(repeating: false, count: ws.count)
        began = Array(repeating: false, count: ws.count)
    }

    /// Number of queues (job threads).
    public var queueCount: Int { workers.count }

    /// The live counters of every queue, in queue order.
    package var counters: [QueueCounters] { workers.map { $0.counters } }

    /// Starts one thread per job thread and returns at once.
    public func start() throws(BlockError) {
        cond.lock()
        defer { cond.unlock() }
        if started { throw BlockError(.invalidArgument, "workload already started") }
        started = true
        startTime = monotonicNanos()
        running = workers.count
        for (i, w) in workers.enumerated() {
            w.startTime = startTime
            let t = Thread { [self] in
                waitForDependencies(i)
                if w.job.verifyOnly { w.dryRunWrites() } else { w.run() }
                w.counters.doneFlag.store(true, ordering: .releasing)
                cond.lock()
                running -= 1
                if running == 0 { endTime = monotonicNanos() }
                finished[i] = true
                if w.job.exitall { exitOthers(after: i) }
                cond.broadcast()
                cond.unlock()
            }
            t.stackSize = 1 << 20
            t.name = "blockscope-job-\(w.queueID)"
            t.start()
        }
    }

    /// Blocks worker `i`'s thread until the workers it depends on have finished (or a stop).
    private func waitForDependencies(_ i: Int) {
        cond.lock()
        while !dependencies[i].allSatisfy({ finished[$0] }) && !control.stopRequested && !workers[i].exitFlag.load(ordering: .relaxed) {
            cond.wait()
        }
        began[i] = true
        cond.unlock()
    }

    /// fio's `exitall`: stop the jobs `exit_what` names when worker `i` finishes (lock held).
    private func exitOthers(after i: Int) {
        let job = workers[i].job
        for (k, w) in workers.enumerated() where k != i && !finished[k] {
            let hit: Bool
            switch job.exitWhat {
            case .group: hit = w.job.groupID == job.groupID && began[k]
            case .stonewall: hit = began[k]
            case .all: hit = true
            }
            if hit { w.exitFlag.store(true, ordering: .relaxed) }
        }
    }

    /// Waits for every thread, then verifies; returns the results (per thread, in queue order).
    ///
    /// Throws the first error a thread hit or a verification failure.
    public func wait() throws(BlockError) -> WorkloadResult {
        cond.lock()
        while running > 0 { cond.wait() }
        cond.unlock()
        let elapsed = runningNanos(monotonicNanos())
        if let e = workers.compactMap({ $0.result.error }).first { throw e }
        // fio's verify phase: each job reads back what it wrote, counted as its reads.
        let verifying = workers.filter { $0.job.verify != nil && ($0.job.doVerify || $0.job.verifyOnly) && !$0.written.isEmpty }
        var verified: UInt64 = 0
        if !verifying.isEmpty && !control.stopRequested {
            var seeds: [UInt64: Set<UInt64>] = [:]
            for w in verifying { for (off, seed) in w.written { seeds[off, default: []].insert(seed) } }
            for w in verifying {
                var blocks: [UInt64: (UInt64, Set<UInt64>)] = [:]
                for off in w.written.keys { blocks[off] = (w.job.bsMin, seeds[off] ?? []) }
                let t0 = monotonicNanos()
                verified += try Verifier.verify(disk: disk, blocks: blocks, queueID: options.firstQueueID + workers.count,
                                                depth: max(1, min(w.job.iodepth, 64)), kind: w.job.verify ?? .crc32c,
                                                interval: w.job.verifyInterval, pattern: w.job.verifyPattern, reads: &w.result.read)
                w.result.elapsedNs += monotonicNanos() - t0
            }
        }
        var result = WorkloadResult(jobs: workers.map { $0.result }, elapsedNs: elapsed)
        result.verifiedBlocks = verified
        for (i, w) in workers.enumerated() {
            result.jobs[i].latencyDepth = w.latencyDepth
            result.jobs[i].steadyStateAttained = w.steadyStateAttained
        }
        if options.recordTrace {
            result.trace = workers.flatMap { $0.trace }.sorted { $0.time < $1.time }
        }
        return result
    }

    /// ``start()`` then ``wait()``.
    public func run() throws(BlockError) -> WorkloadResult {
        try start()
        return try wait()
    }

    /// Nanoseconds since ``start()`` that the workload's clock counts: time paused, and the
    /// longest time a step gate held one of its queues, are left out.
    func runningNanos(_ time: UInt64) -> UInt64 {
        cond.lock()
        let end = endTime
        cond.unlock()
        let now = end != 0 ? min(time, end) : time
        let held = options.eventSink.map { sink in workers.map { sink.heldNanos(queue: Int32($0.queueID)) }.max() ?? 0 } ?? 0
        let stopped = control.pausedNanos(now: now) &+ held
        let wall = now &- startTime
        return wall > stopped ? wall - stopped : 0
    }

    /// Stops issuing new requests; in-flight requests complete, then threads wait.
    /// A time-based job's clock stops until ``resume()``.
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
    package func snapshot() -> WorkloadSnapshot {
        let qs = workers.map { $0.counters.snapshot() }
        let elapsed = startTime == 0 ? 0 : runningNanos(monotonicNanos())
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

    /// Results as fio reports them: the `group_reporting` jobs of one reporting group
    /// (``FioJob/groupID``) merged into one entry named after the group's first job.
    public var reported: [JobResult] {
        var out: [JobResult] = []
        var index: [Int: Int] = [:]
        for r in jobs {
            if r.job.groupReporting, let i = index[r.job.groupID] {
                out[i].merge(r)
            } else {
                if r.job.groupReporting { index[r.job.groupID] = out.count }
                out.append(r)
            }
        }
        return out
    }
}

import BlockIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One job thread: owns an ``AsyncIo`` queue on the shared disk and keeps its slots busy.
///
/// Everything here is touched by the worker's own thread only, except ``counters`` (atomics)
/// and ``result``/``trace`` (read after the thread has finished).
final class JobWorker: @unchecked Sendable {
    struct Slot {
        let buffer: AlignedBuffer
        /// Where reads land in a mixed job, so a slot's write contents stay as filled.
        let readBuffer: AlignedBuffer
        var io = PlannedIo(op: .read, offset: 0, length: 0, seed: 0)
        var start: UInt64 = 0
        /// The queue's step-gate hold total when the request was issued.
        var heldAtStart: UInt64 = 0
        var fillSeed: UInt64 = 0
    }

    let job: FioJob
    let thread: Int
    let queueID: Int
    let disk: any DiskFile
    let engine: EngineKind
    let policy: SubmitPolicy
    let sink: (any IoEventSink)?
    let control: WorkloadControl
    let overlap: OverlapGuard?
    let mirror: MirrorFile?
    let recordTrace: Bool
    var startTime: UInt64
    let counters: QueueCounters
    var result: JobResult
    var trace: [TraceRequest] = []
    /// Blocks this thread wrote with verify: offset -> seed of the last write.
    var written: [UInt64: UInt64] = [:]
    /// Set when another job's `exitall` ends this one (or when it must never start).
    let exitFlag = Atomic<Bool>(false)
    /// Shared flow-control state (`flow=`), nil when the job has no flow weight.
    var flowGroups: FlowGroups?
    /// This thread's index among all workers (the flow member ID).
    var index = 0
    /// Whether steady state ended the job.
    var steadyStateAttained = false
    /// The queue depth the latency-target search settled on (0: no search).
    var latencyDepth = 0

    private var gen: IoGenerator
    private var slots: [Slot] = []
    private var free: [Int] = []
    private var inFlight = 0
    private var seq: UInt64 = 0
    private var firstError: BlockError?
    /// Where this thread's queue records the requests it holds (set by the workload before start).
    var inFlightRegistry: InFlightRegistry?
    /// What the registry calls this thread's queue (set by the workload before start).
    var queueLabel: String?
    private var pacer: RatePacer
    private var latencySearch: LatencyTargetSearch?
    private var steady: SteadyStateMonitor?
    private var sinceThink = 0
    private var rampEnd: UInt64 = 0
    private var latencySum = 0.0
    private var jobStart: UInt64 = 0

    init(job: FioJob, thread: Int, queueID: Int, disk: any DiskFile, engine: EngineKind, policy: SubmitPolicy,
         sink: (any IoEventSink)?, control: WorkloadControl, overlap: OverlapGuard?, mirror: MirrorFile?,
         recordTrace: Bool, startTime: UInt64) throws(BlockError) {
        self.job = job
        self.thread = thread
        self.queueID = queueID
        self.disk = disk
        self.engine = engine
        self.policy = policy
        self.sink = sink
        self.control = control
        self.overlap = overlap
        self.mirror = mirror
        self.recordTrace = recordTrace
        self.startTime = startTime
        self.counters = QueueCounters(queueID: queueID, jobName: job.name)
        self.result = JobResult(job: job, queueID: queueID)
        self.gen = try IoGenerator(job: job, diskSize: disk.logicalSize, thread: thread)
        self.pacer = RatePacer(job: job, seed: job.randseed &+ UInt64(thread))
        let planned = job.numberIos.map { $0 * (job.bsMin + job.bsMax) / 2 } ?? (job.timeBased ? 0 : gen.bytesPerLoop * UInt64(job.loops))
        counters.plannedBytes.store(planned, ordering: .relaxed)
    }

    /// Replays the generator without doing I/O, recording what a real run would write.
    func dryRunWrites() {
        while let io = gen.next() {
            if io.op == .write { written[io.offset] = io.seed }
            if io.op == .trim { written[io.offset] = nil }
        }
    }

    /// Time this job's clock does not count: paused (space in the TUI) or held at a step gate.
    private func stoppedClockNs(_ now: UInt64) -> UInt64 {
        control.pausedNanos(now: now) &+ (sink?.heldNanos(queue: Int32(queueID)) ?? 0)
    }

    /// The thread body: runs the job, then records the elapsed time (paused and step-held
    /// time left out) and any error.
    func run() {
        if job.startDelayNs > 0 { sleepUnlessStopped(job.startDelayNs) }
        jobStart = monotonicNanos()
        let stoppedAtStart = stoppedClockNs(jobStart)
        do { if !stopped { try body() } } catch { result.error = error }
        if let f = flowGroups { f.leave(group: job.flowID, member: index) }
        if result.error == nil { result.error = firstError }
        let end = monotonicNanos()
        let stoppedNs = stoppedClockNs(end) &- stoppedAtStart
        result.elapsedNs = end - jobStart > stoppedNs ? end - jobStart - stoppedNs : 0
        (result.userCpuNs, result.systemCpuNs) = threadCpuTimes()
        counters.doneFlag.store(true, ordering: .releasing)
    }

    /// Whether the workload or an `exitall` job asked this thread to stop.
    var stopped: Bool { control.stopRequested || exitFlag.load(ordering: .relaxed) }

    /// Sleeps `ns` in slices of at most 10 ms, returning early when stopped.
    private func sleepUnlessStopped(_ ns: UInt64) {
        let end = monotonicNanos() + ns
        while !stopped {
            let now = monotonicNanos()
            if now >= end { return }
            usleep(useconds_t(min(end - now, 10_000_000) / 1000))
        }
    }

    private func body() throws(BlockError) {
        let depth = engine == .sync ? 1 : job.iodepth
        if job.latencyTargetNs > 0 { latencySearch = LatencyTargetSearch(job: job, maxDepth: depth) }
        if let ss = job.steadyState { steady = SteadyStateMonitor(spec: ss) }
        if job.rampTimeNs > 0 { rampEnd = jobStart + job.rampTimeNs }
        let qo = QueueOptions(depth: depth, queueID: queueID, engine: engine, eventSink: sink, inFlightRegistry: inFlightRegistry, label: queueLabel)
        let queue = try disk.makeQueue(qo)
        defer { queue.close() }
        let bufSize = Int(job.bsMax)
        for s in 0..<depth {
            let b = AlignedBuffer(count: bufSize)
            var slot = Slot(buffer: b, readBuffer: job.rw.isMixed ? AlignedBuffer(count: bufSize) : b)
            // Without verify every write reuses its slot's contents, filled once (as fio does).
            slot.fillSeed = job.randseed &+ UInt64(queueID) << 32 &+ UInt64(s)
            if job.rw.writes && job.verify == nil { BlockPattern.fill(slot.buffer.bytes, seed: slot.fillSeed) }
            if job.verify == .pattern, let p = job.verifyPattern { BlockPattern.fillPattern(slot.buffer.bytes, pattern: p) }
            slots.append(slot)
        }
        free = Array((0..<depth).reversed())
        try mainLoop(queue)
        latencyDepth = latencySearch?.depth ?? 0
        steadyStateAttained = steady?.attained ?? false
        if job.endFsync && firstError == nil && !stopped {
            try issue(PlannedIo(op: .fsync, offset: 0, length: 0, seed: 0), queue)
            try queue.submit()
            while inFlight > 0 {
                if let c = queue.nextCompletion() { complete(c) } else { try queue.waitForCompletion() }
            }
        }
    }

    private func mainLoop(_ queue: any AsyncIo) throws(BlockError) {
        var pending: PlannedIo? = nil
        var overlapSeen: UInt64 = 0
        var exhausted = false
        let deadline = job.runtimeNs.map { jobStart + job.rampTimeNs + $0 }
        let timed = deadline != nil || pacer.active || steady != nil || rampEnd != 0 || flowGroups != nil
        // The deadline moves out by the time the job is paused or held at a step gate.
        let stoppedAtStart = deadline != nil ? stoppedClockNs(jobStart) : 0
        while true {
            if stopped || firstError != nil { exhausted = true; pending = nil }
            var now: UInt64 = 0
            if timed {
                now = monotonicNanos()
                if let deadline, !exhausted, now >= deadline, now >= deadline &+ (stoppedClockNs(now) &- stoppedAtStart) {
                    exhausted = true; pending = nil
                }
                if rampEnd != 0 && now >= rampEnd { resetStatsAfterRamp() }
                if var s = steady, !exhausted {
                    if s.check(now: now, start: jobStart, ios: result.read.ios + result.write.ios + result.trim.ios,
                               bytes: result.read.bytes + result.write.bytes + result.trim.bytes, latencySumNs: latencySum) {
                        exhausted = true; pending = nil
                    }
                    steady = s
                }
            }
            let paused = control.paused
            if paused && inFlight == 0 {
                control.waitWhilePaused()
                continue
            }
            var issued = 0
            var waitNs: UInt64 = 0
            let limit = latencySearch?.depth ?? slots.count
            if !paused {
                while !free.isEmpty && inFlight < limit {
                    if pending == nil {
                        if exhausted { break }
                        if job.verify != nil && job.doVerify && gen.loopsCompleted > loopsVerified {
                            // fio verifies each loop's blocks before starting the next loop.
                            if inFlight > 0 { break }
                            try verifyLoop()
                        }
                        pending = gen.next()
                        if pending == nil { exhausted = true; break }
                    }
                    let io = pending!
                    if io.op == .fsync && inFlight > 0 { break }
                    let dir = io.op == .read ? 0 : (io.op == .write ? 1 : 2)
                    if pacer.active && io.op != .fsync {
                        if now == 0 { now = monotonicNanos() }
                        waitNs = pacer.wait(dir, now: now)
                        if waitNs > 0 { break }
                        pacer.issued(dir, length: io.length, now: now)
                    }
                    if let f = flowGroups, io.op != .fsync, f.isAhead(group: job.flowID, member: index, weight: job.flow) {
                        waitNs = max(job.flowSleepNs, 20_000)
                        break
                    }
                    if let overlap, io.op != .fsync {
                        overlapSeen = overlap.released.generation
                        if !overlap.tryAcquire(io.offset, io.length) { break }
                    }
                    pending = nil
                    try issue(io, queue)
                    issued += 1
                    if let f = flowGroups, io.op != .fsync { _ = f.advance(group: job.flowID, member: index, weight: job.flow, ios: 1) }
                    if job.thinktimeNs > 0 && io.op != .fsync {
                        sinceThink += 1
                        if sinceThink >= job.thinktimeBlocks {
                            sinceThink = 0
                            try queue.submit()
                            issued = 0
                            sleepUnlessStopped(job.thinktimeNs)
                        }
                    }
                }
            }
            if issued > 0 { try queue.submit() }
            if inFlight == 0 {
                if exhausted && pending == nil { return }
                if waitNs > 0 { sleepUnlessStopped(min(waitNs, 10_000_000)) }
                else if pending != nil, let overlap {
                    // Blocked by another thread's overlapping request: sleep until a range is released.
                    overlap.released.wait(past: overlapSeen)
                }
                continue
            }
            if waitNs > 0 {
                // Rate or flow limited with requests in flight: reap what is ready, nap briefly.
                var got = false
                while let c = queue.nextCompletion() { complete(c); got = true }
                if !got { usleep(useconds_t(min(waitNs, 1_000_000) / 1000 + 1)) }
                continue
            }
            switch policy {
            case .perCompletion:
                if let c = queue.nextCompletion() {
                    complete(c)
                } else {
                    try queue.waitForCompletion()
                    if let c = queue.nextCompletion() { complete(c) }
                }
            case .batch:
                var got = false
                while let c = queue.nextCompletion() { complete(c); got = true }
                if !got {
                    try queue.waitForCompletion()
                    while let c = queue.nextCompletion() { complete(c) }
                }
            }
        }
    }

    private var loopsVerified = 0

    /// Reads back and checks the blocks this thread wrote in the loop just finished (a job
    /// with `verify` and `loops` > 1, or a pass fio adds after them to reach `io_size`); the
    /// reads count as the job's reads, as in fio. The last pass's blocks are checked by
    /// ``Workload/wait()``.
    private func verifyLoop() throws(BlockError) {
        loopsVerified = gen.loopsCompleted
        guard let kind = job.verify, job.doVerify, gen.loopsCompleted < job.loops || job.timeBased || !gen.isExhausted, !written.isEmpty else { return }
        var blocks: [UInt64: (UInt64, Set<UInt64>)] = [:]
        for (off, _) in written { blocks[off] = (job.bsMin, []) }
        _ = try Verifier.verify(disk: disk, blocks: blocks, queueID: queueID, depth: max(1, min(job.iodepth, 64)), engine: engine,
                                kind: kind, interval: job.verifyInterval, pattern: job.verifyPattern, reads: &result.read)
        counters.readIos.store(result.read.ios, ordering: .relaxed)
        written.removeAll(keepingCapacity: true)
    }

    /// fio's `ramp_time`: what completed before the ramp ended is not reported.
    private func resetStatsAfterRamp() {
        rampEnd = 0
        result.read = DirectionStats(); result.write = DirectionStats(); result.trim = DirectionStats(); result.sync = DirectionStats()
        jobStart = monotonicNanos()
    }

    private func issue(_ io: PlannedIo, _ queue: any AsyncIo) throws(BlockError) {
        let s = free.removeLast()
        slots[s].io = io
        let buf = slots[s].buffer
        let len = Int(io.length)
        if io.op == .write, let kind = job.verify, kind != .pattern {
            BlockPattern.fillBlock(UnsafeMutableRawBufferPointer(rebasing: buf.bytes[0..<len]), offset: io.offset, seed: io.seed,
                                   kind: kind, interval: job.verifyInterval, pattern: job.verifyPattern)
        }
        seq &+= 1
        let tag = (seq << 16) | UInt64(s)
        let now = monotonicNanos()
        slots[s].start = now
        if let sink { slots[s].heldAtStart = sink.heldNanos(queue: Int32(queueID)) }
        if recordTrace {
            var fill = TraceFill.none
            if io.op == .write { fill = job.verify.map { .verified(seed: io.seed, kind: $0) } ?? .random(seed: slots[s].fillSeed) }
            trace.append(TraceRequest(time: now &- startTime, queue: queueID, op: io.op, offset: io.offset, length: io.length, fill: fill))
        }
        inFlight += 1
        counters.inFlight.store(inFlight, ordering: .relaxed)
        switch io.op {
        case .read: try queue.read(at: io.offset, into: UnsafeMutableRawBufferPointer(rebasing: slots[s].readBuffer.bytes[0..<len]), userData: tag)
        case .write: try queue.write(at: io.offset, from: UnsafeRawBufferPointer(rebasing: buf.bytes[0..<len]), userData: tag)
        case .trim: try queue.discard(at: io.offset, length: io.length, userData: tag)
        case .fsync: try queue.fsync(userData: tag)
        }
    }

    private func complete(_ c: IoCompletion) {
        let now = monotonicNanos()
        let s = Int(c.userData & 0xffff)
        let io = slots[s].io
        var lat = now &- slots[s].start
        if let sink {
            // Time held at a step gate is a human's, not the I/O's.
            let held = sink.heldNanos(queue: Int32(queueID)) &- slots[s].heldAtStart
            lat = lat > held ? lat - held : 0
        }
        inFlight -= 1
        free.append(s)
        counters.inFlight.store(inFlight, ordering: .relaxed)
        if let e = c.error {
            if firstError == nil { firstError = e.withGuestOffset(io.offset) }
            if io.op != .fsync { overlap?.release(io.offset, io.length) }
            return
        }
        if io.op != .fsync {
            latencySearch?.record(latencyNs: lat, now: now)
            latencySum += Double(lat)
        }
        switch io.op {
        case .read:
            if let kind = job.verify, job.doVerify, !job.rw.writes, firstError == nil,
               let e = BlockPattern.checkBlock(UnsafeRawBufferPointer(rebasing: slots[s].readBuffer.bytes[0..<Int(io.length)]), offset: io.offset,
                                               seeds: [], kind: kind, interval: job.verifyInterval, pattern: job.verifyPattern, path: disk.path) {
                firstError = e
            }
            result.read.record(latencyNs: lat, bytes: io.length)
            counters.readIos.store(result.read.ios, ordering: .relaxed)
            counters.readBytes.store(result.read.bytes, ordering: .relaxed)
        case .write:
            result.write.record(latencyNs: lat, bytes: io.length)
            counters.writeIos.store(result.write.ios, ordering: .relaxed)
            counters.writeBytes.store(result.write.bytes, ordering: .relaxed)
            if let mirror {
                do { try mirror.write(UnsafeRawBufferPointer(rebasing: slots[s].buffer.bytes[0..<Int(io.length)]), at: io.offset) }
                catch { if firstError == nil { firstError = error } }
            }
            if job.verify != nil { written[io.offset] = io.seed }
        case .trim:
            result.trim.record(latencyNs: lat, bytes: io.length)
            counters.trimIos.store(result.trim.ios, ordering: .relaxed)
            if let mirror {
                do { try mirror.discard(at: io.offset, length: io.length) } catch { if firstError == nil { firstError = error } }
            }
            if job.verify != nil { written[io.offset] = nil }
        case .fsync:
            result.sync.record(latencyNs: lat, bytes: 0)
            counters.syncIos.store(result.sync.ios, ordering: .relaxed)
        }
        if io.op != .fsync { overlap?.release(io.offset, io.length) }
    }
}

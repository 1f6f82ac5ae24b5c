import BlockCore
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
    /// Blocks this thread wrote with verify: offset -> seeds.
    var written: [UInt64: Set<UInt64>] = [:]

    private var gen: IoGenerator
    private var slots: [Slot] = []
    private var free: [Int] = []
    private var inFlight = 0
    private var seq: UInt64 = 0
    private var firstError: BlockError?
    /// Where this thread's queue records the requests it holds (set by the workload before start).
    var inFlightRegistry: InFlightRegistry?

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
        let planned = job.numberIos.map { $0 * (job.bsMin + job.bsMax) / 2 } ?? (job.timeBased ? 0 : gen.regionLength)
        counters.plannedBytes.store(planned, ordering: .relaxed)
    }

    /// Replays the generator without doing I/O, recording what a real run would write.
    func dryRunWrites() {
        while let io = gen.next() {
            if io.op == .write { written[io.offset, default: []].insert(io.seed) }
            if io.op == .trim { written[io.offset] = nil }
        }
    }

    /// The thread body: runs the job, then records the elapsed time and any error.
    func run() {
        let t0 = monotonicNanos()
        do { try body() } catch { result.error = error }
        if result.error == nil { result.error = firstError }
        result.elapsedNs = monotonicNanos() - t0
        (result.userCpuNs, result.systemCpuNs) = threadCpuTimes()
        counters.doneFlag.store(true, ordering: .releasing)
    }

    private func body() throws(BlockError) {
        let depth = engine == .sync ? 1 : job.iodepth
        let qo = QueueOptions(depth: depth, queueID: queueID, engine: engine, eventSink: sink, inFlightRegistry: inFlightRegistry)
        let queue = qo.tracking(try disk.makeQueue(qo))
        defer { queue.close() }
        let bufSize = Int(job.bsMax)
        for s in 0..<depth {
            let b = AlignedBuffer(count: bufSize)
            var slot = Slot(buffer: b, readBuffer: job.rw.isMixed ? AlignedBuffer(count: bufSize) : b)
            // Without verify every write reuses its slot's contents, filled once (as fio does).
            slot.fillSeed = job.randseed &+ UInt64(queueID) << 32 &+ UInt64(s)
            if job.rw.writes && job.verify == nil { BlockPattern.fill(slot.buffer.bytes, seed: slot.fillSeed) }
            slots.append(slot)
        }
        free = Array((0..<depth).reversed())
        try mainLoop(queue)
        if job.endFsync && firstError == nil && !control.stopRequested {
            try issue(PlannedIo(op: .fsync, offset: 0, length: 0, seed: 0), queue)
            try queue.submit()
            while inFlight > 0 {
                if let c = queue.nextCompletion() { complete(c) } else { try queue.waitForCompletion() }
            }
        }
    }

    private func mainLoop(_ queue: any AsyncIo) throws(BlockError) {
        var pending: PlannedIo? = nil
        var exhausted = false
        let deadline = job.runtimeNs.map { startTime + $0 }
        while true {
            if control.stopRequested || firstError != nil { exhausted = true; pending = nil }
            if let deadline, !exhausted, monotonicNanos() >= deadline { exhausted = true; pending = nil }
            let paused = control.paused
            if paused && inFlight == 0 {
                control.waitWhilePaused()
                continue
            }
            var issued = 0
            if !paused {
                while !free.isEmpty {
                    if pending == nil {
                        if exhausted { break }
                        pending = gen.next()
                        if pending == nil { exhausted = true; break }
                    }
                    let io = pending!
                    if io.op == .fsync && inFlight > 0 { break }
                    if let overlap, io.op != .fsync, !overlap.tryAcquire(io.offset, io.length) { break }
                    pending = nil
                    try issue(io, queue)
                    issued += 1
                }
            }
            if issued > 0 { try queue.submit() }
            if inFlight == 0 {
                if exhausted && pending == nil { return }
                if pending != nil { usleep(20) } // blocked by another thread's overlapping request
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

    private func issue(_ io: PlannedIo, _ queue: any AsyncIo) throws(BlockError) {
        let s = free.removeLast()
        slots[s].io = io
        let buf = slots[s].buffer
        let len = Int(io.length)
        if io.op == .write, let kind = job.verify {
            BlockPattern.fillVerified(UnsafeMutableRawBufferPointer(rebasing: buf.bytes[0..<len]), offset: io.offset, seed: io.seed, kind: kind)
        }
        seq &+= 1
        let tag = (seq << 16) | UInt64(s)
        let now = monotonicNanos()
        slots[s].start = now
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
        let lat = now &- slots[s].start
        inFlight -= 1
        free.append(s)
        counters.inFlight.store(inFlight, ordering: .relaxed)
        if let e = c.error {
            if firstError == nil { firstError = e.withGuestOffset(io.offset) }
            if io.op != .fsync { overlap?.release(io.offset, io.length) }
            return
        }
        switch io.op {
        case .read:
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
            if job.verify != nil { written[io.offset, default: []].insert(io.seed) }
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

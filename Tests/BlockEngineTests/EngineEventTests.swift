import BlockCore
@testable import BlockEngine
import Foundation
import Synchronization
import Testing
import TestSupport

/// Counts events by kind and checks per-request pairing (a test subscriber).
struct EventTally {
    var accepted: [UInt64: Int] = [:]     // (queue << 48 | request) -> guestRequest count
    var completed: [UInt64: Int] = [:]
    var sqes = 0, cqes = 0, drains = 0, drained = 0

    mutating func add(_ e: IoEvent) {
        let key = UInt64(UInt32(bitPattern: e.queue)) << 48 | e.request
        switch e.payload {
        case .guestRequest: accepted[key, default: 0] += 1
        case .guestCompleted: completed[key, default: 0] += 1
        case .sqeSubmitted: sqes += 1
        case .cqeReaped: cqes += 1
        case let .cqDrain(batch): drains += 1; drained += batch
        default: break
        }
    }
}

@Suite("Engine event stream")
struct EngineEventStreamTests {
    func event(_ q: Int32, _ r: UInt64) -> IoEvent { IoEvent(queue: q, request: r, .cqDrain(batch: Int(r))) }

    @Test("events are small trivial values, so rings copy them without reference counting")
    func eventLayout() {
        #expect(_isPOD(IoEvent.self))
        #expect(MemoryLayout<IoEvent>.stride <= 80)
    }

    @Test("a ring hands events back in order and counts what it had to drop")
    func ringOrderAndLoss() {
        let ring = EventRing(capacity: 8)
        for i in 0..<20 { ring.push(event(0, UInt64(i))) }
        #expect(ring.lost == 12)
        var got: [UInt64] = []
        ring.drain { got.append($0.request) }
        #expect(got == Array(0..<8))
        ring.push(event(0, 99))
        got = []
        ring.drain { got.append($0.request) }
        #expect(got == [99])
    }

    @Test("the stream buffers only while subscribed and routes by queue")
    func subscription() {
        let s = EventStream(queues: 2, capacityPerQueue: 16)
        s.publish(event(0, 1))
        let sub = s.subscribe()
        s.publish(event(0, 2))
        s.publish(event(1, 3))
        s.publish(event(5, 4))           // unknown queue: counted as lost
        let got = sub.poll()
        #expect(got.map { $0.request }.sorted() == [2, 3])
        #expect(sub.lostEvents == 1)
        sub.cancel()
        s.publish(event(0, 5))
        #expect(s.rings[0].buffered == 0)
    }

    @Test("a producer that never outruns the ring's capacity loses nothing: every event arrives once, in order")
    func concurrentSPSC() {
        let s = EventStream(queues: 1, capacityPerQueue: 1 << 12)
        let sub = s.subscribe()
        let n = 200_000
        let ring = s.rings[0]
        // The ring is big enough by construction: the producer publishes only while fewer
        // than `capacity` events are buffered (the consumer drains concurrently).
        let producer = Thread {
            for i in 0..<n {
                while ring.buffered >= ring.capacity { sched_yield() }
                s.publish(IoEvent(queue: 0, request: UInt64(i), .cqDrain(batch: 0)))
            }
        }
        producer.start()
        var received: [UInt64] = []
        received.reserveCapacity(n)
        let deadline = Date().addingTimeInterval(180)
        while received.count < n && Date() < deadline {
            sub.drain { received.append($0.request) }
        }
        #expect(sub.lostEvents == 0)
        #expect(received.count == n)
        #expect(received == (0..<UInt64(n)).map { $0 }, "events arrive once each, in publication order")
    }

    @Test("a producer that outruns the consumer: what arrives is in order, and arrived + lost counts every event")
    func concurrentSPSCWithLosses() {
        let s = EventStream(queues: 1, capacityPerQueue: 64)
        let sub = s.subscribe()
        let n = 200_000
        final class Flag: Sendable { let value = Atomic<Bool>(false) }
        let done = Flag()
        let producer = Thread {
            for i in 0..<n { s.publish(IoEvent(queue: 0, request: UInt64(i), .cqDrain(batch: 0))) }
            done.value.store(true, ordering: .releasing)
        }
        producer.start()
        var received: [UInt64] = []
        var inOrder = true
        let deadline = Date().addingTimeInterval(180)
        while Date() < deadline {
            let finished = done.value.load(ordering: .acquiring)
            sub.drain { e in
                if let last = received.last, e.request <= last { inOrder = false }
                received.append(e.request)
            }
            // The producer finished before this drain began: everything buffered was drained.
            if finished { break }
        }
        let producerFinished = done.value.load(ordering: .acquiring)
        #expect(producerFinished)
        #expect(inOrder, "delivered events are strictly increasing")
        #expect(UInt64(received.count) + sub.lostEvents == UInt64(n), "\(received.count) delivered + \(sub.lostEvents) lost != \(n)")
    }

    @Test("step mode lets exactly one event through per step")
    func stepGate() throws {
        let s = EventStream(queues: 1, capacityPerQueue: 64)
        let sub = s.subscribe()
        let gate = StepGate(downstream: s)
        gate.enable()
        let t = Thread { for i in 0..<3 { gate.publish(IoEvent(queue: 0, request: UInt64(i), .cqDrain(batch: 0))) } }
        t.start()
        try waitBlocking { gate.heldEvent != nil }
        #expect(sub.poll().isEmpty)
        #expect(gate.heldEvent?.request == 0)
        gate.step()
        var got: [UInt64] = []
        try waitBlocking { got += sub.poll().map { $0.request }; return !got.isEmpty }
        try waitBlocking { gate.heldEvent?.request == 1 }
        #expect(got == [0])
        gate.disable()
        try waitBlocking { got += sub.poll().map { $0.request }; return got.count == 3 }
        #expect(got == [0, 1, 2])
    }
}

/// Polls `condition` every 10 ms for up to 180 s on the calling thread: a test that drives a
/// workload's threads must not depend on Swift's cooperative pool, which a busy parallel
/// suite on two cores can starve for minutes.
func waitBlocking(_ condition: () -> Bool) throws {
    let deadline = monotonicNanos() + 180_000_000_000
    while monotonicNanos() < deadline {
        if condition() { return }
        usleep(10_000)
    }
    if condition() { return }   // a thread starved past the deadline still looks once more
    Issue.record("condition not met within 180 s")
}


@Suite("Engine workload events")
struct EngineWorkloadEventTests {
    func makeImage(_ dir: String, size: Int = 32 << 20) throws -> String {
        let p = dir + "/img.raw"
        FileManager.default.createFile(atPath: p, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: p))
        try h.truncate(atOffset: UInt64(size))
        try h.close()
        return p
    }

    func runCounted(engine: EngineKind) throws {
        let dir = try TestSupport.makeTempDir("engine-events")
        defer { TestSupport.removeTempDir(dir) }
        let path = try makeImage(dir)
        var o = OpenOptions(writable: true)
        o.ignoreLocks = true
        let disk = try openDisk(path, options: o)
        let file = try FioJobFile.parse("""
        [global]
        iodepth=16
        ioengine=\(engine == .sync ? "sync" : "io_uring")
        [mix]
        rw=randrw
        number_ios=3000
        fsync=50
        [seq]
        rw=write
        bs=16k
        size=4M
        offset=16M
        """)
        let stream = EventStream(queues: 4, capacityPerQueue: 1 << 16)
        let sub = stream.subscribe()
        var opts = WorkloadOptions()
        opts.eventSink = stream
        let w = try Workload(disk: disk, jobs: file.jobs, options: opts)
        let result = try w.run()
        var tally = EventTally()
        sub.drain { tally.add($0) }
        #expect(sub.lostEvents == 0)
        let mix = result.jobs[0], seq = result.jobs[1]
        #expect(mix.read.ios + mix.write.ios == 3000)
        #expect(seq.write.ios == 256)
        let guestIos = Int(mix.read.ios + mix.write.ios + mix.sync.ios + seq.write.ios)
        #expect(tally.accepted.count == guestIos)
        #expect(tally.accepted.values.allSatisfy { $0 == 1 })
        #expect(tally.completed == tally.accepted)
        #expect(tally.sqes == tally.cqes)
        if engine != .sync {
            #expect(tally.sqes >= guestIos)
            #expect(tally.drained == tally.cqes)
        }
        let snap = w.snapshot()
        #expect(snap.totalIos == UInt64(guestIos))
        #expect(snap.inFlight == 0)
        try disk.close()
    }

    @Test("every accepted guest request completes exactly once; SQEs match CQEs (io_uring)")
    func countsUring() throws { try runCounted(engine: .uring) }

    @Test("every accepted guest request completes exactly once (sync engine)")
    func countsSync() throws { try runCounted(engine: .sync) }

    @Test("a paused workload stops issuing and finishes after resume; stop ends it early")
    func pauseResumeStop() throws {
        let dir = try TestSupport.makeTempDir("engine-pause")
        defer { TestSupport.removeTempDir(dir) }
        let path = try makeImage(dir)
        var o = OpenOptions(writable: true)
        o.ignoreLocks = true
        let disk = try openDisk(path, options: o)
        let file = try FioJobFile.parse("[w]\nrw=randwrite\niodepth=4\nruntime=120\ntime_based\n")
        let w = try Workload(disk: disk, jobs: file.jobs)
        try w.start()
        try waitBlocking { w.snapshot().totalIos > 0 }
        w.pause()
        try waitBlocking { w.snapshot().inFlight == 0 }
        let a = w.snapshot()
        usleep(100_000)
        let b = w.snapshot()
        #expect(a.totalIos == b.totalIos)
        #expect(b.inFlight == 0)
        #expect(w.isPaused)
        w.resume()
        try waitBlocking { w.snapshot().totalIos > b.totalIos }
        w.stop()
        let r = try w.wait()
        #expect(r.elapsedNs < 120_000_000_000)  // stopped before its runtime
        try disk.close()
    }
}

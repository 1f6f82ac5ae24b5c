import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// The In-flight view shows what the engine's queues hold (their exact snapshot), never a
/// reconstruction from the lossy event stream: under a QD32 job it never shows more than the
/// queue can hold, and it shows 0 once the job is done; qemu-img check finds the image clean.
@Suite struct InFlightTruthTests {
    @Test("a QD32 random-write job on a QCOW2 never shows more in flight than its queue holds, and 0 when done")
    func qd32JobOnQcow2() throws {
        let f = try TuiFixture("inflight-truth")
        let img = f.dir + "/j.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "64M"])
        let job = f.dir + "/w.fio"
        try "[w]\nrw=randwrite\nbs=4k\niodepth=32\nsize=64M\nnumber_ios=20000\nfsync=512\n".write(toFile: job, atomically: true, encoding: .utf8)
        let app = try f.app(img, write: true)
        app.execute(.job(path: job))
        var maxShown = 0, frames = 0, sawRequests = false
        let finished = Progress.wait(interval: 0.005) {
            app.pump()
            let frame = app.render(width: 160, height: 50).text
            let shown = app.state.inFlightSnapshot.count
            maxShown = max(maxShown, shown)
            if shown > 0 { sawRequests = true }
            frames += 1
            // The view's summary states the same count as the snapshot.
            if app.currentView is InFlightView { #expect(frame.contains("in flight \(shown) ")) }
            if frames == 1 { app.selectView(named: "in-flight") }
            return !app.state.busy && app.state.live.log.contains { $0.contains("done:") }
        }
        #expect(finished, "the job did not finish")
        #expect(sawRequests, "the view never saw a request in flight during \(frames) frames")
        #expect(maxShown <= 32, "showed \(maxShown) requests in flight on one queue of depth 32")
        app.pump()
        #expect(app.state.inFlightSnapshot.isEmpty)
        #expect(app.state.live.inFlight.isEmpty, "ghost requests left in the live model: \(app.state.live.inFlight.count)")
        let frame = app.render(width: 160, height: 50).text
        #expect(frame.contains("in flight 0 "), "\(frame.prefix(400))")
        app.shutdown()
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText)")
    }

    @Test("the registry holds a request from queueing until its completion is returned")
    func registryFollowsTheQueue() throws {
        let dir = try TestSupport.makeTempDir("registry"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/r.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "4M"])
        let disk = try openDisk(img, options: OpenOptions(writable: true))
        defer { try? disk.close() }
        let registry = InFlightRegistry()
        let qo = QueueOptions(depth: 8, queueID: 3, inFlightRegistry: registry)
        let q = try disk.makeQueue(qo)
        let buf = AlignedBuffer(count: 4096)
        for i in 0..<5 { try q.write(at: UInt64(i) * 4096, from: UnsafeRawBufferPointer(buf.bytes), userData: UInt64(100 + i)) }
        try q.fsync(userData: 200)
        #expect(registry.snapshot().map(\.userData).sorted() == [100, 101, 102, 103, 104, 200])
        #expect(registry.snapshot().allSatisfy { $0.queue == 3 })
        try q.submit()
        var returned: [UInt64] = []
        while let c = try q.awaitCompletion() {
            returned.append(c.userData)
            #expect(!registry.snapshot().contains { $0.userData == c.userData })
        }
        #expect(returned.count == 6)
        #expect(registry.count == 0)
        q.close()
        #expect(registry.snapshot().isEmpty)
    }

    @Test("each queue's figures count every completion by kind and bytes, stay after it closes; a served request stays listed until its reply is sent")
    func figuresCountEveryCompletion() throws {
        let dir = try TestSupport.makeTempDir("figures"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/r.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "4M"])
        let disk = try openDisk(img, options: OpenOptions(writable: true))
        defer { try? disk.close() }
        let registry = InFlightRegistry()
        let fe = FrontEndQueue(client: "nbd 1 unix", tagName: "cookie")
        let q = try disk.makeQueue(QueueOptions(depth: 8, queueID: 9, inFlightRegistry: registry, frontEnd: fe))
        let buf = AlignedBuffer(count: 8192)
        for i in 0..<3 {
            fe.origin(clientTag: UInt64(0xc0 + i), receivedNs: 1)
            try q.write(at: UInt64(i) * 8192, from: UnsafeRawBufferPointer(buf.bytes), userData: UInt64(10 + i))
        }
        fe.origin(clientTag: 0xd0, receivedNs: 1)
        try q.read(at: 0, into: UnsafeMutableRawBufferPointer(rebasing: buf.bytes[0..<4096]), userData: 20)
        // One client request split into two engine writes under one tag (NBD NO_HOLE zeroes).
        fe.origin(clientTag: 0xe0, receivedNs: 1)
        try q.write(at: 0x100000, from: UnsafeRawBufferPointer(buf.bytes), userData: 30)
        try q.write(at: 0x102000, from: UnsafeRawBufferPointer(buf.bytes), userData: 30)
        #expect(registry.snapshot().map(\.clientTag) == [0xc0, 0xc1, 0xc2, 0xd0, 0xe0])
        #expect(registry.snapshot().allSatisfy { $0.client == "nbd 1 unix" && $0.queue == 9 })
        try q.submit()
        var n = 0
        while try q.awaitCompletion() != nil { n += 1 }
        // Handed back, not yet answered: still listed (the tag queued twice once).
        #expect(n == 6 && registry.count == 5)
        #expect(registry.snapshot().allSatisfy { $0.handedBackNs > 0 })
        fe.replied([10, 11, 12, 20, 30].map { (userData: UInt64($0), receivedNs: UInt64(1)) }, sentNs: 1_000_001)
        #expect(registry.count == 0)
        try q.fsync(userData: 40)
        try q.submit()
        while try q.awaitCompletion() != nil { n += 1 }
        fe.forget(40)
        #expect(registry.count == 0)
        let open = try #require(registry.queues().first)
        #expect(open.open && open.name == "nbd 1 unix" && open.clientTagName == "cookie")
        let f = open.figures
        #expect(f.completed == 7 && f.writes == 5 && f.reads == 1 && f.flushes == 1 && f.errors == 0)
        #expect(f.writeBytes == 5 * 8192 && f.readBytes == 4096 && f.engine.count == 7)
        #expect(f.endToEnd.count == 5 && f.endToEnd.percentile(50) ?? 0 >= 900_000)
        q.close()
        let closed = try #require(registry.queues().first)
        #expect(!closed.open && closed.figures == f)
    }

    @Test("the counters' latency histogram gives percentiles within 6% of the exact ones")
    func histogramPercentiles() {
        var h = LatencyHistogram()
        var values: [UInt64] = []
        var x: UInt64 = 12345
        for _ in 0..<20000 {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let v = 1000 + (x >> 33) % 5_000_000
            values.append(v)
            h.record(v)
        }
        values.sort()
        for p in [50.0, 90, 99, 99.9] {
            let exact = Double(values[Int((Double(values.count) * p / 100).rounded(.up)) - 1])
            let got = Double(h.percentile(p) ?? 0)
            #expect(abs(got - exact) / exact <= 0.0625, "p\(p): \(got) vs \(exact)")
        }
        #expect(h.percentile(100) ?? 0 <= values.last!)
        #expect(h.count == 20000)
    }
}

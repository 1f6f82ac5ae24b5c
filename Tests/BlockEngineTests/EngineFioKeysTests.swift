import BlockCore
import Testing
@testable import BlockEngine

/// The fio keys of issue 15: parsing (values and errors) and the generator's semantics.
@Suite("fio keys")
struct EngineFioKeysTests {
    func job(_ body: String) throws -> FioJob {
        try FioJobFile.parse("[j]\n" + body, source: "t.fio").jobs[0]
    }

    func errorText(_ text: String) -> String {
        do { _ = try FioJobFile.parse(text, source: "t.fio"); return "" } catch { return "\(error)" }
    }

    @Test("bssplit, per direction, with shares left open")
    func bssplit() throws {
        let j = try job("rw=randrw\nbssplit=4k/50:8k/50,16k/100\n")
        #expect(j.bsSplit[0] == [BlockSizeShare(size: 4096, percent: 50), BlockSizeShare(size: 8192, percent: 50)])
        #expect(j.bsSplit[1] == [BlockSizeShare(size: 16384, percent: 100)])
        #expect(j.bsMin == 4096 && j.bsMax == 16384)
        let open = try job("bssplit=4k/60:8k:16k\n")
        #expect(open.bsSplit[0].map { $0.percent } == [60, 20, 20])
    }

    @Test("random_distribution models, rate lists, negative strides, steady state, times")
    func values() throws {
        #expect(try job("random_distribution=zipf:1.2\n").distribution[0] == .zipf(theta: 1.2))
        #expect(try job("random_distribution=pareto:0.9\n").distribution[1] == .pareto(h: 0.9))
        let z = try job("random_distribution=zoned:50/5:30/15:20/\n").distribution[0]
        #expect(z == .zoned([AccessZone(accessPercent: 50, size: 5), AccessZone(accessPercent: 30, size: 15), AccessZone(accessPercent: 20, size: 80)]))
        #expect(try job("random_distribution=zoned_abs:50/1M:50/2M\n").distribution[0] == .zonedAbs([AccessZone(accessPercent: 50, size: 1 << 20), AccessZone(accessPercent: 50, size: 2 << 20)]))
        #expect(try job("rate=1m,500k\n").rateBytes == [1 << 20, 500 << 10, 500 << 10])
        #expect(try job("rate=,500k\n").rateBytes == [0, 500 << 10, 500 << 10])
        #expect(try job("rw=read:-8k\n").sequentialSkip == -8192)
        let ss = try #require(try job("time_based\nss=bw_slope:1%\nss_dur=10s\nss_ramp=5\n").steadyState)
        #expect(ss.metric == .bw && ss.slope && ss.percent)
        #expect(ss.durationNs == 10_000_000_000 && ss.rampNs == 5_000_000_000)
        #expect(try job("thinktime=2000\n").thinktimeNs == 2_000_000)
        #expect(try job("latency_target=500000\nlatency_window=5000000\nlatency_percentile=99.9\n").latencyTargetNs == 500_000_000)
        #expect(try job("timeout=60\n").runtimeNs == 60_000_000_000)
        #expect(try job("norandommap\n").randomMap == false)
        #expect(try job("verify=meta\nverify_pattern=0xaa555aa5\nverify_interval=512\n").verifyPattern == [0xaa, 0x55, 0x5a, 0xa5])
    }

    @Test("groups: stonewall and new_group advance groupid; wait_for must name an earlier job")
    func groups() throws {
        let f = try FioJobFile.parse("[a]\n[b]\n[c]\nstonewall\n[d]\nnew_group\nwait_for=a\n", source: "t.fio")
        #expect(f.jobs.map { $0.groupID } == [0, 0, 1, 2])
        #expect(errorText("[a]\nwait_for=zz\n").contains("wait_for=zz names no earlier job"))
    }

    @Test("malformed values end in one message naming the file, line and key")
    func malformed() {
        let cases = [
            ("[j]\nbssplit=4k/50:8k/40\n", "bssplit shares of the read direction add up to 90%"),
            ("[j]\nbssplit=4k/x\n", "line 2: bssplit"),
            ("[j]\nrandom_distribution=zipf:abc\n", "line 2: random_distribution"),
            ("[j]\nrandom_distribution=zipf:1\n", "must not be 1"),
            ("[j]\nrandom_distribution=zoned:50/5:40/10\n", "add up to 90%"),
            ("[j]\nrate=fast\n", "line 2: rate"),
            ("[j]\nrw=read:-x\n", "line 2: rw"),
            ("[j]\nss=wobble:3%\n", "line 2: ss"),
            ("[j]\nexit_what=everything\n", "line 2: exit_what"),
            ("[j]\nverify_pattern=0xZZ\n", "line 2: verify_pattern"),
            ("[j]\nrate_process=bursty\n", "line 2: rate_process"),
            ("[j]\nbssplit=" + String(repeating: "4k/1:", count: 100) + "\n", "entries"),
        ]
        for (text, want) in cases {
            let e = errorText(text)
            #expect(e.contains(want) && e.contains("t.fio"), "\(text.debugDescription): \(e)")
        }
    }

    @Test("the random map: randwrite touches every block exactly once per loop")
    func randomMap() throws {
        var j = try job("rw=randwrite\nbs=4k\nsize=1M\nloops=3\n")
        j.randseed = 7
        var g = try IoGenerator(job: j, diskSize: 4 << 20, thread: 0)
        var loops: [Set<UInt64>] = [[], [], []]
        var n = 0
        while let io = g.next() {
            #expect(loops[n / 256].insert(io.offset).inserted, "block \(io.offset) repeated within loop \(n / 256)")
            n += 1
        }
        #expect(n == 768 && loops.allSatisfy { $0.count == 256 })
        // norandommap: blocks drawn independently, so a seeded pass of 256 draws over 256
        // blocks repeats some (about 256/e blocks are never drawn); the random map never does.
        j.randomMap = false
        var g2 = try IoGenerator(job: j, diskSize: 4 << 20, thread: 0)
        var perPass: [[UInt64: Int]] = [[:], [:], [:]]
        var m = 0
        while let io = g2.next() {
            #expect(io.offset % 4096 == 0 && io.offset < 1 << 20)
            perPass[m / 256][io.offset, default: 0] += 1
            m += 1
        }
        #expect(m == 768)
        for (i, pass) in perPass.enumerated() {
            #expect(pass.values.contains { $0 > 1 }, "norandommap pass \(i) drew no block twice")
            #expect(pass.count < 256 && pass.count > 128, "pass \(i): \(pass.count) distinct blocks")
        }
    }

    @Test("a stride reaching the disk's end ends the pass: cross-stripe-verify's second job writes 1,791 blocks per loop, as fio does")
    func strideEndsThePassAtTheEnd() throws {
        // fio 3.33 on a 512 MiB file: 2 x 2,048 writes for the job at 120 KiB (io_size ends
        // its passes), 2 x 1,791 for the one at 288 MiB + 120 KiB (the file's end does).
        let j = try job("rw=write:112k\nbs=16k\noffset=120k\noffset_increment=288m\nio_size=32m\nloops=2\n")
        for (thread, start, perLoop) in [(0, UInt64(120 << 10), 2_048), (1, UInt64((288 << 20) + (120 << 10)), 1_791)] {
            var g = try IoGenerator(job: j, diskSize: 512 << 20, thread: thread)
            var offsets: [UInt64] = []
            while let io = g.next() { offsets.append(io.offset) }
            let pass = (0..<perLoop).map { start + UInt64($0) * (128 << 10) }
            #expect(offsets == pass + pass, "thread \(thread): \(offsets.count) writes, last \(offsets.last.map(hex) ?? "none")")
            #expect(g.loopsCompleted == 2)
        }
    }

    @Test("RandomMap finds the next free block across words and wraps")
    func randomMapStructure() {
        var m = RandomMap(blocks: 200)
        m.mark(0, count: 199)
        #expect(m.nextFree(from: 5) == 199)
        m.mark(199)
        #expect(m.isFull && m.nextFree(from: 0) == nil)
        m.reset()
        m.mark(64, count: 136)
        #expect(m.nextFree(from: 100) == 0)
    }

    @Test("backwards and strided sequential offsets follow fio's order")
    func strides() throws {
        var g = try IoGenerator(job: try job("rw=read:-8k\nbs=4k\nsize=64k\n"), diskSize: 1 << 20, thread: 0)
        var offs: [UInt64] = []
        while let io = g.next() { offs.append(io.offset) }
        #expect(offs.count == 16)
        #expect(Array(offs.prefix(4)) == [0, 56 << 10, 52 << 10, 48 << 10])
        var h = try IoGenerator(job: try job("rw=write:112k\nbs=16k\nsize=1M\n"), diskSize: 4 << 20, thread: 0)
        var n = 0
        while h.next() != nil { n += 1 }
        #expect(n == 8)
    }

    @Test("offset_increment places each thread; io_size sets the amount")
    func offsetIncrement() throws {
        let j = try job("rw=randread\nbs=4k\nnumjobs=3\noffset=4k\noffset_increment=1M\nio_size=64k\n")
        for t in 0..<3 {
            var g = try IoGenerator(job: j, diskSize: 8 << 20, thread: t)
            #expect(g.regionStart == 4096 + UInt64(t) << 20)
            var n = 0
            while let io = g.next() { n += 1; #expect(io.offset >= g.regionStart) }
            #expect(n == 16)
        }
    }

    @Test("zoned draws land in each zone with its share")
    func zonedStatistics() {
        let s = OffsetSampler(.zoned([AccessZone(accessPercent: 60, size: 10), AccessZone(accessPercent: 40, size: 90)]),
                              blocks: 10_000, blockSize: 4096, seed: 1)
        var rng = Xorshift64Star(seed: 3)
        var first = 0
        for _ in 0..<100_000 where s.draw(&rng) < 1000 { first += 1 }
        #expect(abs(Double(first) / 100_000 - 0.6) < 0.01)
    }

    @Test("zipf and normal stay in range; zipf concentrates on few blocks")
    func skewed() {
        var rng = Xorshift64Star(seed: 5)
        let z = OffsetSampler(.zipf(theta: 1.2), blocks: 4096, blockSize: 4096, seed: 9)
        var counts = [Int](repeating: 0, count: 4096)
        for _ in 0..<50_000 { counts[Int(z.draw(&rng))] += 1 }
        let top = counts.sorted(by: >).prefix(410).reduce(0, +)
        #expect(Double(top) / 50_000 > 0.6)
        let n = OffsetSampler(.normal(deviation: 10), blocks: 1000, blockSize: 4096, seed: 9)
        var mid = 0
        for _ in 0..<10_000 { let v = n.draw(&rng); #expect(v < 1000); if v >= 400 && v < 600 { mid += 1 } }
        #expect(mid > 5000)
    }
}

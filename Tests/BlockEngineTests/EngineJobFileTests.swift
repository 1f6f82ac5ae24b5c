import BlockCore
@testable import BlockEngine
import Testing

@Suite("Engine job file parser")
struct EngineJobFileTests {
    @Test("global keys apply to later jobs; a section overrides them")
    func globalsMerge() throws {
        let f = try FioJobFile.parse("""
        [global]
        bs=8k
        iodepth=4
        randseed=7
        [a]
        rw=randrw
        rwmixread=70
        number_ios=100
        [b]
        rw=write
        bs=64k
        offset=1M
        size=2M
        runtime=500ms
        time_based
        """)
        #expect(f.jobs.count == 2)
        #expect(f.jobs[0].name == "a" && f.jobs[0].bsMin == 8192 && f.jobs[0].iodepth == 4 && f.jobs[0].rw == .randrw)
        #expect(f.jobs[0].rwmixread == 70 && f.jobs[0].numberIos == 100 && f.jobs[0].randseed == 7)
        #expect(f.jobs[1].bsMin == 65536 && f.jobs[1].offset == 1 << 20 && f.jobs[1].size == 2 << 20)
        #expect(f.jobs[1].runtimeNs == 500_000_000 && f.jobs[1].timeBased)
    }

    @Test("an unknown key is an error naming the key and its line")
    func unknownKey() {
        do {
            _ = try FioJobFile.parse("[a]\nrw=read\n\nfrobnicate=3\n", source: "x.fio")
            Issue.record("expected an error")
        } catch {
            #expect(error.kind == .invalidArgument)
            #expect(error.description.contains("line 4"))
            #expect(error.description.contains("frobnicate"))
            #expect(error.description.contains("x.fio"))
        }
    }

    @Test("a bad value is an error naming the key and its line")
    func badValue() {
        do {
            _ = try FioJobFile.parse("[a]\nrw=sideways\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("line 2") && error.description.contains("rw"))
        }
        do {
            _ = try FioJobFile.parse("[a]\nrw=read\nbs=4q\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("line 3") && error.description.contains("bs"))
        }
    }

    @Test("fio keys that do not apply only warn, with their line")
    func warnOnly() throws {
        let f = try FioJobFile.parse("[a]\nfilename=/dev/sdb\nrw=read\ninvalidate=1\n")
        #expect(f.warnings.count == 2)
        #expect(f.warnings[0].contains("line 2") && f.warnings[0].contains("filename"))
    }

    @Test("every documented key parses")
    func allKeys() throws {
        let f = try FioJobFile.parse("""
        [j]
        name=renamed
        readwrite=randwrite
        rwmixwrite=20
        blocksize=4k
        bsrange=4k-16k
        blockalign=4k
        size=1M
        offset=0
        iodepth=32
        numjobs=2
        number_ios=10
        runtime=2
        fsync=4
        end_fsync=1
        randseed=0x10
        serialize_overlap=1
        ioengine=psync
        direct=1
        group_reporting
        """)
        let j = f.jobs[0]
        #expect(j.name == "renamed" && j.rw == .randwrite && j.rwmixread == 80)
        #expect(j.bsMin == 4096 && j.bsMax == 16384 && j.numjobs == 2 && j.fsync == 4 && j.endFsync)
        #expect(j.randseed == 16 && j.serializeOverlap && j.engine == .sync && j.direct && j.groupReporting)
        #expect(j.runtimeNs == 2_000_000_000)
    }

    @Test("verify needs a fixed block size")
    func verifyNeedsFixedBs() {
        #expect(throws: BlockError.self) { try FioJobFile.parse("[a]\nrw=write\nbsrange=4k-8k\nverify=md5\n") }
    }

    @Test("job files are told apart from command scripts")
    func detection() {
        #expect(FioJobFile.looksLikeJobFile("[global]\nbs=4k\n[a]\nrw=read\n"))
        #expect(!FioJobFile.looksLikeJobFile("write 0 4k\nread 0 4k 0xcd\n"))
    }

    @Test("fio time values")
    func times() {
        #expect(FioJobFile.parseTime("10") == 10_000_000_000)
        #expect(FioJobFile.parseTime("250ms") == 250_000_000)
        #expect(FioJobFile.parseTime("2m") == 120_000_000_000)
        #expect(FioJobFile.parseTime("5us") == 5_000)
        #expect(FioJobFile.parseTime("abc") == nil)
    }
}

@Suite("Engine PRNG and generator")
struct EnginePrngTests {
    @Test("the same seed gives the same sequence; different seeds differ")
    func determinism() {
        var a = Xorshift64Star(seed: 42), b = Xorshift64Star(seed: 42), c = Xorshift64Star(seed: 43)
        let sa = (0..<1000).map { _ in a.next() }
        let sb = (0..<1000).map { _ in b.next() }
        let sc = (0..<1000).map { _ in c.next() }
        #expect(sa == sb)
        #expect(sa != sc)
        var z = Xorshift64Star(seed: 0)
        #expect(z.next() != 0)
    }

    @Test("below(n) stays in range and covers it")
    func bounded() {
        var r = Xorshift64Star(seed: 1)
        var seen = Set<UInt64>()
        for _ in 0..<10_000 { let v = r.below(10); #expect(v < 10); seen.insert(v) }
        #expect(seen.count == 10)
    }

    /// fio's `rw=write:60k`: 4 KiB at every 64 KiB, wrapping at the region's end; a bad
    /// suffix is an error naming the line.
    @Test("rw=write:SIZE leaves a hole after each sequential request")
    func sequentialSkip() throws {
        let f = try FioJobFile.parse("[s]\nrw=write:60k\nbs=4k\nsize=256k\nnumber_ios=6\n")
        #expect(f.jobs[0].sequentialSkip == 60 << 10)
        var g = try IoGenerator(job: f.jobs[0], diskSize: 1 << 20, thread: 0)
        var offs: [UInt64] = []
        while let x = g.next() { offs.append(x.offset) }
        #expect(offs == [0, 64 << 10, 128 << 10, 192 << 10, 0, 64 << 10])
        #expect(throws: BlockError.self) { _ = try FioJobFile.parse("[s]\nrw=write:lots\n") }
    }

    @Test("a job's request sequence is reproducible, aligned and inside its region")
    func generator() throws {
        var j = FioJob(name: "g")
        j.rw = .randrw; j.rwmixread = 70; j.numberIos = 5000; j.offset = 1 << 20; j.size = 8 << 20
        var g1 = try IoGenerator(job: j, diskSize: 16 << 20, thread: 0)
        var g2 = try IoGenerator(job: j, diskSize: 16 << 20, thread: 0)
        var a: [PlannedIo] = [], b: [PlannedIo] = []
        while let x = g1.next() { a.append(x) }
        while let x = g2.next() { b.append(x) }
        #expect(a == b)
        #expect(a.count == 5000)
        #expect(a.allSatisfy { $0.offset >= 1 << 20 && $0.offset + $0.length <= 9 << 20 && $0.offset % 4096 == 0 })
        let reads = a.filter { $0.op == .read }.count
        #expect(reads > 3300 && reads < 3700)
        var g3 = try IoGenerator(job: j, diskSize: 16 << 20, thread: 1)
        #expect(g3.next() != a[0])
    }

    @Test("fsync=N inserts a flush after every N writes; size bounds a sequential job")
    func fsyncAndSize() throws {
        var j = FioJob(name: "s")
        j.rw = .write; j.size = 64 << 10; j.fsync = 4
        var g = try IoGenerator(job: j, diskSize: 1 << 20, thread: 0)
        var ops: [PlannedIo] = []
        while let x = g.next() { ops.append(x) }
        #expect(ops.filter { $0.op == .write }.count == 16)
        #expect(ops.filter { $0.op == .fsync }.count == 4)
        #expect(ops[4].op == .fsync)
        #expect(ops.filter { $0.op == .write }.map { $0.offset } == (0..<16).map { UInt64($0) * 4096 })
    }
}

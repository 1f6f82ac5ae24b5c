import BlockCore
import Foundation
import Testing
import TestSupport

/// End-to-end tests of the workload engine: the built binary against qemu-img as oracle.
@Suite("Engine end-to-end", .serialized)
struct EngineEndToEndTests {
    static let twoSections = """
    [global]
    bs=4k
    iodepth=16
    randseed=1234

    [mix]
    rw=randrw
    rwmixread=70
    number_ios=4000
    size=16M

    [seq]
    rw=write
    bs=64k
    offset=16M
    size=8M
    """

    func image(_ dir: String, _ name: String = "img.raw", size: String = "32M") throws -> String {
        let p = dir + "/" + name
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", p, size])
        return p
    }

    func write(_ path: String, _ text: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    func runJSON(_ args: [String]) throws -> JSONValue {
        let r = try TestSupport.blockscope(args)
        #expect(r.status == 0, "blockscope \(args) failed: \(r.stderr)")
        return try JSONValue.parse(r.stdoutText)
    }

    func checkTwoSections(_ json: JSONValue) {
        guard let jobs = json["jobs"]?.arrayValue, jobs.count == 2 else { Issue.record("expected 2 jobs: \(json.render())"); return }
        #expect(jobs[0]["jobname"]?.stringValue == "mix")
        #expect(jobs[1]["jobname"]?.stringValue == "seq")
        let reads = jobs[0]["read"]?["total_ios"]?.intValue ?? -1
        let writes = jobs[0]["write"]?["total_ios"]?.intValue ?? -1
        #expect(reads + writes == 4000)
        #expect(reads > 2650 && reads < 2950, "read share \(reads)/4000 is not near 70%")
        #expect(jobs[0]["read"]?["io_bytes"]?.intValue == reads * 4096)
        #expect(jobs[1]["write"]?["total_ios"]?.intValue == 128)
        #expect(jobs[1]["write"]?["io_bytes"]?.intValue == 8 << 20)
        #expect(jobs[1]["read"]?["total_ios"]?.intValue == 0)
        for j in jobs {
            for dir in ["read", "write"] {
                guard let d = j[dir], (d["total_ios"]?.intValue ?? 0) > 0 else { continue }
                #expect((d["iops"].flatMap { if case let .double(v) = $0 { return v } else { return Double($0.intValue ?? 0) } } ?? 0) > 0)
                #expect((d["bw"]?.intValue ?? 0) > 0)
                guard case let .object(kv)? = d["clat_ns"]?["percentile"] else { Issue.record("no percentiles"); continue }
                #expect(kv.map { $0.0 }.contains("50.000000") && kv.map { $0.0 }.contains("99.000000"))
                let v = kv.compactMap { $0.1.intValue }
                #expect(v.count == kv.count && zip(v, v.dropFirst()).allSatisfy { $0 <= $1 }, "percentiles not monotone: \(v)")
            }
        }
    }

    @Test("a two-section job gives fio-shaped JSON with exact counts and a ~70/30 split (io_uring)")
    func twoSectionJobUring() throws {
        let dir = try TestSupport.makeTempDir("engine-e2e")
        defer { TestSupport.removeTempDir(dir) }
        let img = try image(dir)
        try write(dir + "/two.fio", Self.twoSections)
        checkTwoSections(try runJSON(["run", "--write", "--output=json", img, dir + "/two.fio"]))
    }

    @Test("the same job runs with the sync engine (ioengine=psync)")
    func twoSectionJobSync() throws {
        let dir = try TestSupport.makeTempDir("engine-e2e")
        defer { TestSupport.removeTempDir(dir) }
        let img = try image(dir)
        try write(dir + "/two.fio", Self.twoSections.replacingOccurrences(of: "[global]", with: "[global]\nioengine=psync"))
        let json = try runJSON(["run", "--write", "--output=json", img, dir + "/two.fio"])
        checkTwoSections(json)
        #expect(json["jobs"]?.arrayValue?.first?["job options"]?["ioengine"]?.stringValue == "psync")
    }

    @Test("verify passes; after a data byte is flipped on disk, verify_only fails naming the offset")
    func verifyThenFlip() throws {
        let dir = try TestSupport.makeTempDir("engine-e2e")
        defer { TestSupport.removeTempDir(dir) }
        let img = try image(dir, size: "8M")
        let job = "[v]\nrw=write\nbs=4k\nsize=1M\niodepth=8\nverify=crc32c\nrandseed=3\n"
        try write(dir + "/v.fio", job)
        let ok = try TestSupport.blockscope(["run", "--write", img, dir + "/v.fio"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdoutText.contains("256 blocks checked"))
        try write(dir + "/vo.fio", job + "verify_only=1\n")
        let again = try TestSupport.blockscope(["run", img, dir + "/vo.fio"])
        #expect(again.status == 0, "\(again.stderr)")
        // Flip one byte in the data part of the block at 0x5000.
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: img))
        try h.seek(toOffset: 0x5123)
        let b = try h.read(upToCount: 1)!
        try h.seek(toOffset: 0x5123)
        try h.write(contentsOf: Data([b[0] ^ 0x40]))
        try h.close()
        let bad = try TestSupport.blockscope(["run", img, dir + "/vo.fio"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("0x5000"), "\(bad.stderr)")
        #expect(bad.stderr.contains("0x5123"), "\(bad.stderr)")
    }

    @Test("--mirror gives a raw file equal to the image under qemu-img compare")
    func mirror() throws {
        let dir = try TestSupport.makeTempDir("engine-e2e")
        defer { TestSupport.removeTempDir(dir) }
        let img = try image(dir)
        try TestSupport.run("dd", ["if=/dev/urandom", "of=\(img)", "bs=1M", "count=2", "conv=notrunc", "status=none"])
        try write(dir + "/m.fio", Self.twoSections + "\n[trimmer]\nrw=randtrim\nnumber_ios=50\nsize=16M\n[more]\nrw=randwrite\nnumjobs=2\nnumber_ios=500\nsize=16M\n")
        let r = try TestSupport.blockscope(["run", "--write", "--mirror", dir + "/mirror.raw", img, dir + "/m.fio"])
        #expect(r.status == 0, "\(r.stderr)")
        let cmp = try TestSupport.qemuImg(["compare", "-f", "raw", "-F", "raw", img, dir + "/mirror.raw"])
        #expect(cmp.status == 0, "\(cmp.stdoutText)")
    }

    @Test("a trace replayed onto a copy of the starting image gives an equal image")
    func traceReplay() throws {
        let dir = try TestSupport.makeTempDir("engine-e2e")
        defer { TestSupport.removeTempDir(dir) }
        let img = try image(dir)
        try TestSupport.run("dd", ["if=/dev/urandom", "of=\(img)", "bs=1M", "count=1", "conv=notrunc", "status=none"])
        try TestSupport.run("cp", ["--sparse=always", img, dir + "/start.raw"])
        try write(dir + "/t.fio", Self.twoSections.replacingOccurrences(of: "[mix]", with: "[mix]\nnumjobs=2\nfsync=100"))
        let r = try TestSupport.blockscope(["run", "--write", "--trace", dir + "/t.jsonl", "--trace-detail", img, dir + "/t.fio"])
        #expect(r.status == 0, "\(r.stderr)")
        for (name, fast) in [("fast.raw", true), ("timed.raw", false)] {
            try TestSupport.run("cp", ["--sparse=always", dir + "/start.raw", dir + "/" + name])
            var args = ["replay", "--write", dir + "/t.jsonl", dir + "/" + name]
            if fast { args.insert("--fast", at: 1) }
            let rp = try TestSupport.blockscope(args)
            #expect(rp.status == 0, "\(rp.stderr)")
            let cmp = try TestSupport.qemuImg(["compare", "-f", "raw", "-F", "raw", img, dir + "/" + name])
            #expect(cmp.status == 0, "\(name): \(cmp.stdoutText)")
        }
        let text = try String(contentsOfFile: dir + "/t.jsonl", encoding: .utf8)
        #expect(text.contains("\"kind\":\"sqeSubmitted\""))
    }

    @Test("an unknown job key fails naming the key and line; scripts still run")
    func errorsAndScripts() throws {
        let dir = try TestSupport.makeTempDir("engine-e2e")
        defer { TestSupport.removeTempDir(dir) }
        let img = try image(dir, size: "1M")
        try write(dir + "/bad.fio", "[a]\nrw=read\nbogus_key=1\n")
        let bad = try TestSupport.blockscope(["run", img, dir + "/bad.fio"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("line 3") && bad.stderr.contains("bogus_key"), "\(bad.stderr)")
        try write(dir + "/s.txt", "write 0 4k 0xab\nread 0 4k 0xab\n")
        let s = try TestSupport.blockscope(["run", "--write", img, dir + "/s.txt"])
        #expect(s.status == 0 && s.stdoutText.contains("verified"), "\(s.stderr)")
    }
}

@Suite("Engine bench end-to-end")
struct EngineBenchEndToEndTests {
    @Test("bench runs the matrix on RAW and prints JSON rows")
    func benchJSON() throws {
        let dir = try TestSupport.makeTempDir("engine-bench")
        defer { TestSupport.removeTempDir(dir) }
        let r = try TestSupport.blockscope(["bench", dir, "--ios", "400", "--size", "16M", "--formats", "raw", "--no-peers", "--output=json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONValue.parse(r.stdoutText)
        let rows = json["results"]?.arrayValue ?? []
        #expect(rows.count == 8)
        #expect(rows.allSatisfy { ($0["iops"].flatMap { if case let .double(d) = $0 { return d } else { return nil } } ?? 0) > 0 })
        #expect(Set(rows.compactMap { $0["engine"]?.stringValue }) == ["uring", "sync"])
    }
}

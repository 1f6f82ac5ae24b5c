import BlockCore
import Foundation
import Testing
import TestSupport

/// QCOW2 guest writes (issue 5) against qemu-img as oracle: randomised multi-queue write,
/// discard and zero workloads over images qemu-img made (cluster sizes, refcount widths,
/// extended L2, compressed data, backing files, internal snapshots, v2). Afterwards
/// `qemu-img check` finds no leak or corruption and `qemu-img compare` finds the image equal
/// to a raw mirror (or to a raw copy qemu-io modified the same way).
@Suite("Qcow2 writes vs qemu-img")
struct Qcow2WriteTests {
    typealias Setup = Qcow2WriteOracle.Setup

    /// (setup, engine, mixed reads)
    static let jobCases: [(Setup, String, Bool)] = [
        (.cluster64k, "uring", false), (.cluster64k, "sync", false), (.cluster4k, "uring", false),
        (.cluster4k, "uring", true), (.refcount1, "uring", false), (.refcount64, "uring", false),
        (.extendedL2c64k, "uring", false), (.extendedL2c128k, "uring", true), (.zstdCompressed, "uring", false),
        (.zlibCompressed, "sync", false), (.rawBacking, "uring", false), (.rawBacking, "sync", false),
        (.rawBackingExtendedL2, "uring", false), (.rawBackingCluster4k, "uring", true), (.qcow2Backing, "uring", false),
        (.snapshot, "uring", false), (.snapshot, "sync", false), (.snapshotCompressed, "uring", false), (.v2, "uring", false),
        (.cluster512refcount64, "uring", false), (.externalDataFile, "uring", false), (.externalDataFile, "sync", false),
        (.v2Backing, "uring", false), (.v2Snapshot, "uring", false),
        (.reusedClusters, "uring", false), (.reusedClusters, "sync", true), (.reusedClustersExtendedL2, "uring", false),
    ]

    /// Proves: a fio job with two writer queues (512 B..300 KiB at 512-byte alignment, so
    /// partial-cluster and cluster-spanning writes, fsync every 16 writes) and a discard queue
    /// leaves an image qemu-img check finds clean and qemu-img compare finds equal to the raw
    /// mirror the engine applied every completed request to; `blockscope map` and `check` then
    /// print what qemu-img map and check print; an internal snapshot keeps its pre-write
    /// content (qemu-img convert -l and blockscope cat --snapshot agree with it).
    @Test("a multi-queue write+discard job leaves a clean image equal to its raw mirror", arguments: jobCases)
    func jobMatchesRawMirror(_ setup: Setup, _ engine: String, _ mixed: Bool) throws {
        let dir = try TestSupport.makeTempDir("q2w-job")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Qcow2WriteOracle.prepare(setup, in: dir)
        let mirror = dir + "/mirror.raw", snapBefore = dir + "/snap-before.raw", job = dir + "/w.fio"
        // The mirror starts as qemu-img's view of the guest content.
        try Qcow2WriteOracle.convertToRaw(img, mirror)
        if setup.hasSnapshot { try Qcow2WriteOracle.convertToRaw(img, snapBefore, snapshot: "snap1") }
        let threads = 2, ios = 150
        try Qcow2WriteOracle.job(threads: threads, ios: ios, mixed: mixed, seed: UInt64(setup.rawValue.count * 31 + 5))
            .write(toFile: job, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", "--engine", engine, "--output=json", "--mirror", mirror, img, job])
        #expect(r.status == 0, "\(setup) \(engine): blockscope run failed: \(r.stderr)")
        guard r.status == 0 else { return }
        // The job really wrote and trimmed what it was asked to.
        let jobs = (try? JSONValue.parse(r.stdoutText))?["jobs"]?.arrayValue ?? []
        let writes = jobs.reduce(Int64(0)) { $0 + ($1["write"]?["total_ios"]?.intValue ?? 0) }
        let reads = jobs.reduce(Int64(0)) { $0 + ($1["read"]?["total_ios"]?.intValue ?? 0) }
        let trims = jobs.reduce(Int64(0)) { $0 + ($1["trim"]?["total_ios"]?.intValue ?? 0) }
        #expect(writes + reads == Int64(threads * ios) && writes > 0, "\(r.stdoutText.prefix(400))")
        #expect(mixed ? reads > 0 : reads == 0)
        #expect(trims == 30)
        try Qcow2WriteOracle.expectClean(img, "\(setup) \(engine)")
        try Qcow2WriteOracle.expectSameContent(raw: mirror, image: img, "\(setup) \(engine)")
        if let data = setup.rawDataFile(in: dir) {
            let cmp = try TestSupport.qemuImg(["compare", "-f", "raw", "-F", "raw", mirror, data])
            #expect(cmp.status == 0, "data_file_raw=on: the data file is no longer the guest's raw image: \(cmp.stdoutText)")
        }
        // blockscope's own view of what it wrote agrees with qemu-img's.
        try Qcow2Oracle.expectMapMatches(img)
        try Qcow2Oracle.expectCheckMatches(img)
        if setup.hasSnapshot {
            let after = dir + "/snap-after.raw"
            try Qcow2WriteOracle.convertToRaw(img, after, snapshot: "snap1")
            let cmp = try TestSupport.qemuImg(["compare", "-f", "raw", "-F", "raw", snapBefore, after])
            #expect(cmp.status == 0, "snapshot snap1 changed under writes to the active image: \(cmp.stdoutText)")
            let cat = try TestSupport.blockscope(["cat", "--snapshot", "snap1", img])
            #expect(cat.status == 0, "\(cat.stderr)")
            #expect(cat.stdout == (try TestSupport.readFile(snapBefore)), "blockscope cat --snapshot snap1 differs from the pre-write snapshot")
        }
    }

    /// Proves: with `direct=1` (data through a second O_DIRECT descriptor where requests are
    /// 4 KiB aligned, metadata and unaligned requests buffered) a mixed 512 B-aligned and
    /// 4 KiB-aligned write/read/discard job leaves an image qemu-img check finds clean and
    /// qemu-img compare finds equal to the raw mirror (no stale page-cache data on either side).
    @Test("a direct=1 job mixing aligned and unaligned writes stays equal to its raw mirror",
          arguments: [Setup.cluster64k, .rawBackingCluster4k, .snapshot, .extendedL2c64k])
    func directJobMatchesRawMirror(_ setup: Setup) throws {
        let dir = try TestSupport.makeTempDir("q2w-direct")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Qcow2WriteOracle.prepare(setup, in: dir)
        let mirror = dir + "/mirror.raw", job = dir + "/w.fio"
        try Qcow2WriteOracle.convertToRaw(img, mirror)
        var text = Qcow2WriteOracle.job(threads: 1, ios: 150, mixed: true, seed: 41)
        text = text.replacingOccurrences(of: "[global]\n", with: "[global]\ndirect=1\n")
        text += "\n[aligned]\nrw=randwrite\nbsrange=4k-256k\nblockalign=4k\nnumber_ios=150\n"
        try text.write(toFile: job, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", "--mirror", mirror, img, job])
        #expect(r.status == 0, "\(setup): \(r.stderr)")
        try Qcow2WriteOracle.expectClean(img, "\(setup) direct")
        try Qcow2WriteOracle.expectSameContent(raw: mirror, image: img, "\(setup) direct")
    }

    /// One command of a random script, and the qemu-io command that does the same to a raw file.
    static func randomScript(count: Int, seed: UInt64) -> (script: [String], qemu: [String]) {
        var rng = SeededRandom(seed: seed)
        func next() -> UInt64 { rng.next() }
        var script: [String] = [], qemu: [String] = []
        for _ in 0..<count {
            let len = (next() % 600 + 1) * 512
            let off = (next() % ((Qcow2WriteOracle.diskSize - len) / 512 + 1)) * 512
            switch next() % 20 {
            case 0..<11:
                let pat = next() % 255 + 1
                script.append("write \(off) \(len) \(pat)"); qemu.append("write -P \(pat) \(off) \(len)")
            case 11..<14:
                script.append("zero \(off) \(len)"); qemu.append("write -z \(off) \(len)")
            case 14..<17:
                script.append("discard \(off) \(len)"); qemu.append("discard \(off) \(len)")
            default:
                script.append("fsync"); qemu.append("flush")
            }
        }
        return (script, qemu)
    }

    static let scriptCases: [(Setup, String)] = Setup.allCases.map { ($0, "uring") } +
        [(.cluster4k, "sync"), (.extendedL2c64k, "sync"), (.rawBacking, "sync"), (.snapshot, "sync"), (.v2, "sync")]

    /// Proves: `write`, `zero` (partial and whole clusters), `discard` and `fsync` commands give
    /// the same guest content as qemu-io doing `write -P` / `write -z` / `discard` to a raw copy
    /// (zeroed and discarded ranges read as zeroes, even over a backing file or a snapshot),
    /// qemu-img check stays clean and `blockscope map` prints what qemu-img map prints.
    @Test("write/zero/discard commands leave the image equal to qemu-io's raw copy", arguments: scriptCases)
    func scriptMatchesQemuIoOnRaw(_ setup: Setup, _ engine: String) throws {
        let dir = try TestSupport.makeTempDir("q2w-script")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Qcow2WriteOracle.prepare(setup, in: dir)
        let raw = dir + "/expected.raw", script = dir + "/s.txt", snapBefore = dir + "/snap-before.raw"
        try Qcow2WriteOracle.convertToRaw(img, raw)
        if setup.hasSnapshot { try Qcow2WriteOracle.convertToRaw(img, snapBefore, snapshot: "snap1") }
        let (lines, qemu) = Self.randomScript(count: 160, seed: UInt64(setup.rawValue.utf8.reduce(0) { $0 &* 31 &+ Int($1) } & 0xffff) &+ 17)
        try (lines.joined(separator: "\n") + "\n").write(toFile: script, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", "--engine", engine, img, script])
        #expect(r.status == 0, "\(setup) \(engine): \(r.stderr)")
        guard r.status == 0 else { return }
        #expect(r.stdoutText.split(separator: "\n").count == lines.count)
        try TestSupport.qemuIo(raw, format: "raw", qemu)
        try Qcow2WriteOracle.expectClean(img, "\(setup) \(engine)")
        try Qcow2WriteOracle.expectSameContent(raw: raw, image: img, "\(setup) \(engine)")
        if let data = setup.rawDataFile(in: dir) {
            let cmp = try TestSupport.qemuImg(["compare", "-f", "raw", "-F", "raw", raw, data])
            #expect(cmp.status == 0, "data_file_raw=on: the data file is no longer the guest's raw image: \(cmp.stdoutText)")
        }
        try Qcow2Oracle.expectMapMatches(img)
        if setup.hasSnapshot {
            let after = dir + "/snap-after.raw"
            try Qcow2WriteOracle.convertToRaw(img, after, snapshot: "snap1")
            #expect(try TestSupport.qemuImg(["compare", "-f", "raw", "-F", "raw", snapBefore, after]).status == 0,
                    "snapshot snap1 changed")
        }
    }

    /// Proves: with `data_file_raw=on` the external data file stays a raw image of the guest:
    /// after whole-cluster and partial `zero` and `discard` commands over data qemu-io wrote,
    /// the data file read as raw equals the guest content per qemu-img convert (as it does
    /// when qemu-io runs the same commands), with either engine.
    @Test("data_file_raw=on: zeroes and discards reach the raw data file", arguments: ["uring", "sync"])
    func rawDataFileStaysRaw(_ engine: String) throws {
        let dir = try TestSupport.makeTempDir("q2w-rawdata")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/img.qcow2", data = dir + "/img.data", guest = dir + "/guest.raw", script = dir + "/s.txt"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "data_file=\(data),data_file_raw=on", img, "16M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x5a 0 8M"])
        let commands = ["zero 0 64k", "discard 128k 64k", "zero 300k 10k", "discard 1M 1M", "zero 3M 200k", "discard 5000k 70k", "write 6M 64k 0x21", "zero 6M 64k", "fsync"]
        try (commands.joined(separator: "\n") + "\n").write(toFile: script, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", "--engine", engine, img, script])
        #expect(r.status == 0, "\(r.stderr)")
        try Qcow2WriteOracle.expectClean(img, engine)
        try Qcow2WriteOracle.convertToRaw(img, guest)
        let cmp = try TestSupport.qemuImg(["compare", "-f", "raw", "-F", "raw", guest, data])
        #expect(cmp.status == 0, "\(engine): the raw data file differs from the guest content: \(cmp.stdoutText)")
        // The oracle: qemu-io keeps the data file raw under the same commands.
        let qimg = dir + "/q.qcow2", qdata = dir + "/q.data", qguest = dir + "/qguest.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "data_file=\(qdata),data_file_raw=on", qimg, "16M"])
        try TestSupport.qemuIo(qimg, format: "qcow2", ["write -P 0x5a 0 8M", "write -z 0 64k", "discard 128k 64k", "write -z 300k 10k",
                                                      "discard 1M 1M", "write -z 3M 200k", "discard 5000k 70k", "write -P 0x21 6M 64k", "write -z 6M 64k"])
        try Qcow2WriteOracle.convertToRaw(qimg, qguest)
        #expect(try TestSupport.qemuImg(["compare", "-f", "raw", "-F", "raw", qguest, qdata]).status == 0, "qemu-io's own data file is not raw")
    }

    /// Proves: after a random write job fragments an image, the summary lines of `blockscope
    /// check` (human form: allocated, fragmented and compressed percentages, image end offset)
    /// are the lines qemu-img check prints.
    @Test("blockscope check's human summary matches qemu-img check after writes")
    func checkSummaryMatchesQemu() throws {
        let dir = try TestSupport.makeTempDir("q2w-checksum")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Qcow2WriteOracle.prepare(.cluster4k, in: dir)
        try Qcow2WriteOracle.job(threads: 2, ios: 100, seed: 3).write(toFile: dir + "/w.fio", atomically: true, encoding: .utf8)
        #expect(try TestSupport.blockscope(["run", "--write", img, dir + "/w.fio"]).status == 0)
        let q = try TestSupport.qemuImg(["check", "-f", "qcow2", img]).stdoutText.split(separator: "\n").filter { $0.contains("%") || $0.hasPrefix("Image end") }
        let b = try TestSupport.blockscope(["check", img]).stdoutText.split(separator: "\n").filter { $0.contains("%") || $0.hasPrefix("Image end") }
        #expect(q.count == 2)
        #expect(b == q, "blockscope: \(b)\nqemu-img: \(q)")
    }

    @Test("a write to an image with a persistent bitmap invalidates the bitmap for qemu")
    func writeInvalidatesPersistentBitmaps() throws {
        let dir = try TestSupport.makeTempDir("q2w-bitmap")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/bm.qcow2", script = dir + "/w.txt"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try TestSupport.qemuImg(["bitmap", "--add", img, "bm0"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x01 0 1M"])
        let before = try TestSupport.readFile(img)
        #expect(before[88 + 7] & 1 == 1, "qemu-img did not set the bitmaps autoclear bit")
        try "write 8M 64k 0x22\nfsync\n".write(toFile: script, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", img, script])
        #expect(r.status == 0, "\(r.stderr)")
        let after = try TestSupport.readFile(img)
        #expect(after[88 + 7] & 1 == 0, "the bitmaps autoclear bit is still set after blockscope wrote")
        let info = try TestSupport.qemuImg(["info", img])
        #expect(info.stderr.contains("lacking bitmap support"), "qemu-img info: \(info.stdoutText) \(info.stderr)")
        try TestSupport.qemuIo(img, format: "qcow2", ["read -P 0x22 8M 64k", "read -P 0x01 0 1M"])
        try Qcow2WriteOracle.expectClean(img, allowLeaks: true, "bitmap")
    }

    // MARK: images blockscope created

    /// Proves: images made by `blockscope create -f qcow2 -o ...` (4 KiB clusters with 1-bit
    /// refcounts, extended L2 with lazy refcounts, zstd, v2, a raw backing file) pass
    /// qemu-img check, carry the same format-specific info as qemu-img's, and after a
    /// multi-queue write+discard job are still clean and equal to the raw mirror.
    @Test("images made by blockscope create take writes and stay clean", arguments: [
        "cluster_size=4096,refcount_bits=1", "extended_l2=on,cluster_size=64k,lazy_refcounts=on",
        "compression_type=zstd,refcount_bits=8", "compat=0.10", "lazy_refcounts=on", "backing:cluster_size=16k",
        "backing:backing_fmt=raw,extended_l2=on,lazy_refcounts=on",
    ])
    func blockscopeCreatedImagesTakeWrites(_ spec: String) throws {
        let dir = try TestSupport.makeTempDir("q2w-create")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/ours.qcow2", theirs = dir + "/theirs.qcow2", mirror = dir + "/mirror.raw", job = dir + "/w.fio"
        let backing = spec.hasPrefix("backing:")
        let opts = backing ? String(spec.dropFirst("backing:".count)) : spec
        // qemu-img create spells the backing format -F; blockscope create takes -o backing_fmt= (or probes it).
        let theirsOpts = opts.split(separator: ",").filter { !$0.hasPrefix("backing_fmt=") }.joined(separator: ",")
        var extra: [String] = []
        var theirsExtra: [String] = []
        if backing {
            try TestSupport.qemuImg(["create", "-q", "-f", "raw", dir + "/base.raw", "\(Qcow2WriteOracle.diskSize)"])
            try Qcow2WriteOracle.randomFill(dir + "/base.raw", offsetMiB: 0, mib: 64)
            extra = ["-b", "base.raw"]
            theirsExtra = ["-b", "base.raw", "-F", "raw"]
        }
        let c = try TestSupport.blockscope(["create", "-f", "qcow2", "-o", opts] + extra + [img, "64M"])
        #expect(c.status == 0, "\(c.stderr)")
        guard c.status == 0 else { return }
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", theirsOpts] + theirsExtra + [theirs, "64M"])
        try Qcow2WriteOracle.expectClean(img, "fresh \(spec)")
        let a = try JSONValue.parse(try TestSupport.qemuImg(["info", "--output=json", img]).stdoutText)
        let b = try JSONValue.parse(try TestSupport.qemuImg(["info", "--output=json", theirs]).stdoutText)
        #expect(a["format-specific"] == b["format-specific"], "\(spec): \(a.render()) vs \(b.render())")
        for key in ["virtual-size", "cluster-size", "backing-filename", "backing-filename-format"] {
            #expect(a[key] == b[key], "\(spec) \(key)")
        }
        try Qcow2WriteOracle.convertToRaw(img, mirror)
        try Qcow2WriteOracle.job(threads: 2, ios: 120, seed: 99).write(toFile: job, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", "--mirror", mirror, img, job])
        #expect(r.status == 0, "\(spec): \(r.stderr)")
        try Qcow2WriteOracle.expectClean(img, "written \(spec)")
        try Qcow2WriteOracle.expectSameContent(raw: mirror, image: img, "written \(spec)")
        // qemu-io can still write through it afterwards and check stays clean.
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x3c 100k 70000", "read -P 0x3c 100k 70000"])
        try Qcow2WriteOracle.expectClean(img, "after qemu-io \(spec)")
    }
}

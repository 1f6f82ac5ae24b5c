import BlockCore
import Foundation
import Testing
import TestSupport

/// `blockscope run --write` on a QCOW2 killed with SIGKILL at a random moment: qemu-img check
/// finds no corruption (leaked clusters are allowed), and every write acknowledged before a
/// completed fsync reads back through qemu-img.
@Suite("Qcow2 kill -9 during writes")
struct Qcow2CrashTests {
    /// For the job runs: kill once the image has grown by this many bytes (the job is
    /// allocating), so the kill lands mid-job however fast the build and the machine are.
    static let growthKills: [Int] = [64 << 10, 1 << 20, 4 << 20]
    /// For the script runs: kill once this many commands have completed, plus a short delay,
    /// so the kill lands mid-run however fast the build and the machine are.
    static let progressKills: [(lines: Int, extra: Double)] = [(60, 0.02), (300, 0.05), (900, 0.11), (2000, 0.23)]

    /// Waits until `path` holds `lines` complete lines (or the child exits, or the generous
    /// progress bound passes), then `extra` seconds more, so the kill lands between lines.
    static func waitForProgress(_ path: String, lines: Int, extra: Double, child: BackgroundProcess) {
        Progress.wait(child: child) { Progress.lineCount(path) >= lines }
        usleep(useconds_t(extra * 1_000_000))
    }

    /// Proves: a two-queue random write job (512 B..256 KiB, fsync every 4 writes, discards)
    /// killed with SIGKILL once the image has grown by 64 KiB..4 MiB leaves an image qemu-img check reports without
    /// corruptions (exit 0, or 3 for leaks only), on 4 KiB-cluster, backing-file,
    /// snapshot and extended-L2 images; `blockscope check` reports it as qemu-img check does;
    /// blockscope can then open it for writing again and qemu-img check -r leaks makes it clean.
    @Test("SIGKILL during a write+fsync job leaves no corruption", arguments: [
        Qcow2WriteOracle.Setup.cluster4k, .rawBackingCluster4k, .snapshot, .extendedL2c64k,
    ])
    func killDuringJob(_ setup: Qcow2WriteOracle.Setup) throws {
        let dir = try TestSupport.makeTempDir("q2w-kill")
        defer { TestSupport.removeTempDir(dir) }
        let job = dir + "/w.fio"
        try """
        [global]
        bsrange=512-256k
        blockalign=512
        iodepth=16
        time_based
        runtime=30s
        fsync=4

        [w]
        rw=randwrite
        numjobs=2

        [t]
        rw=randtrim
        bsrange=4k-128k
        iodepth=2
        """.write(toFile: job, atomically: true, encoding: .utf8)
        var grewRuns = 0
        for (i, growth) in Self.growthKills.enumerated() {
            let sub = dir + "/\(i)"
            try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
            let img = try Qcow2WriteOracle.prepare(setup, in: sub)
            let sizeBefore = (try FileManager.default.attributesOfItem(atPath: img)[.size] as? Int) ?? 0
            let p = try BackgroundProcess(TestSupport.blockscopeBinary, ["run", "--write", img, job], stderrPath: sub + "/err.txt")
            let grew = Progress.wait(child: p) { Progress.fileSize(img) >= sizeBefore + growth }
            let exitedEarly = p.hasExited
            p.kill(SIGKILL)
            let status = p.wait()
            let err = (try? String(contentsOfFile: sub + "/err.txt", encoding: .utf8)) ?? ""
            #expect(!exitedEarly, "\(setup) run \(i): blockscope exited before the kill (status \(status)): \(err)")
            #expect(grew, "\(setup) run \(i): the image did not grow by \(growth) bytes within \(Progress.defaultTimeout) s")
            // Whether the job was allocating clusters when it died.
            let sizeAfter = (try FileManager.default.attributesOfItem(atPath: img)[.size] as? Int) ?? 0
            if sizeAfter > sizeBefore { grewRuns += 1 }
            try Qcow2WriteOracle.expectClean(img, allowLeaks: true, "\(setup) killed after growing \(growth) bytes")
            // blockscope check reports the killed image (its leaks) as qemu-img check does.
            try Qcow2Oracle.expectCheckMatches(img)
            // blockscope reopens the image for writing and writes through it; qemu-img agrees.
            try "write 1M 64k 0x3d\nfsync\n".write(toFile: sub + "/after.txt", atomically: true, encoding: .utf8)
            let again = try TestSupport.blockscope(["run", "--write", img, sub + "/after.txt"])
            #expect(again.status == 0, "\(setup) reopen after kill: \(again.stderr)")
            try TestSupport.qemuIo(img, format: "qcow2", ["read -P 0x3d 1M 64k"])
            try Qcow2WriteOracle.expectClean(img, allowLeaks: true, "\(setup) rewritten after the kill at +\(growth) bytes")
            let repaired = try TestSupport.qemuImg(["check", "-r", "leaks", "-f", "qcow2", img])
            #expect(repaired.status == 0, "\(setup): qemu-img check -r leaks: \(repaired.stdoutText)")
            try? FileManager.default.removeItem(atPath: sub)
        }
        // The property was exercised: most kills hit a job that was allocating.
        #expect(grewRuns == Self.growthKills.count, "\(setup): the image grew before only \(grewRuns) of \(Self.growthKills.count) kills")
    }

    /// A slot of the durability script: a fixed guest range rewritten with new patterns.
    struct Slot { var offset: Int; var length: Int }

    /// Proves: a command script of writes (512 B..300 KiB, 48 fixed slots, a new byte pattern
    /// each time, so slots are overwritten in place or copied on write from a snapshot or
    /// compressed data) with an fsync after every third write, killed with SIGKILL mid-run,
    /// leaves every slot holding (per qemu-img convert) the pattern of its last write before the
    /// last completed fsync, or of a write issued after it; slots never written before a
    /// completed fsync hold their old content or a later pattern. qemu-img check finds no corruption.
    @Test("every write acknowledged before a completed fsync survives SIGKILL", arguments: [
        Qcow2WriteOracle.Setup.snapshot, .extendedL2c128k, .zstdCompressed,
    ])
    func fsyncedWritesSurviveKill(_ setup: Qcow2WriteOracle.Setup) throws {
        let dir = try TestSupport.makeTempDir("q2w-durable")
        defer { TestSupport.removeTempDir(dir) }
        var rng = SeededRandom(seed: 0x5DEECE66D &+ UInt64(setup.rawValue.utf8.count))
        func rnd() -> Int { Int(rng.next() % (1 << 40)) }
        let slotSpace = 1_310_720   // 1.25 MiB per slot, 48 slots in 60 MiB
        let slots = (0..<48).map { i -> Slot in
            let len = (rnd() % 600 + 1) * 512
            return Slot(offset: i * slotSpace + (rnd() % ((slotSpace - len) / 512)) * 512, length: len)
        }
        // Commands: (slot, pattern) for writes, nil for fsync.
        var commands: [(Int, UInt8)?] = []
        var counter = [Int](repeating: 0, count: slots.count)
        for k in 0..<24000 {   // far more than a kill after 1.5 s lets run, even in a release build
            let s = k % slots.count
            counter[s] += 1
            commands.append((s, UInt8(counter[s] % 254 + 1)))
            if k % 3 == 2 { commands.append(nil) }
        }
        let text = commands.map { c in c.map { "write \(slots[$0.0].offset) \(slots[$0.0].length) \($0.1)" } ?? "fsync" }.joined(separator: "\n") + "\n"
        try text.write(toFile: dir + "/s.txt", atomically: true, encoding: .utf8)
        var durableRuns = 0
        for (i, kill) in Self.progressKills.enumerated() {
            let sub = dir + "/\(i)"
            try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
            let img = try Qcow2WriteOracle.prepare(setup, in: sub)
            try Qcow2WriteOracle.convertToRaw(img, sub + "/before.raw")
            let before = [UInt8](try TestSupport.readFile(sub + "/before.raw"))
            // Line-buffered stdout: each "wrote ..." / "fsync done" line is in the file once the command completed.
            let p = try BackgroundProcess("stdbuf", ["-oL", TestSupport.blockscopeBinary, "run", "--write", img, dir + "/s.txt"],
                                          stdoutPath: sub + "/out.txt", stderrPath: sub + "/err.txt")
            Self.waitForProgress(sub + "/out.txt", lines: kill.lines, extra: kill.extra, child: p)
            let exitedEarly = p.hasExited
            p.kill(SIGKILL)
            let status = p.wait()
            let err = (try? String(contentsOfFile: sub + "/err.txt", encoding: .utf8)) ?? ""
            #expect(!exitedEarly, "\(setup) run \(i): blockscope exited before the kill (status \(status)): \(err)")
            let out = String(decoding: try TestSupport.readFile(sub + "/out.txt"), as: UTF8.self)
            var done = out.split(separator: "\n", omittingEmptySubsequences: false)
            done.removeLast()   // the text after the last newline (empty, or a partial line)
            #expect(done.count < commands.count, "\(setup): the script finished before the kill at \(kill.lines) lines + \(kill.extra) s; make it longer")
            #expect(zip(done, commands).allSatisfy { line, c in c == nil ? line == "fsync done" : line.hasPrefix("wrote ") },
                    "\(setup): unexpected output \(done.prefix(3))")
            // Commands [0, durable) completed before the last completed fsync.
            let durable = (done.lastIndex(where: { $0 == "fsync done" }) ?? -1) + 1
            if durable > 0 { durableRuns += 1 }
            try Qcow2WriteOracle.expectClean(img, allowLeaks: true, "\(setup) killed after \(kill.lines) lines + \(kill.extra) s")
            try Qcow2WriteOracle.convertToRaw(img, sub + "/after.raw")
            let after = [UInt8](try TestSupport.readFile(sub + "/after.raw"))
            var failures: [String] = []
            for (s, slot) in slots.enumerated() {
                // The last durable pattern of this slot, and the patterns of the writes that
                // may have reached the image after it (completed or in flight at the kill).
                let last = commands[..<durable].lastIndex { $0?.0 == s }.map { commands[$0]!.1 }
                let later = Set(commands[durable..<min(commands.count, done.count + 1)].compactMap { $0?.0 == s ? $0!.1 : nil })
                for i in slot.offset..<(slot.offset + slot.length) {
                    let b = after[i]
                    let ok = later.contains(b) || (last.map { b == $0 } ?? (b == before[i]))
                    if !ok {
                        failures.append("slot \(s) byte 0x\(String(i, radix: 16)) is 0x\(String(b, radix: 16)); durable pattern \(last.map { "0x" + String($0, radix: 16) } ?? "none (old 0x\(String(before[i], radix: 16)))"), later \(later.sorted())")
                        break
                    }
                }
            }
            #expect(failures.isEmpty, "\(setup) killed after \(kill.lines) lines + \(kill.extra) s, \(done.count) commands done, last fsync at \(durable): \(failures.prefix(4))")
            try? FileManager.default.removeItem(atPath: sub)
        }
        // The property was exercised: fsyncs completed before most kills.
        #expect(durableRuns == Self.progressKills.count, "\(setup): only \(durableRuns) of \(Self.progressKills.count) runs completed an fsync before the kill")
    }

    /// Proves: when every write goes to a range never written before (so each one allocates
    /// clusters, copies on write from a backing file or a snapshot, and changes L2 tables and
    /// refcounts), killing `blockscope run --write` with SIGKILL at four points of its progress loses none of
    /// the writes that completed before the last completed fsync: qemu-io reads every one back
    /// with its pattern, and qemu-img check finds no corruption; with io_uring and with the
    /// sync engine.
    @Test("freshly allocated writes acknowledged before a completed fsync survive SIGKILL", arguments: [
        "cluster64k", "backing4k", "snapshot", "extendedL2", "lazyRefcounts", "backing4k-sync",
    ])
    func fsyncedAllocationsSurviveKill(_ variant: String) throws {
        // "KIND" or "KIND-sync" (the synchronous engine).
        let kind = String(variant.split(separator: "-")[0])
        let engine = variant.hasSuffix("-sync") ? "sync" : "uring"
        let dir = try TestSupport.makeTempDir("q2w-durable-alloc")
        defer { TestSupport.removeTempDir(dir) }
        var rng = SeededRandom(seed: 0x2545_F491 &+ UInt64(kind.utf8.count))
        func rnd() -> Int { Int(rng.next() % (1 << 40)) }
        // 10,000 disjoint ranges of 512 B..300 KiB, one every 384 KiB of a 4 GiB disk; an fsync after every third write.
        let spacing = 393_216
        var commands: [(offset: Int, length: Int, pattern: Int)?] = []
        for i in 0..<10_000 {
            let len = (rnd() % 600 + 1) * 512
            commands.append((i * spacing + (rnd() % ((spacing - len) / 512 + 1)) * 512, len, i % 254 + 1))
            if i % 3 == 2 { commands.append(nil) }
        }
        let text = commands.map { c in c.map { "write \($0.offset) \($0.length) \($0.pattern)" } ?? "fsync" }.joined(separator: "\n") + "\n"
        try text.write(toFile: dir + "/s.txt", atomically: true, encoding: .utf8)
        var durableWrites = 0
        for (i, kill) in Self.progressKills.enumerated() {
            let sub = dir + "/\(i)"
            try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
            let img = sub + "/img.qcow2"
            switch kind {
            case "backing4k":
                try TestSupport.qemuImg(["create", "-q", "-f", "raw", sub + "/base.raw", "4G"])
                try Qcow2WriteOracle.randomFill(sub + "/base.raw", offsetMiB: 0, mib: 64)
                try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw", "-F", "raw", img, "4G"])
            case "snapshot":
                try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "4G"])
                try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x5a 0 64M"])
                try TestSupport.qemuImg(["snapshot", "-c", "snap1", img])
            case "lazyRefcounts":
                try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=16k", img, "4G"])
            case "extendedL2":
                try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", img, "4G"])
            default:
                try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "4G"])
            }
            let p = try BackgroundProcess("stdbuf", ["-oL", TestSupport.blockscopeBinary, "run", "--write", "--engine", engine, img, dir + "/s.txt"],
                                          stdoutPath: sub + "/out.txt", stderrPath: sub + "/err.txt")
            Self.waitForProgress(sub + "/out.txt", lines: kill.lines, extra: kill.extra, child: p)
            let exitedEarly = p.hasExited
            p.kill(SIGKILL)
            let status = p.wait()
            let err = (try? String(contentsOfFile: sub + "/err.txt", encoding: .utf8)) ?? ""
            #expect(!exitedEarly, "\(kind) run \(i): blockscope exited before the kill (status \(status)): \(err)")
            var done = String(decoding: try TestSupport.readFile(sub + "/out.txt"), as: UTF8.self)
                .split(separator: "\n", omittingEmptySubsequences: false)
            done.removeLast()
            #expect(zip(done, commands).allSatisfy { line, c in c == nil ? line == "fsync done" : line.hasPrefix("wrote ") },
                    "\(kind): unexpected output \(done.prefix(3))")
            let durable = (done.lastIndex(where: { $0 == "fsync done" }) ?? -1) + 1
            if kind == "lazyRefcounts" {
                // Refcounts may be stale after the kill, but then the image must say so
                // (dirty flag), and qemu-img check -r all must repair it.
                let info = try JSONValue.parse(try TestSupport.qemuImg(["info", "--output=json", img]).stdoutText)
                let check = try TestSupport.qemuImg(["check", "-f", "qcow2", img])
                #expect([0, 3].contains(check.status) || info["dirty-flag"]?.boolValue == true,
                        "\(kind) killed after \(kill.lines) lines + \(kill.extra) s: refcount errors without the dirty flag: \(check.stdoutText)")
                let repaired = try TestSupport.qemuImg(["check", "-r", "all", "-f", "qcow2", img])
                #expect(repaired.status == 0, "\(kind): qemu-img check -r all: \(repaired.stdoutText)")
            } else {
                try Qcow2WriteOracle.expectClean(img, allowLeaks: true, "\(kind) killed after \(kill.lines) lines + \(kill.extra) s")
            }
            let reads = commands[..<durable].compactMap { $0.map { "read -P \($0.pattern) \($0.offset) \($0.length)" } }
            durableWrites += reads.count
            if !reads.isEmpty {
                var args = ["-f", "qcow2"]
                for r in reads { args += ["-c", r] }
                let r = try TestSupport.run("qemu-io", args + [img])
                let bad = r.stdoutText.split(separator: "\n").filter { $0.contains("failed") }
                #expect(r.status == 0 && bad.isEmpty,
                        "\(kind) killed after \(kill.lines) lines + \(kill.extra) s (\(done.count) commands done, last fsync at \(durable)): \(bad.count) fsynced writes lost, e.g. \(bad.prefix(3)) \(r.stderr.prefix(300))")
            }
            try? FileManager.default.removeItem(atPath: sub)
        }
        #expect(durableWrites > 200, "\(kind): only \(durableWrites) writes were fsynced before the kills")
    }

    /// Proves: clusters a killed `blockscope run --write` filled with data but never linked
    /// into the L2 tables (no fsync; the file was also preallocated ahead) are reused by the next
    /// writable open without exposing their old bytes: partial-cluster writes and zeroes into
    /// fresh guest clusters leave every other byte of those clusters reading as zeroes in
    /// qemu-io (also over a backing file shorter than the image, and with extended L2 entries).
    @Test("clusters a killed writer left behind never leak their bytes into new writes", arguments: [
        "cluster64k", "extendedL2", "shortBacking", "cluster64k-sync",
    ])
    func orphanedClustersReadAsZeroes(_ variant: String) throws {
        let kind = String(variant.split(separator: "-")[0])
        let engine = variant.hasSuffix("-sync") ? "sync" : "uring"
        let dir = try TestSupport.makeTempDir("q2w-orphans")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/img.qcow2"
        switch kind {
        case "extendedL2":
            try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", img, "2G"])
        case "shortBacking":
            // The backing file ends at 16 MiB: copy-on-write past it fills zeroes.
            try TestSupport.qemuImg(["create", "-q", "-f", "raw", dir + "/base.raw", "16M"])
            try TestSupport.qemuIo(dir + "/base.raw", format: "raw", ["write -P 0x42 0 16M"])
            try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", img, "2G"])
        default:
            try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "2G"])
        }
        // 1. Fill thousands of clusters with 0xee and never fsync; kill the writer.
        let fill = (0..<16_000).map { "write \($0 * 65536) 65536 0xee" }.joined(separator: "\n") + "\n"
        try fill.write(toFile: dir + "/fill.txt", atomically: true, encoding: .utf8)
        let p = try BackgroundProcess(TestSupport.blockscopeBinary, ["run", "--write", "--engine", engine, img, dir + "/fill.txt"],
                                      stderrPath: dir + "/err.txt")
        // Kill once the writer has filled well over 8 MiB (its clusters are not linked yet).
        let filled = Progress.wait(child: p) { Progress.fileSize(img) > 12 << 20 }
        let exitedEarly = p.hasExited
        p.kill(SIGKILL)
        p.wait()
        #expect(filled, "\(variant): the image did not reach 12 MiB within \(Progress.defaultTimeout) s")
        #expect(!exitedEarly, "the fill script ended before the kill: \((try? String(contentsOfFile: dir + "/err.txt", encoding: .utf8)) ?? "")")
        try Qcow2WriteOracle.expectClean(img, allowLeaks: true, "\(variant) after the kill")
        let leftBehind = UInt64((try FileManager.default.attributesOfItem(atPath: img)[.size] as? Int) ?? 0)
        #expect(leftBehind > 8 << 20, "\(variant): the killed writer left only \(leftBehind) bytes")
        // 2. Partial writes and zeroes into fresh guest clusters at 1.5 GiB.
        var rng = SeededRandom(seed: 0x7F4A_7C15)
        func rnd() -> Int { Int(rng.next() % (1 << 40)) }
        var script: [String] = [], reads: [String] = []
        for i in 0..<150 {
            let cluster = (1536 << 20) + i * 2 * 65536
            let len = (rnd() % 100 + 1) * 512
            let off = (rnd() % ((65536 - len) / 512 + 1)) * 512
            if i % 5 == 4 {
                script.append("zero \(cluster + off) \(len)")
                reads.append("read -P 0 \(cluster) 65536")
            } else {
                let pat = i % 200 + 20
                script.append("write \(cluster + off) \(len) \(pat)")
                reads.append("read -P \(pat) \(cluster + off) \(len)")
                if off > 0 { reads.append("read -P 0 \(cluster) \(off)") }
                if off + len < 65536 { reads.append("read -P 0 \(cluster + off + len) \(65536 - off - len)") }
            }
        }
        try (script.joined(separator: "\n") + "\nfsync\n").write(toFile: dir + "/w.txt", atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", "--engine", engine, img, dir + "/w.txt"])
        #expect(r.status == 0, "\(variant): \(r.stderr)")
        var args = ["-f", "qcow2"]
        for c in reads { args += ["-c", c] }
        let q = try TestSupport.run("qemu-io", args + [img])
        let bad = q.stdoutText.split(separator: "\n").filter { $0.contains("failed") }
        #expect(q.status == 0 && bad.isEmpty, "\(variant): \(bad.count) ranges read wrong, e.g. \(bad.prefix(3)) \(q.stderr.prefix(200))")
        // The scenario happened: new data landed in space the killed writer had filled.
        let map = try JSONValue.parse(try TestSupport.qemuImg(["map", "--output=json", "-f", "qcow2", img]).stdoutText)
        let reused = (map.arrayValue ?? []).contains { e in
            (e["start"]?.intValue ?? 0) >= 1536 << 20 && (e["offset"]?.intValue).map { UInt64($0) < leftBehind } == true
        }
        #expect(reused, "\(variant): no new cluster was placed in the space the killed writer left behind")
        try Qcow2WriteOracle.expectClean(img, allowLeaks: true, "\(variant) after the new writes")
    }
}

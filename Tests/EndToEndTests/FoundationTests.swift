import Foundation
import Testing
import BlockCore
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The built binary on RAW images: cat, info, run scripts, bad input, image locks.
@Suite("Foundation end to end", .serialized)
struct FoundationTests {
    @Test("cat of a raw image equals the file and goes through io_uring_enter (strace)")
    func catRawThroughUring() throws {
        let dir = try TestSupport.makeTempDir("cat")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/raw.img"
        let bytes = TestSupport.pseudoRandomBytes(count: 5 * 1024 * 1024 + 123, seed: 11)
        try TestSupport.writeFile(img, bytes)
        let r = try TestSupport.blockscope(["cat", img])
        #expect(r.status == 0)
        #expect(r.stdout == Data(bytes))
        let trace = dir + "/strace.txt"
        let s = try TestSupport.run("strace", ["-f", "-o", trace, "-e", "trace=io_uring_enter,io_uring_setup,pread64,preadv,preadv2", TestSupport.blockscopeBinary, "cat", img])
        #expect(s.status == 0)
        #expect(s.stdout == Data(bytes))
        let text = String(decoding: try TestSupport.readFile(trace), as: UTF8.self)
        let enters = text.split(separator: "\n").filter { $0.contains("io_uring_enter(") }.count
        #expect(enters >= 1)
        // Data does not come through pread: at most the small probe/header reads.
        let preads = text.split(separator: "\n").filter { $0.contains("pread64(") }
        #expect(preads.count <= 4)
    }

    @Test("cat --offset/--length returns that slice; --engine=sync gives the same bytes")
    func catSlice() throws {
        let dir = try TestSupport.makeTempDir("slice")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/raw.img"
        let bytes = TestSupport.pseudoRandomBytes(count: 3 << 20, seed: 5)
        try TestSupport.writeFile(img, bytes)
        let a = try TestSupport.blockscope(["cat", img, "--offset", "1M", "--length", "12345"])
        #expect(a.stdout == Data(bytes[(1 << 20)..<((1 << 20) + 12345)]))
        let b = try TestSupport.blockscope(["cat", img, "--engine", "sync"])
        #expect(b.stdout == Data(bytes))
        let c = try TestSupport.blockscope(["cat", img, "--offset", "4M"])
        #expect(c.status == 1)
        #expect(c.stderr.contains("past the end"))
    }

    @Test("info --output=json on raw gives format raw and the right virtual-size, like qemu-img info")
    func infoRaw() throws {
        let dir = try TestSupport.makeTempDir("info")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/raw.img"
        try TestSupport.qemuImg(["create", "-f", "raw", img, "7M"])
        let r = try TestSupport.blockscope(["info", "--output=json", img])
        #expect(r.status == 0)
        let ours = try JSONValue.parse(r.stdoutText)
        let theirs = try JSONValue.parse(try TestSupport.qemuImg(["info", "--output=json", img]).stdoutText)
        #expect(ours["format"]?.stringValue == "raw")
        #expect(ours["virtual-size"]?.intValue == 7 << 20)
        #expect(ours["virtual-size"] == theirs["virtual-size"])
        #expect(ours["format"] == theirs["format"])
        #expect(ours["dirty-flag"] == theirs["dirty-flag"])
    }

    @Test("a script's writes land in the raw file (checked with qemu-io read -P) and reads verify patterns")
    func runScript() throws {
        let dir = try TestSupport.makeTempDir("run")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/raw.img"
        try TestSupport.qemuImg(["create", "-f", "raw", img, "4M"])
        let script = dir + "/s.bs"
        try "write 1M 64k 0xab\nfsync\nread 1M 64k 0xab\nzero 1M 4k\nread 1M 4k 0\n".write(toFile: script, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", img, script])
        #expect(r.status == 0, "\(r.stderr)")
        try TestSupport.qemuIo(img, format: "raw", ["read -P 0xab 1052672 61440", "read -P 0 1048576 4096", "read -P 0 0 1048576"])
        // Without --write the script is refused before anything is written.
        let ro = try TestSupport.blockscope(["run", img, script])
        #expect(ro.status == 1)
        #expect(ro.stderr.contains("--write"))
        // A pattern mismatch fails naming the offset.
        try "read 1M 4k 0x11\n".write(toFile: script, atomically: true, encoding: .utf8)
        let bad = try TestSupport.blockscope(["run", img, script])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("0x100000"))
    }

    @Test("bad input: one clear line naming the file, non-zero exit, never a crash")
    func badInput() throws {
        let dir = try TestSupport.makeTempDir("bad")
        defer { TestSupport.removeTempDir(dir) }
        let empty = dir + "/empty.img"
        try TestSupport.writeFile(empty, [])
        let truncated = dir + "/trunc.qcow2"
        try TestSupport.writeFile(truncated, [0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3])
        let garbage = dir + "/garbage.qcow2"
        try TestSupport.writeFile(garbage, [0x51, 0x46, 0x49, 0xfb] + TestSupport.pseudoRandomBytes(count: 4096, seed: 1))
        let script = dir + "/bad.bs"
        try "write 0 4k\nwrite zero 4k\n".write(toFile: script, atomically: true, encoding: .utf8)
        let raw = dir + "/raw.img"
        try TestSupport.writeFile(raw, [UInt8](repeating: 0, count: 4096))
        let cases: [([String], String)] = [
            (["info", dir + "/missing.img"], "missing.img"),
            (["info", dir], dir),
            (["info", empty], "empty.img"),
            (["info", truncated], "trunc.qcow2"),
            (["info", garbage], "garbage.qcow2"),
            (["cat", truncated], "trunc.qcow2"),
            (["run", "--write", raw, script], "bad.bs"),
            (["run", raw, dir + "/nope.bs"], "nope.bs"),
        ]
        for (args, name) in cases {
            let r = try TestSupport.blockscope(args)
            #expect(r.status == 1, "\(args): status \(r.status)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.contains(name), "\(args): \(r.stderr)")
        }
        let line = try TestSupport.blockscope(["run", "--write", raw, script])
        #expect(line.stderr.contains("line 2"))
        // A bad command line is an argument-parser usage error, not a crash.
        let usage = try TestSupport.blockscope(["cat", raw, "--offset", "12q"])
        #expect(usage.status != 0 && usage.status < 128)
    }

    /// Starts `qemu-img bench` writing to `image` in the background and waits until it holds its locks.
    func startBench(_ image: String, format: String) throws -> BackgroundProcess {
        let p = try BackgroundProcess("qemu-img", ["bench", "-w", "-f", format, "-c", "100000000", "-d", "1", "-s", "4k", image])
        // Wait until the write lock byte (101) is held. The probe must not take a lock that
        // conflicts with the bench's (a qemu-io write open could win the race and make the
        // bench exit): blockscope's read-only open only reports the holder.
        var locked = false
        Progress.wait(interval: 0.05) {
            locked = (try? TestSupport.blockscope(["info", image]))?.stderr.contains("open for writing in another process") == true
            return locked || p.hasExited
        }
        if locked { return p }
        if p.hasExited { throw TestFailure("qemu-img bench exited before taking its lock") }
        throw TestFailure("qemu-img bench did not take its write lock within \(Progress.defaultTimeout) s")
    }

    @Test("while qemu-img bench writes a QCOW2 image, run --write is refused for the lock; a read-only open is not")
    func lockQcow2() throws {
        let dir = try TestSupport.makeTempDir("lock")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/busy.qcow2"
        try TestSupport.qemuImg(["create", "-f", "qcow2", img, "64M"])
        let script = dir + "/w.bs"
        try "write 0 4k\n".write(toFile: script, atomically: true, encoding: .utf8)
        let bench = try startBench(img, format: "qcow2")
        defer { bench.kill(SIGKILL); bench.wait() }
        let w = try TestSupport.blockscope(["run", "--write", img, script])
        #expect(w.status == 1)
        #expect(w.stderr.contains("locked"), "\(w.stderr)")
        #expect(w.stderr.contains("busy.qcow2"))
        let r = try TestSupport.blockscope(["info", img])
        #expect(!r.stderr.contains("is locked"), "\(r.stderr)")
        #expect(r.stderr.contains("open for writing in another process"), "\(r.stderr)")
    }

    @Test("qemu-img shares writes on RAW: run --write on a raw image in use is allowed")
    func lockRawShared() throws {
        let dir = try TestSupport.makeTempDir("lockraw")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/busy.raw"
        try TestSupport.qemuImg(["create", "-f", "raw", img, "64M"])
        let script = dir + "/w.bs"
        try "write 32M 4k 0x5a\n".write(toFile: script, atomically: true, encoding: .utf8)
        let bench = try startBench(img, format: "raw")
        defer { bench.kill(SIGKILL); bench.wait() }
        let w = try TestSupport.blockscope(["run", "--write", img, script])
        #expect(w.status == 0, "\(w.stderr)")
    }

    @Test("blockscope's own write open takes QEMU's locks: qemu-io cannot write the image meanwhile")
    func ourLockSeenByQemu() throws {
        let dir = try TestSupport.makeTempDir("ourlock")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/held.qcow2"
        try TestSupport.qemuImg(["create", "-f", "qcow2", img, "16M"])
        let lock = try ImageLock(path: img, writable: true, shareWrites: false)
        let r = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "write 0 512", img])
        #expect(r.status != 0 || r.stderr.contains("lock"))
        #expect(r.stderr.contains("lock"), "\(r.stderr)")
        lock.release()
        let ok = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "write 0 512", img])
        #expect(ok.status == 0, "\(ok.stderr)")
    }
}

import BlockCore
import Foundation
import Testing
import TestSupport

/// `check -r` repairs judged by qemu-img check, and the syscall profile of async reads.
@Suite("QCOW2 repair and async I/O profile")
struct Qcow2RepairAndIoTests {
    /// A 64 KiB-cluster image: header 0, refcount table 0x10000, refcount block 0x20000,
    /// L1 0x30000, L2 0x40000, data clusters 5 and 6 (16-bit refcounts).
    static func image(_ dir: String) throws -> String {
        let img = dir + "/r.qcow2"
        try Qcow2Oracle.create(img, "4M")
        try Qcow2Oracle.io(img, ["write -P 1 0 128k"])
        return img
    }

    static func checkJSON(_ args: [String]) throws -> (status: Int32, fields: [String: String]) {
        let r = try TestSupport.blockscope(args)
        return (r.status, Qcow2Oracle.fields(try Qcow2Oracle.json(r.stdoutText)))
    }

    @Test("a leaked cluster is counted like qemu-img (exit 3) and check -r leaks --write fixes it")
    func leakIsFoundAndRepaired() throws {
        let dir = try TestSupport.makeTempDir("qcow2-leak")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Self.image(dir)
        // Append cluster 7 and give it refcount 1: referenced by nothing.
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: img))
        try h.truncate(atOffset: 8 * 65536)
        try h.close()
        try Qcow2MalformedTests.patch(img, at: 0x20000 + 7 * 2, 1, width: 2)
        try Qcow2Oracle.expectCheckMatches(img)
        let before = try Self.checkJSON(["check", "--output=json", img])
        #expect(before.status == 3 && before.fields["leaks"] == "1", "\(before)")
        let refused = try TestSupport.blockscope(["check", "-r", "leaks", img])
        #expect(refused.status == 1 && refused.stderr.contains("--write"))
        let fixed = try Self.checkJSON(["check", "--output=json", "-r", "leaks", "--write", img])
        #expect(fixed.status == 0 && fixed.fields["leaks-fixed"] == "1", "\(fixed)")
        let q = try TestSupport.qemuImg(["check", img])
        #expect(q.status == 0, "qemu-img check after repair: \(q.stdoutText) \(q.stderr)")
    }

    @Test("a refcount that is too low is a corruption (exit 2) and check -r all --write fixes it")
    func corruptionIsFoundAndRepaired() throws {
        let dir = try TestSupport.makeTempDir("qcow2-corrupt")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Self.image(dir)
        try Qcow2MalformedTests.patch(img, at: 0x20000 + 5 * 2, 0, width: 2)
        try Qcow2Oracle.expectCheckMatches(img)
        let leaksOnly = try Self.checkJSON(["check", "--output=json", "-r", "leaks", "--write", img])
        #expect(leaksOnly.status == 2, "-r leaks leaves corruptions: \(leaksOnly)")
        let fixed = try Self.checkJSON(["check", "--output=json", "-r", "all", "--write", img])
        #expect(fixed.status == 0, "\(fixed)")
        let q = try TestSupport.qemuImg(["check", img])
        #expect(q.status == 0, "qemu-img check after repair: \(q.stdoutText) \(q.stderr)")
        try Qcow2Oracle.expectCatMatches(img)
    }

    @Test("a dirty lazy-refcount image is repaired by check -r all --write and then passes qemu-img check")
    func dirtyImageIsRepaired() throws {
        let dir = try TestSupport.makeTempDir("qcow2-dirtyfix")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/d.qcow2"
        try Qcow2Oracle.create(img, "4M", options: "lazy_refcounts=on")
        _ = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "write -P 7 0 200k", "-c", "abort", img])
        let oracle = try TestSupport.qemuRaw(img, format: "qcow2")
        let fixed = try Self.checkJSON(["check", "--output=json", "-r", "all", "--write", img])
        #expect(fixed.status == 0, "\(fixed)")
        let q = try TestSupport.qemuImg(["check", img])
        #expect(q.status == 0, "qemu-img check after repair: \(q.stdoutText) \(q.stderr)")
        let info = try Qcow2Oracle.json(try TestSupport.qemuImg(["info", "--output=json", img]).stdoutText)
        #expect(info["dirty-flag"] == .bool(false))
        let same = try TestSupport.qemuRaw(img, format: "qcow2") == oracle
        #expect(same, "guest content changed by the repair")
    }

    /// Bytes and calls of pread64/preadv/preadv2 in an strace log.
    static func preadVolume(_ log: String) -> (calls: Int, bytes: Int) {
        var calls = 0, bytes = 0
        for line in log.split(separator: "\n") where line.contains("pread") {
            calls += 1
            if let r = line.range(of: "= ", options: .backwards), let n = Int(line[r.upperBound...].prefix { $0.isNumber }) { bytes += n }
        }
        return (calls, bytes)
    }

    @Test("async cat reads guest data through io_uring: no pread/preadv for data (multi-cluster, zstd, raw backing)")
    func asyncReadsUseIoUringForData() throws {
        let dir = try TestSupport.makeTempDir("qcow2-strace")
        defer { TestSupport.removeTempDir(dir) }
        let plain = dir + "/p.qcow2", comp = dir + "/z.qcow2", over = dir + "/o.qcow2", base = dir + "/base.raw"
        try Qcow2Oracle.create(plain, "24M")
        try Qcow2Oracle.io(plain, ["write -P 0x5a 0 20M"])
        try TestSupport.qemuImg(["convert", "-q", "-c", "-O", "qcow2", "-o", "compression_type=zstd", plain, comp])
        try TestSupport.writeFile(base, TestSupport.pseudoRandomBytes(count: 6 << 20, seed: 3))
        try Qcow2Oracle.create(over, "8M", extra: ["-b", "base.raw", "-F", "raw"])
        try Qcow2Oracle.io(over, ["write -P 1 1M 64k"])
        for img in [plain, comp, over] {
            let log = dir + "/strace.txt"
            let r = try TestSupport.run("strace", ["-f", "-e", "trace=pread64,preadv,preadv2", "-o", log,
                                                   TestSupport.blockscopeBinary, "cat", "--engine", "uring", img])
            #expect(r.status == 0, "cat \(img) under strace: \(r.stderr.suffix(300))")
            let same = r.stdout == (try TestSupport.qemuRaw(img, format: "qcow2"))
            #expect(same, "cat \(img) under strace differs from qemu-img")
            let v = Self.preadVolume(String(decoding: try TestSupport.readFile(log), as: UTF8.self))
            // Open reads the header, first cluster, L1, refcount table and a few L2 tables; the
            // data (6..24 MiB here) must not go through pread.
            #expect(v.bytes < 512 << 10 && v.calls < 32, "\(img): \(v.calls) pread calls, \(v.bytes) bytes for \(r.stdout.count) bytes of data")
        }
    }
}

import BlockCore
import Foundation
import Testing
import TestSupport

/// A QCOW2 whose L2 entry points a data cluster at the image's own metadata (L1 table,
/// refcount table, refcount block, the L2 table itself): a guest write there must be refused
/// with an error naming the image and the overlap, the metadata must stay intact, and the
/// image must be marked corrupt as qemu-img info reports it.
@Suite("Qcow2 metadata overlap on write")
struct Qcow2OverlapTests {
    static func be64(_ d: [UInt8], _ at: Int) -> UInt64 { d[at..<(at + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
    static func put64(_ d: inout [UInt8], _ at: Int, _ v: UInt64) { for i in 0..<8 { d[at + i] = UInt8(truncatingIfNeeded: v >> (56 - 8 * i)) } }

    /// Proves: after L2[0] is rewritten (with the COPIED flag, so the write would go in place)
    /// to point at a metadata cluster, `blockscope run --write` of `write 0 4k` fails naming the
    /// image and an overlap/metadata problem, the metadata cluster's bytes are unchanged, and
    /// `qemu-img info --output=json` shows `"corrupt": true`; afterwards blockscope, like
    /// qemu-io, refuses any write to the image; with either engine.
    @Test("a write whose cluster overlaps metadata is refused and marks the image corrupt", arguments: [
        ("L1 table", "uring"), ("refcount table", "uring"), ("refcount block", "uring"), ("L2 table", "uring"),
        ("L1 table", "sync"), ("refcount block", "sync"),
    ])
    func overlapIsRefused(_ target: String, _ engine: String) throws {
        let dir = try TestSupport.makeTempDir("q2w-meta")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/victim.qcow2", script = dir + "/w.txt"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", img, "16M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x11 0 64k", "write -P 0x22 1M 64k"])
        var bytes = [UInt8](try TestSupport.readFile(img))
        let l1 = Self.be64(bytes, 40), rt = Self.be64(bytes, 48)
        let l2 = Self.be64(bytes, Int(l1)) & 0x00ff_ffff_ffff_fe00
        let rb = Self.be64(bytes, Int(rt)) & ~UInt64(0x1ff)
        let victim: UInt64
        switch target {
        case "L1 table": victim = l1
        case "refcount table": victim = rt
        case "refcount block": victim = rb
        default: victim = l2
        }
        #expect(victim != 0 && victim % 65536 == 0, "\(target) at \(victim)")
        Self.put64(&bytes, Int(l2), victim | 1 << 63)
        try TestSupport.writeFile(img, bytes)
        let metadataBefore = Array(bytes[Int(victim)..<min(bytes.count, Int(victim) + 65536)])
        try "write 0 4k 0xaa\nfsync\n".write(toFile: script, atomically: true, encoding: .utf8)

        let r = try TestSupport.blockscope(["run", "--write", "--engine", engine, img, script])
        #expect(r.status != 0, "\(target): the overlapping write succeeded")
        #expect(r.stderr.contains("victim.qcow2"), "\(target): the error does not name the image: \(r.stderr)")
        // The reason, in the message apart from the path.
        let reason = r.stderr.replacingOccurrences(of: img, with: "").replacingOccurrences(of: "victim.qcow2", with: "").lowercased()
        #expect(reason.contains("overlap") || reason.contains("metadata"), "\(target): the error does not name the overlap: \(r.stderr)")
        let after = [UInt8](try TestSupport.readFile(img))
        // The metadata cluster was not overwritten with guest data (the L2 table's entry 0 itself is allowed to differ).
        let afterMeta = Array(after[Int(victim)..<min(after.count, Int(victim) + 65536)])
        #expect(!afterMeta.starts(with: [UInt8](repeating: 0xaa, count: 512)), "\(target) was overwritten with guest data")
        if target != "L2 table" { #expect(afterMeta == metadataBefore, "\(target) bytes changed") }
        let info = try JSONValue.parse(try TestSupport.qemuImg(["info", "--output=json", "-U", img]).stdoutText)
        #expect(info["format-specific"]?["data"]?["corrupt"]?.boolValue == true, "\(target): qemu-img info: \(info.render())")
        // Like qemu-io, blockscope now refuses to open the image for writing at all.
        try "write 2M 4k 0xbb\n".write(toFile: script, atomically: true, encoding: .utf8)
        let again = try TestSupport.blockscope(["run", "--write", "--engine", engine, img, script])
        let qemu = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "write 2M 4k", img])
        #expect(qemu.status != 0 || qemu.stderr.contains("corrupt"), "qemu-io wrote to the corrupt image: \(qemu.stdoutText)")
        #expect(again.status != 0, "\(target): blockscope wrote to an image marked corrupt")
    }

    /// Proves: when the refcount of a metadata cluster (L1 table, refcount table, refcount
    /// block, L2 table) reads 0, allocating writes never place data there: the run either
    /// succeeds with every write readable by qemu-io (and the original data intact) or fails
    /// naming the overlap, and in both cases the metadata cluster holds no guest data.
    @Test("allocation never hands out a metadata cluster whose refcount reads 0", arguments: [
        "L1 table", "refcount table", "refcount block", "L2 table",
    ])
    func allocationAvoidsMetadata(_ target: String) throws {
        let dir = try TestSupport.makeTempDir("q2w-meta-alloc")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/victim.qcow2", script = dir + "/w.txt"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", img, "16M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x11 0 64k"])
        var bytes = [UInt8](try TestSupport.readFile(img))
        let l1 = Self.be64(bytes, 40), rt = Self.be64(bytes, 48)
        let l2 = Self.be64(bytes, Int(l1)) & 0x00ff_ffff_ffff_fe00
        let rb = Self.be64(bytes, Int(rt)) & ~UInt64(0x1ff)
        let victim = ["L1 table": l1, "refcount table": rt, "refcount block": rb][target] ?? l2
        let entry = Int(rb) + 2 * Int(victim / 65536)   // 16-bit refcounts
        bytes[entry] = 0; bytes[entry + 1] = 0
        try TestSupport.writeFile(img, bytes)
        try "write 1M 512k 0xaa\nwrite 4M 64k 0xab\nwrite 8M 200k 0xac\nfsync\n".write(toFile: script, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", img, script])
        let after = [UInt8](try TestSupport.readFile(img))
        let meta = after[Int(victim)..<min(after.count, Int(victim) + 65536)]
        #expect(![0xaa, 0xab, 0xac].contains { p in meta.starts(with: [UInt8](repeating: p, count: 512)) },
                "\(target): guest data was written over the metadata cluster")
        if r.status == 0 {
            let q = try TestSupport.run("qemu-io", ["-r", "-f", "qcow2", "-c", "read -P 0xaa 1M 512k", "-c", "read -P 0xab 4M 64k",
                                                    "-c", "read -P 0xac 8M 200k", "-c", "read -P 0x11 0 64k", img])
            #expect(q.status == 0 && !q.stdoutText.contains("failed"), "\(target): \(q.stdoutText) \(q.stderr)")
        } else {
            let reason = r.stderr.replacingOccurrences(of: img, with: "").lowercased()
            #expect(reason.contains("overlap") || reason.contains("metadata"), "\(target): \(r.stderr)")
        }
    }
}

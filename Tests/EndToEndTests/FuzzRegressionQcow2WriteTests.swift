import Testing
import Foundation
import BlockCore
import TestSupport

/// The `qcow2-write` findings of the first campaign (docs/FUZZING.md, Fuzz/regressions/qcow2-write/):
/// images blockscope's `check` called clean had a corruption after the writes. In each, QEMU's
/// writes leave the same metadata; the difference was in `check`, which counted what qemu-img
/// check does not (a stale bitmap directory) and missed what it counts (incomplete snapshot
/// entries). Each image is rebuilt by hand from qemu-img's; qemu-img and qemu-io are the oracles.
@Suite struct FuzzRegressionQcow2WriteTests {
    static let mask: UInt64 = 0x00ff_ffff_ffff_fe00

    @Test func qcow2CheckIgnoresABitmapDirectoryWhoseAutoclearBitIsClearAsQemuDoes() throws {
        // crash-f7c0…: a bitmap directory running past the end of the file, its entry's table
        // at 0xababababab. check skipped the unreadable directory ("clean"); the first write
        // cleared the bitmaps autoclear bit and grew the file, and check then counted the
        // directory: "ERROR: counting reference for region exceeding the end of the file ...
        // offset 0xababababab". qemu-img ignores the extension once the bit is clear.
        let dir = try TestSupport.makeTempDir("fuzz-qcow2-bitmap"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/b.qcow2", script = dir + "/w.script"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "1M"])
        try TestSupport.qemuImg(["bitmap", "--add", img, "b0"])
        let ext = try #require(try headerExtension(img, type: 0x2385_2875), "qemu-img wrote a bitmaps extension")
        let dirOffset = try beU64(img, at: ext + 24)   // after count, reserved, size
        var data = try TestSupport.readFile(img)
        data.replaceSubrange(Int(dirOffset)..<Int(dirOffset) + 12, with: bytes(0xab_abab_abab) + [0, 0, 0, 1])
        try data.prefix(Int(dirOffset) + 16).write(to: URL(fileURLWithPath: img))   // the entry's tail past EOF
        #expect(try TestSupport.run("qemu-img", ["check", img]).status != 0, "QEMU refuses the image (zeroes past EOF: an empty name)")

        try "write 0 0x1000 0xab\nfsync\n".write(toFile: script, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", img, script])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try beU64(img, at: 88) == 0, "the writer cleared the bitmaps autoclear bit")
        let qemu = try TestSupport.qemuImg(["check", "--output=json", img])
        #expect(qemu.status == 3 && !qemu.stdoutText.contains("\"corruptions\""), "qemu-img: leaks only: \(qemu.stdoutText)")
        let leaked = try #require(qemu.stdoutText.split(separator: "\n").first { $0.contains("\"leaks\"") }, "\(qemu.stdoutText)")
        let mine = try TestSupport.blockscope(["check", img])
        #expect(mine.status == 3, "blockscope: leaks only: \(mine.stdoutText)")
        #expect(!mine.stdoutText.contains("0xababababab"), "the stale directory is not counted: \(mine.stdoutText)")
        #expect(mine.stdoutText.contains("Leaked cluster \(dirOffset / 4096) refcount=1 reference=0"), "its cluster leaks, as qemu-img says: \(mine.stdoutText)")
        let count = String(leaked.filter { $0.isNumber })
        #expect(mine.stdoutText.contains("\(count) leaked clusters were found on the image."), "qemu-img's count (\(leaked)): \(mine.stdoutText)")
    }

    @Test func qcow2CheckCountsAnIncompleteV3SnapshotEntryAsQemuImgDoes() throws {
        // crash-8f2f…, crash-aca3…: the snapshot table's entries had no extra data. qemu-img
        // check counts each as a corruption ("snapshot table entry N is incomplete"); check
        // called the image clean, so the fuzzer held the writes to a clean image's standard.
        let dir = try TestSupport.makeTempDir("fuzz-qcow2-snap"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "1M"])
        try TestSupport.qemuImg(["snapshot", "-c", "s1", img])
        let table = try beU64(img, at: 64)
        var data = try TestSupport.readFile(img)
        let t = Int(table), extra = Int(try beU32(img, at: table + 36))
        #expect(extra >= 16, "qemu-img writes the guest size")
        let idName = (Int(data[t + 12]) << 8 | Int(data[t + 13])) + (Int(data[t + 14]) << 8 | Int(data[t + 15]))
        // Keep 8 bytes of extra data (the VM state size), drop the guest size.
        let tail = Array(data[(t + 40 + extra)..<(t + 40 + extra + idName)])
        data.replaceSubrange((t + 36)..<(t + 40), with: [0, 0, 0, 8])
        data.replaceSubrange((t + 48)..<(t + 48 + idName), with: tail)
        try data.write(to: URL(fileURLWithPath: img))
        let qemu = try TestSupport.run("qemu-img", ["check", img])
        #expect(qemu.status == 2 && (qemu.stdoutText + qemu.stderr).contains("ERROR snapshot table entry 0 is incomplete"), "\(qemu.stdoutText) \(qemu.stderr)")
        let mine = try TestSupport.blockscope(["check", img])
        #expect(mine.status == 2, "\(mine.stdoutText)")
        #expect(mine.stdoutText.contains("ERROR snapshot table entry 0 is incomplete"), "\(mine.stdoutText)")
        #expect(mine.stdoutText.contains("1 errors were found on the image."), "as many as qemu-img: \(mine.stdoutText)")
    }

    @Test func qcow2WriteThroughAnL2TableThatIsAlsoADataClusterEndsAsQemuWritesIt() throws {
        // crash-8f2f…, crash-aca3…: the L2 table's cluster was also an L2 entry's data cluster
        // (refcount 2, so both checks call it clean). The first write copies the shared L2
        // and drops the old cluster to refcount 1, whose data entry has no COPIED flag:
        // "ERROR OFLAG_COPIED data cluster". QEMU does exactly the same; no write lands in
        // metadata. The fuzzer's program on the same image, through blockscope and qemu-io.
        let dir = try TestSupport.makeTempDir("fuzz-qcow2-l2data"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/l.qcow2", viaQemu = dir + "/q.qcow2", script = dir + "/w.script"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "1M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x11 0x2000 4k"])
        let l1 = try beU64(img, at: 40), l2 = try beU64(img, at: l1) & Self.mask
        let rt = try beU64(img, at: 48), rb = try beU64(img, at: rt)
        try patch(img, at: l1, bytes(l2))                  // L1 entry without COPIED
        try patch(img, at: l2 + 8 * 243, bytes(l2))        // guest 0xf3000 maps the L2 table
        try patch(img, at: rb + 2 * (l2 / 4096), [0, 2])
        #expect(try TestSupport.qemuImg(["check", img]).status == 0, "qemu-img calls it clean")
        #expect(try TestSupport.blockscope(["check", img]).status == 0, "and so does blockscope")
        try FileManager.default.copyItem(atPath: img, toPath: viaQemu)

        try "write 0x200 0x200 0x1\nwrite 0x3064 0x600 0x2\nzero 0x0 0x200\ndiscard 0x0 0x1000\nwrite 0x1000 0x8000 0x5\nfsync\nzero 0x8000 0x200\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", img, script])
        #expect(r.status == 0, "\(r.stderr)")
        try TestSupport.qemuIo(viaQemu, format: "qcow2", ["write -P 0x1 0x200 0x200", "write -P 0x2 0x3064 0x600", "write -z 0 0x200",
                                                          "discard 0 0x1000", "write -P 0x5 0x1000 0x8000", "flush", "write -z 0x8000 0x200"])
        #expect(try TestSupport.qemuImg(["compare", img, viaQemu]).status == 0, "the same guest content")
        // The same findings (blockscope may place the new clusters elsewhere: QEMU's order is not the spec's).
        let mine = try TestSupport.run("qemu-img", ["check", img]), theirs = try TestSupport.run("qemu-img", ["check", viaQemu])
        let copied = "ERROR OFLAG_COPIED data cluster: l2_entry=\(String(l2, radix: 16)) refcount=1"
        for (who, c) in [("blockscope", mine), ("qemu-io", theirs)] {
            let lines = (c.stdoutText + c.stderr).split(separator: "\n").filter { $0.hasPrefix("ERROR") || $0.hasPrefix("Leaked") }
            #expect(c.status == 2 && lines == [Substring(copied)], "after \(who)'s writes, qemu-img check finds only \(copied): \(c.stdoutText) \(c.stderr)")
        }
        let mineNow = try TestSupport.blockscope(["check", img])
        #expect(mineNow.status == 2 && mineNow.stdoutText.contains(copied), "blockscope check agrees: \(mineNow.stdoutText)")
        let a = try TestSupport.readFile(img), b = try TestSupport.readFile(viaQemu)
        #expect(try beU64(img, at: l1) & Self.mask != l2, "the shared L2 was copied")
        #expect(a[Int(l2)..<Int(l2) + 4096] == b[Int(l2)..<Int(l2) + 4096], "the old L2 (a data cluster now) untouched by both")
    }

    @Test func qcow2HeaderWithABackingFileOffsetNearTwoToThe64IsRefusedAsByQemu() throws {
        // crash-078e… (campaign 2026-12-05): backing_file_offset 0xffffffffffffffff with a
        // 10-byte name; the header parser added the two and trapped ("arithmetic overflow").
        // qemu-img refuses the file ("Invalid backing file offset").
        let dir = try TestSupport.makeTempDir("fuzz-qcow2-backing-offset"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/o.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "1M"])
        try patch(img, at: 8, bytes(UInt64.max) + [0, 0, 0, 10])   // backing_file_offset, backing_file_size
        let before = try TestSupport.readFile(img)
        let q = try TestSupport.run("qemu-img", ["info", img])
        #expect(q.status != 0 && q.stderr.contains("Invalid backing file offset"), "qemu-img refuses it: \(q.stderr)")
        for args in [["info", img], ["check", img], ["map", img]] {
            let r = try TestSupport.blockscope(args)
            #expect(r.status == 1, "\(args[0]): one error, not a trap (status \(r.status)): \(r.stderr)")
            #expect(r.stderr.contains("backing file name (offset 0xffffffffffffffff, 10 bytes) does not fit in the first cluster"), "\(args[0]): \(r.stderr)")
        }
        #expect(try TestSupport.readFile(img) == before, "the file is unchanged")
    }

    func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path)); defer { try? h.close() }
        try h.seek(toOffset: offset); try h.write(contentsOf: Data(bytes))
    }

    func bytes(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64(7 - $0))) } }

    func beU64(_ path: String, at offset: UInt64) throws -> UInt64 {
        let d = try TestSupport.readFile(path)
        return d[Int(offset)..<Int(offset) + 8].reduce(0) { $0 << 8 | UInt64($1) }
    }

    func beU32(_ path: String, at offset: UInt64) throws -> UInt32 {
        let d = try TestSupport.readFile(path)
        return d[Int(offset)..<Int(offset) + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Offset of the header extension of `type` (its 8-byte type/length header), nil without one.
    func headerExtension(_ path: String, type: UInt32) throws -> UInt64? {
        let d = try TestSupport.readFile(path)
        var off = Int(try beU32(path, at: 100))   // v3 header_length
        let end = min(d.count, 4096)
        while off + 8 <= end {
            let t = try beU32(path, at: UInt64(off)), len = Int(try beU32(path, at: UInt64(off + 4)))
            if t == type { return UInt64(off) }
            if t == 0 { return nil }
            off += 8 + (len + 7) / 8 * 8
        }
        return nil
    }
}

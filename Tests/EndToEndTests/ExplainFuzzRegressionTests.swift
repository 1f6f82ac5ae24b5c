import BlockCore
import Foundation
import Testing
import TestSupport

/// Findings of the `explain` fuzz target (docs/FUZZING.md, Fuzz/regressions/explain/): images
/// qemu-img makes, damaged a field at a time, that trapped `blockscope explain` (status 132)
/// before the fix. qemu-img check and info are the oracle for what is wrong with each.
@Suite struct ExplainFuzzRegressionTests {
    /// A 0-byte virtual disk whose refcount table lies far past the end of the file: qemu-img
    /// check counts 2 errors. The finding's guest range was 0x0 bytes long and its rendering
    /// (`0x0-` and the last byte) underflowed; the report now names the unreadable table and
    /// gives no guest range, in text and in JSON.
    @Test func zeroSizeImageWithUnreadableTablesExplainsWithoutAGuestRange() throws {
        let dir = try TestSupport.makeTempDir("explain-fz1"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/z.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "0"])
        try ExplainFixtures.put(img, at: 48, bigEndian(0x0400_0000_0001_0000))
        let q = try TestSupport.run("qemu-img", ["check", img])
        #expect(q.status == 2 && q.stderr.contains("exceeding the end of the file"), "qemu-img check \(q.status): \(q.stderr)")
        let text = try TestSupport.blockscope(["explain", img])
        #expect(text.status == 0, "status \(text.status): \(text.stderr)")
        #expect(text.stdoutText.contains("cannot be read") && text.stdoutText.contains("refcount table at 0x400000000010000"), "\(text.stdoutText)")
        #expect(!text.stdoutText.contains("guest:"), "\(text.stdoutText)")
        let json = try TestSupport.blockscope(["explain", "--output", "json", img])
        #expect(json.status == 0, "status \(json.status): \(json.stderr)")
        let report = try JSONValue.parse(json.stdoutText)
        let finding = try #require(report["findings"]?.arrayValue?.first)
        #expect(finding["guest"]?.arrayValue?.isEmpty == true, "\(json.stdoutText)")
    }

    /// A persistent bitmap whose table offset plus its size runs past 2^64: qemu-img refuses
    /// the image ("doesn't satisfy the constraints") and `check` names the offset; the reference
    /// walk's per-cluster record of the range (explain only) overflowed. Found by running the
    /// qcow2-read corpus through explain (Fuzz/regressions/explain/).
    @Test func bitmapTableRangePastTwoToThe64Explains() throws {
        let dir = try TestSupport.makeTempDir("explain-fz2"); defer { TestSupport.removeTempDir(dir) }
        let (img, directory) = try bitmapImage(dir)
        try ExplainFixtures.put(img, at: directory, bigEndian(0xffff_ffff_ffff_ffc0))
        try ExplainFixtures.put(img, at: directory + 8, Array(bigEndian(16).suffix(4)))
        let q = try TestSupport.run("qemu-img", ["check", img])
        #expect(q.status != 0 && q.stderr.contains("doesn't satisfy the constraints"), "\(q.stderr)")
        let check = try TestSupport.blockscope(["check", img])
        #expect(check.stdoutText.contains("cluster at 0xffffffffffffffc0 lies far beyond the end of the file"), "\(check.stdoutText)")
        let r = try TestSupport.blockscope(["explain", img])
        #expect(r.status == 0, "status \(r.status): \(r.stderr)")
        #expect(r.stdoutText.contains("finding"), "\(r.stdoutText)")
    }

    /// An L1 table offset past the end of the file (a truncated copy): qemu-img check counts 1
    /// error and 1 leak. The header's loose parse and the table read fail with one message;
    /// explain gave it twice ("header: X; tables: X") and now gives it once, with the table's
    /// place among the host ranges.
    @Test func l1TablePastTheEndIsNamedOnce() throws {
        let dir = try TestSupport.makeTempDir("explain-fz4"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/t.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try ExplainFixtures.put(img, at: 40, bigEndian(0x1_0000_0000))
        let q = try TestSupport.run("qemu-img", ["check", img])
        #expect(q.status == 2 && q.stdoutText.contains("1 errors") && q.stdoutText.contains("1 leaked"), "qemu-img check \(q.status): \(q.stdoutText)")
        let text = try TestSupport.blockscope(["explain", img])
        #expect(text.status == 0, "status \(text.status): \(text.stderr)")
        let reason = "L1 table at 0x100000000 (8 bytes) lies beyond the end of the file"
        #expect(text.stdoutText.components(separatedBy: reason).count == 2, "\(text.stdoutText)")
        #expect(text.stdoutText.contains("0x100000000-0x100000007"), "\(text.stdoutText)")
    }

    /// The same damage seen by a user: bitmap 'b0''s directory entry points its table past the
    /// end, so its old table and bitmap data are leaked. The old table holds an offset without
    /// flags and was called an orphaned L2 table, with the advice to link it into the L1 table
    /// (which would map bitmap bits into the guest's disk). Now one bad-bitmap finding names
    /// the bitmap, the old table and its data cluster; its remedy is checked with QEMU: on a
    /// copy with autoclear bit 0 cleared, qemu-img check counts 3 leaks, `-r leaks` leaves it
    /// clean, and the guest data reads back.
    @Test func badBitmapTableIsNamedAndItsOldTableIsNotAnOrphanedL2Table() throws {
        let dir = try TestSupport.makeTempDir("explain-fz5"); defer { TestSupport.removeTempDir(dir) }
        let (img, directory) = try bitmapImage(dir)
        let oldTable = try ExplainFixtures.word(img, at: directory)
        let oldBits = try ExplainFixtures.word(img, at: oldTable) & 0x00ff_ffff_ffff_fe00
        #expect(oldTable != 0 && oldBits != 0, "qemu-img wrote no bitmap table or bits: \(oldTable) \(oldBits)")
        try ExplainFixtures.put(img, at: directory, bigEndian(0x1000_0100))
        let q = try TestSupport.run("qemu-img", ["check", img])
        #expect(q.status != 0 && q.stderr.contains("Bitmap 'b0' doesn't satisfy the constraints"), "\(q.stderr)")
        let json = try TestSupport.blockscope(["explain", "--output", "json", img])
        #expect(json.status == 0, "status \(json.status): \(json.stderr)")
        let findings = try JSONValue.parse(json.stdoutText)["findings"]?.arrayValue ?? []
        #expect(findings.map { $0["class"]?.stringValue ?? "" } == ["bad-bitmap"], "\(json.stdoutText)")
        let host = findings.first?["host"]?.arrayValue?.compactMap { $0.arrayValue?.first?.intValue.map { UInt64($0) } } ?? []
        #expect(host.contains(oldTable) && host.contains(oldBits), "\(host) \(json.stdoutText)")
        let text = try TestSupport.blockscope(["explain", img]).stdoutText
        #expect(text.contains("Bitmap 'b0'") && text.contains("not cluster-aligned and past the end of the file") && text.contains("QEMU refuses to open"), "\(text)")
        #expect(!text.contains("Re-linking"), "\(text)")
        // The remedy the text gives, on a copy, with QEMU as the judge.
        let copy = dir + "/c.qcow2"
        try FileManager.default.copyItem(atPath: img, toPath: copy)
        let autoclear = try ExplainFixtures.word(copy, at: 88)
        try ExplainFixtures.put(copy, at: 88, bigEndian(autoclear & ~1))
        let leaks = try TestSupport.run("qemu-img", ["check", copy])
        #expect(leaks.status == 3 && leaks.stdoutText.contains("3 leaked clusters"), "\(leaks.status): \(leaks.stdoutText) \(leaks.stderr)")
        _ = try TestSupport.run("qemu-img", ["check", "-r", "leaks", copy])
        let clean = try TestSupport.run("qemu-img", ["check", copy])
        #expect(clean.status == 0, "\(clean.stdoutText)")
        let back = try TestSupport.run("qemu-io", ["-f", "qcow2", "-r", "-c", "read -P 1 0 4k", copy])
        #expect(back.status == 0 && !back.stdoutText.contains("fail"), "\(back.stdoutText)")

        // Aligned but past the end: QEMU opens the image and counts an error; the other
        // remedy (remove the bitmap, then free the leaks) is the one given, and it works.
        try ExplainFixtures.put(img, at: directory, bigEndian(0x1000_0000))
        let opened = try TestSupport.run("qemu-img", ["check", img])
        #expect(opened.status == 2 && opened.stdoutText.contains("1 errors") && opened.stdoutText.contains("2 leaked"), "\(opened.stdoutText) \(opened.stderr)")
        let aligned = try TestSupport.blockscope(["explain", img]).stdoutText
        #expect(aligned.contains("[bad-bitmap]") && aligned.contains("QEMU still opens the image") && aligned.contains("qemu-img bitmap --remove"), "\(aligned)")
        #expect(!aligned.contains("orphaned-l2-table") && !aligned.contains("Re-linking"), "\(aligned)")
        _ = try TestSupport.run("qemu-img", ["bitmap", "--remove", img, "b0"])
        let removed = try TestSupport.run("qemu-img", ["check", img])
        #expect(removed.status == 3 && removed.stdoutText.contains("2 leaked clusters"), "\(removed.status): \(removed.stdoutText)")
        _ = try TestSupport.run("qemu-img", ["check", "-r", "leaks", img])
        let repaired = try TestSupport.run("qemu-img", ["check", img])
        #expect(repaired.status == 0, "\(repaired.stdoutText)")
        let data = try TestSupport.run("qemu-io", ["-f", "qcow2", "-r", "-c", "read -P 1 0 4k", img])
        #expect(data.status == 0 && !data.stdoutText.contains("fail"), "\(data.stdoutText)")
    }

    /// A header that parses but for one field (a misaligned refcount table offset): the
    /// explanation says so, where it said the header cluster held guest data "as when guest
    /// data overwrote the first 64 KiB". qemu-img names the same field.
    @Test func headerWithOneBadFieldIsNotCalledOverwritten() throws {
        let dir = try TestSupport.makeTempDir("explain-fz3"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/m.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "1M"])
        try ExplainFixtures.put(img, at: 48, bigEndian(0x0400_0000_0000_0200))
        let q = try TestSupport.run("qemu-img", ["info", img])
        #expect(q.status != 0 && q.stderr.contains("Reference count table offset invalid"), "\(q.stderr)")
        let r = try TestSupport.blockscope(["explain", img])
        #expect(r.status == 0, "status \(r.status): \(r.stderr)")
        #expect(r.stdoutText.contains("holds a QCOW2 header that does not parse") && r.stdoutText.contains("refcount table at 0x400000000000200"), "\(r.stdoutText)")
        #expect(!r.stdoutText.contains("guest data overwrote"), "\(r.stdoutText)")
    }

    /// A QCOW2 image qemu-img makes in `dir` (4 KiB clusters, 1 MiB) with persistent bitmap
    /// 'b0' and 4 KiB of 0x01 written at 0; returns its path and the offset of its bitmap
    /// directory (the first entry: table offset, then table size).
    func bitmapImage(_ dir: String) throws -> (String, UInt64) {
        let img = dir + "/b.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "1M"])
        try TestSupport.qemuImg(["bitmap", "--add", img, "b0"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 1 0 4k"])
        let ext = try #require(try bitmapsExtension(img), "qemu-img wrote no bitmaps extension")
        return (img, try ExplainFixtures.word(img, at: ext + 16))
    }

    /// `v` as 8 big-endian bytes.
    func bigEndian(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64(7 - $0))) } }

    /// The file offset of the bitmaps header extension's data (nb_bitmaps, reserved,
    /// bitmap_directory_size, bitmap_directory_offset), if there is one.
    func bitmapsExtension(_ path: String) throws -> UInt64? {
        var off = try ExplainFixtures.word(path, at: 100, width: 4)
        while off < 4096 {
            let t = try ExplainFixtures.word(path, at: off, width: 4), len = try ExplainFixtures.word(path, at: off + 4, width: 4)
            if t == 0 { return nil }
            if t == 0x2385_2875 { return off + 8 }
            off += 8 + (len + 7) / 8 * 8
        }
        return nil
    }
}

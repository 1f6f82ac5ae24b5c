import Testing
import Foundation
import BlockCore
import TestSupport

/// Findings of the vmdk fuzz target (docs/FUZZING.md), each with qemu-img as the oracle.
@Suite struct VmdkFuzzRegressionTests {
    /// A grain table entry past the end of the file: `blockscope check` gives qemu-img check's
    /// verdict (exit 1, the check fails at that grain) and names the grain; reads of it fail
    /// with the same words (qemu-img reads zeroes there: ADR 0019).
    @Test func grainPastTheEndFailsCheckAsQemu() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz0"); defer { TestSupport.removeTempDir(dir) }
        let raw = dir + "/s.raw", img = dir + "/bad.vmdk"
        try TestSupport.writeFile(raw, TestSupport.pseudoRandomBytes(count: 1 << 20, seed: 4))
        try TestSupport.qemuImg(["convert", "-O", "vmdk", raw, img])
        var b = Array(try TestSupport.readFile(img))
        let gd = Int(try ByteReader(b, what: "test").le64(56)) * 512
        let gt = Int(try ByteReader(b, what: "test").le32(gd)) * 512
        ByteField.putLE(&b, gt + 12, 0x00ff_ffff, width: 4)
        try TestSupport.writeFile(img, b)
        let q = try TestSupport.qemuImg(["check", img])
        let ours = try TestSupport.blockscope(["check", img])
        #expect(q.status == 1 && ours.status == q.status, "qemu-img \(q.status), blockscope \(ours.status)")
        #expect(ours.stdoutText.contains("grain 3") && ours.stdoutText.contains("beyond the end of the file"), "\(ours.stdoutText)")
        let cat = try TestSupport.blockscope(["cat", img])
        #expect(cat.status != 0 && cat.stderr.contains("grain 3"), "\(cat.stderr)")
    }

    /// A grain directory offset near 2^64 sectors is refused at open with its value (it
    /// overflowed when turned into bytes).
    @Test func directoryOffsetOverflowIsRefused() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz3"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/g.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", img, "1M"])
        var b = Array(try TestSupport.readFile(img))
        ByteField.putLE(&b, 56, 0xffff_ffff_ffff_fff0, width: 8)
        try TestSupport.writeFile(img, b)
        let r = try TestSupport.blockscope(["info", img])
        #expect(r.status != 0 && r.stderr.contains("grain directory at sector 18446744073709551600"), "\(r.stderr)")
    }

    /// A grain table entry that points a grain at a grain table: qemu-img check finds nothing
    /// (the grain is inside the file), but a write there would rewrite the table, so blockscope
    /// refuses it naming the table, and the file is unchanged. Found by vmdk ("check after
    /// writes: grain table entry ... lies beyond the end of the file").
    @Test func grainOverAGrainTableIsNeverWritten() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz4"); defer { TestSupport.removeTempDir(dir) }
        let raw = dir + "/s.raw", img = dir + "/o.vmdk"
        try TestSupport.writeFile(raw, TestSupport.pseudoRandomBytes(count: 1 << 20, seed: 5))
        try TestSupport.qemuImg(["convert", "-O", "vmdk", raw, img])
        var b = Array(try TestSupport.readFile(img))
        let gd = Int(try ByteReader(b, what: "test").le64(56)) * 512
        let gtSector = try ByteReader(b, what: "test").le32(gd)
        ByteField.putLE(&b, Int(gtSector) * 512, UInt64(gtSector), width: 4)
        try TestSupport.writeFile(img, b)
        #expect(try TestSupport.qemuImg(["check", img]).status == 0)
        let disk = try openDisk(img, options: OpenOptions(writable: true))
        do {
            try [UInt8](repeating: 1, count: 512).withUnsafeBytes { try disk.write($0, at: 0) }
            Issue.record("wrote over the grain table")
        } catch let e as BlockError { #expect(e.description.contains("overlaps grain table 0"), "\(e)") }
        try disk.close()
        #expect(Array(try TestSupport.readFile(img)) == b)
    }

    /// A sparse extent whose file ends in a partial sector: a new grain starts after that
    /// sector (qemu counts it too), so the grain's unwritten bytes read as zeroes, not as the
    /// old tail. Found by vmdk: "guest byte 8704 reads 20, expected 4".
    @Test func grainAllocatedAfterAPartialLastSectorReadsZeroes() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz1"); defer { TestSupport.removeTempDir(dir) }
        let ours = dir + "/a.vmdk", theirs = dir + "/b.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", ours, "1M"])
        var bytes = Array(try TestSupport.readFile(ours))
        bytes += [UInt8](repeating: 0x55, count: 303)
        try TestSupport.writeFile(ours, bytes)
        try TestSupport.writeFile(theirs, bytes)
        let disk = try openDisk(ours, options: OpenOptions(writable: true))
        let data = [UInt8](repeating: 0x04, count: 512)
        try data.withUnsafeBytes { try disk.write($0, at: 8192) }
        try disk.close()
        try TestSupport.qemuIo(theirs, format: "vmdk", ["write -P 0x04 8192 512"])
        let a = try TestSupport.qemuRaw(ours), b = try TestSupport.qemuRaw(theirs)
        #expect(a == b, "qemu-img reads blockscope's write differently from its own")
        #expect(a[0..<8192].allSatisfy { $0 == 0 } && a[8192..<8704].allSatisfy { $0 == 4 } && a[8704..<65536].allSatisfy { $0 == 0 })
        #expect(try TestSupport.qemuImg(["check", ours]).status == 0)
    }

    /// Two flat extents sharing bytes of one file (or an extent inside the descriptor file)
    /// alias guest ranges: a writable open is refused with both lines named; read-only the
    /// disk reads as qemu-img reads it. Found by vmdk (Fuzz/regressions/vmdk/).
    @Test func extentsSharingBytesAreNeverWritten() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz2"); defer { TestSupport.removeTempDir(dir) }
        try TestSupport.writeFile(dir + "/base.raw", TestSupport.pseudoRandomBytes(count: 1 << 20, seed: 9))
        let img = dir + "/d.vmdk"
        let text = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n# Extent description\nRW 1024 FLAT \"base.raw\" 1024\nRW 1024 FLAT \"base.raw\" 1536\n"
        try TestSupport.writeFile(img, Array(text.utf8))
        do {
            _ = try openDisk(img, options: OpenOptions(writable: true))
            Issue.record("opened for writing")
        } catch let e {
            #expect(e.description.contains("descriptor line 7") && e.description.contains("descriptor line 8") && e.description.contains("cannot be written"), "\(e)")
        }
        let out = try TestSupport.blockscope(["cat", img])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout == (try TestSupport.qemuRaw(img)))
    }

    /// A sparse header whose embedded descriptor size (84 sectors) runs over both grain
    /// directories and their tables: qemu-img check finds nothing and qemu writes the image
    /// (it rewrites only the descriptor text when the CID changes). blockscope padded the new
    /// text with zeroes to the whole declared size, zeroing the directories, so everything
    /// written read back as zeroes after a reopen. Found by vmdk ("after reopen: guest byte
    /// 4096 reads 0, expected 5"; Fuzz/regressions/vmdk/crash-4b806d84...).
    @Test func descriptorRewriteNeverZeroesTheGrainDirectories() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz5"); defer { TestSupport.removeTempDir(dir) }
        let ours = dir + "/a.vmdk", theirs = dir + "/b.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", ours, "1M"])
        var b = Array(try TestSupport.readFile(ours))
        let r = ByteReader(b, what: "test")
        let descriptorSector = try r.le64(28), rgd = try r.le64(48), gd = try r.le64(56), overhead = try r.le64(64)
        #expect(descriptorSector == 1 && rgd > 1 && gd > rgd && overhead > gd + 1, "qemu-img's layout changed: \(descriptorSector) \(rgd) \(gd) \(overhead)")
        ByteField.putLE(&b, 36, overhead - 1 - descriptorSector, width: 8)
        try TestSupport.writeFile(ours, b)
        try TestSupport.writeFile(theirs, b)
        #expect(try TestSupport.qemuImg(["check", ours]).status == 0)
        let disk = try openDisk(ours, options: OpenOptions(writable: true))
        try [UInt8](repeating: 5, count: 32768).withUnsafeBytes { try disk.write($0, at: 4096) }
        try disk.close()
        try TestSupport.qemuIo(theirs, format: "vmdk", ["write -P 5 4096 32k"])
        let check = try TestSupport.qemuImg(["check", ours])
        #expect(check.status == 0, "\(check.stdoutText)")
        let a = try TestSupport.qemuRaw(ours), q = try TestSupport.qemuRaw(theirs)
        #expect(a == q, "qemu-img reads blockscope's write differently from its own")
        #expect(a[0..<4096].allSatisfy { $0 == 0 } && a[4096..<36864].allSatisfy { $0 == 5 } && a[36864...].allSatisfy { $0 == 0 })
    }

    /// A sparse file shorter than its header's overhead (qemu: "File truncated, expecting at
    /// least 65536 bytes") is refused at open, read-only and writable. blockscope opened it: a
    /// grain entry inside the short file ran past its end, the first new grain went right
    /// after the last byte, inside that grain's span, and zeroing the old grain overwrote the
    /// new one. Found by vmdk in `make fuzz` ("after reopen: guest byte 0 reads 0, expected
    /// 161"; Fuzz/regressions/vmdk/crash-fe90750b...).
    @Test func sparseFileShorterThanItsOverheadIsRefusedAsByQemu() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz6"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/t.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", img, "1M"])
        let b = Array(try TestSupport.readFile(img))
        let overhead = try ByteReader(b, what: "test").le64(64)
        #expect(overhead == 128 && b.count >= 65536, "qemu-img's layout changed: overhead \(overhead), \(b.count) bytes")
        try TestSupport.writeFile(img, Array(b[0..<18588]))
        let q = try TestSupport.run("qemu-img", ["info", img])
        #expect(q.status != 0 && q.stderr.contains("File truncated, expecting at least 65536 bytes"), "\(q.stderr)")
        let ours = try TestSupport.blockscope(["info", img])
        #expect(ours.status != 0 && ours.stderr.contains("file truncated") && ours.stderr.contains("at least 65536 bytes, and it has 18588"), "\(ours.stderr)")
        do {
            _ = try openDisk(img, options: OpenOptions(writable: true))
            Issue.record("opened for writing")
        } catch let e {
            #expect(e.description.contains("file truncated"), "\(e)")
        }
        #expect(Array(try TestSupport.readFile(img)) == Array(b[0..<18588]))
    }

    /// An embedded descriptor shorter than the text blockscope writes back (here "CID=1", no
    /// comments), with bytes that are not text after its NUL: the CID rewrite of the first
    /// write ended the longer text without a NUL, so the old bytes after it became more lines
    /// and the image no longer opened. qemu's own write of the same image keeps it openable;
    /// both must read the same after. Found by vmdk in CI ("the image no longer opens after
    /// writes: ... descriptor line 16: expected key=value ..."; Fuzz/regressions/vmdk/).
    @Test func longerDescriptorTextEndsWithItsOwnNul() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz7"); defer { TestSupport.removeTempDir(dir) }
        let ours = dir + "/a.vmdk", theirs = dir + "/b.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", ours, "1M"])
        var b = Array(try TestSupport.readFile(ours))
        let r = ByteReader(b, what: "test")
        let at = Int(try r.le64(28)) * 512, size = Int(try r.le64(36)) * 512
        #expect(at == 512 && size == 10240, "qemu-img's layout changed: descriptor at \(at), \(size) bytes")
        let short = Array("version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\nRW 2048 SPARSE \"a.vmdk\"\n".utf8)
        let tail = Array((String(repeating: "no descriptor line ", count: 30) + "\n").utf8)
        var region = short + [0] + tail
        region += [UInt8](repeating: 0, count: size - region.count)
        b.replaceSubrange(at..<(at + size), with: region)
        try TestSupport.writeFile(ours, b)
        try TestSupport.writeFile(theirs, b)
        #expect(try TestSupport.qemuImg(["check", ours]).status == 0)
        let disk = try openDisk(ours, options: OpenOptions(writable: true))
        try [UInt8](repeating: 7, count: 4096).withUnsafeBytes { try disk.write($0, at: 65536) }
        try disk.close()
        try TestSupport.qemuIo(theirs, format: "vmdk", ["write -P 7 64k 4k"])
        let check = try TestSupport.qemuImg(["check", ours])
        #expect(check.status == 0, "\(check.stdoutText) \(check.stderr)")
        let a = try TestSupport.qemuRaw(ours), q = try TestSupport.qemuRaw(theirs)
        #expect(a == q, "qemu-img reads blockscope's write differently from its own")
        #expect(a[65536..<69632].allSatisfy { $0 == 7 } && a[0..<65536].allSatisfy { $0 == 0 })
        let info = try TestSupport.blockscope(["info", ours])
        #expect(info.status == 0, "\(info.stderr)")
    }

    /// A VMFS extent line with an offset: qemu refuses it ("Invalid extent line"), as only FLAT
    /// takes one. blockscope read it with the offset but wrote the line back without it (the
    /// CID rewrite), so the reopened disk read other bytes. Found by vmdk ("after reopen: guest
    /// byte 8192 reads 16, expected 4"; Fuzz/regressions/vmdk/).
    @Test func vmfsExtentWithAnOffsetIsRefusedAsByQemu() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz8"); defer { TestSupport.removeTempDir(dir) }
        try TestSupport.writeFile(dir + "/base.raw", TestSupport.pseudoRandomBytes(count: 1 << 20, seed: 11))
        let img = dir + "/v.vmdk"
        try TestSupport.writeFile(img, Array("# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"vmfs\"\n# Extent description\nRW 1024 VMFS \"base.raw\" 1024\n".utf8))
        let q = try TestSupport.run("qemu-img", ["info", img])
        #expect(q.status != 0 && q.stderr.contains("Invalid extent line"), "\(q.stderr)")
        let ours = try TestSupport.blockscope(["info", img])
        #expect(ours.status != 0 && ours.stderr.contains("descriptor line 7") && ours.stderr.contains("VMFS extent takes no offset"), "\(ours.stderr)")
        // Without the offset both read the file from its start. (No blank line before the
        // extent: qemu 7.2 then reads the extent line twice, as sscanf skips the newline.)
        try TestSupport.writeFile(img, Array("# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"vmfs\"\n# Extent description\nRW 1024 VMFS \"base.raw\"\n".utf8))
        let cat = try TestSupport.blockscope(["cat", img])
        #expect(cat.status == 0, "\(cat.stderr)")
        #expect(cat.stdout == (try TestSupport.qemuRaw(img)))
    }

    /// A redundant grain directory entry that puts redundant grain table 0 on the embedded
    /// descriptor (sector 1): qemu-img check finds nothing. An allocating write committed the
    /// table entries first and only then refused the CID rewrite, so the entry was already
    /// written over the descriptor and the image no longer opened; a second write then skipped
    /// the check. Now every write is refused with the file unchanged. (qemu-io's own write
    /// there fails with EINVAL and leaves an image qemu-img can no longer open.) Found by vmdk
    /// ("the image no longer opens after writes: ... descriptor has no version= line").
    @Test func tableOverTheDescriptorRefusesEveryWriteWithTheFileUnchanged() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz9"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/r.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", img, "1M"])
        var b = Array(try TestSupport.readFile(img))
        let r = ByteReader(b, what: "test")
        let descriptorSector = try r.le64(28), rgd = Int(try r.le64(48))
        #expect(descriptorSector == 1 && rgd > 1, "qemu-img's layout changed: descriptor \(descriptorSector), redundant directory \(rgd)")
        ByteField.putLE(&b, rgd * 512, 1, width: 4)
        try TestSupport.writeFile(img, b)
        #expect(try TestSupport.qemuImg(["check", img]).status == 0)
        let disk = try openDisk(img, options: OpenOptions(writable: true))
        for attempt in 1...2 {
            do {
                try [UInt8](repeating: 7, count: 4096).withUnsafeBytes { try disk.write($0, at: 0) }
                Issue.record("write \(attempt) went through")
            } catch let e as BlockError {
                #expect(e.description.contains("overlaps redundant grain table 0"), "write \(attempt): \(e)")
            }
        }
        try disk.close()
        #expect(Array(try TestSupport.readFile(img)) == b, "the file changed")
        #expect(try TestSupport.qemuImg(["check", img]).status == 0)
    }

    /// A redundant grain directory entry that puts redundant grain table 0 on the redundant
    /// directory itself: qemu-img check finds nothing, but a new grain's redundant entry would
    /// be written into the directory (qemu-io's write does so). Writes that would set a table
    /// entry are refused naming both structures, with the file unchanged; reads still work.
    /// Found by vmdk in the campaign: grain table 0 inside the grain directory turned grain 0's
    /// new entry into directory entry 128 ("grain table entry of grain 65536 (0xa1a1a1a1)").
    @Test func tablesSharingBytesWithADirectoryAreNeverWritten() throws {
        let dir = try TestSupport.makeTempDir("vmdk-fz10"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/c.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", img, "64M"])
        var b = Array(try TestSupport.readFile(img))
        let r = ByteReader(b, what: "test")
        let rgd = try r.le64(48), table0 = try r.le32(Int(rgd) * 512)
        #expect(rgd > 1 && table0 > rgd, "qemu-img's layout changed: redundant directory at \(rgd), its table 0 at \(table0)")
        ByteField.putLE(&b, Int(rgd) * 512, rgd, width: 4)
        try TestSupport.writeFile(img, b)
        #expect(try TestSupport.qemuImg(["check", img]).status == 0)
        let disk = try openDisk(img, options: OpenOptions(writable: true))
        for attempt in 1...2 {
            do {
                try [UInt8](repeating: 7, count: 4096).withUnsafeBytes { try disk.write($0, at: 0) }
                Issue.record("write \(attempt) went through")
            } catch let e as BlockError {
                #expect(e.description.contains("redundant grain table 0") && e.description.contains("overlaps the redundant grain directory"), "write \(attempt): \(e)")
            }
        }
        try disk.close()
        #expect(Array(try TestSupport.readFile(img)) == b, "the file changed")
        let cat = try TestSupport.blockscope(["cat", img])
        let q = try TestSupport.qemuRaw(img)
        #expect(cat.status == 0 && cat.stdout == q, "\(cat.stderr)")
    }
}

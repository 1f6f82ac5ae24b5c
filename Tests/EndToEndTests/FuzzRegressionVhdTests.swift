import Foundation
import Testing
import BlockCore
import TestSupport

/// A VHD regression found by the `vhd` fuzz target (docs/FUZZING.md): a BAT placed over the
/// dynamic header. Updating a BAT entry then rewrote the header and broke its checksum, so
/// the image no longer opened after a write.
@Suite struct FuzzRegressionVhdTests {
    /// The VHD dynamic header's checksum: the ones' complement of the byte sum with the
    /// checksum field (bytes 36..<40) taken as zero.
    static func dynamicChecksum(_ h: [UInt8]) -> UInt32 {
        var sum: UInt32 = 0
        for (i, b) in h.enumerated() where !(36..<40).contains(i) { sum &+= UInt32(b) }
        return ~sum
    }

    @Test func vhdBatOverTheDynamicHeaderIsACorruptionAndIsNeverWritten() throws {
        let dir = try TestSupport.makeTempDir("fuzz-vhd-bat"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/bat.vhd"
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", "-o", "subformat=dynamic", img, "4M"])
        // The dynamic header sits where the footer copy's data offset says (0x200 for qemu-img).
        var file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: img)))
        let hdr = Int(file[16..<24].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        #expect(hdr == 0x200)
        let entries = Int(file[hdr + 28..<hdr + 32].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        // Move the BAT into the header's trailing reserved bytes (0x580), every entry unallocated.
        let bat = hdr + 0x380
        for (i, b) in [UInt8](repeating: 0, count: 4).enumerated() { file[hdr + 16 + i] = b }
        for i in 0..<4 { file[hdr + 20 + i] = UInt8(truncatingIfNeeded: bat >> (8 * (3 - i))) }
        for i in 0..<(4 * entries) { file[bat + i] = 0xff }
        let sum = Self.dynamicChecksum(Array(file[hdr..<hdr + 1024]))
        for i in 0..<4 { file[hdr + 36 + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt32(3 - i))) }
        try Data(file).write(to: URL(fileURLWithPath: img))
        // QEMU opens it (its checksum and BAT bounds hold) and reads zeroes.
        #expect(try TestSupport.run("qemu-img", ["info", "-f", "vpc", img]).status == 0)

        let check = try TestSupport.blockscope(["check", img])
        #expect(check.status != 0)
        #expect(check.stdoutText.contains("BAT at 0x580..0x\(String(bat + 4 * entries, radix: 16)) overlaps the dynamic header at 0x200..0x600"), "\(check.stdoutText)")

        // A write is refused at open with the reason, and the file stays byte for byte.
        let script = dir + "/w.script"
        try "write 0 4k 0xab\n".write(toFile: script, atomically: true, encoding: .utf8)
        let before = try Data(contentsOf: URL(fileURLWithPath: img))
        let run = try TestSupport.blockscope(["run", img, script, "--write"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("overlaps the dynamic header") && run.stderr.contains("cannot be written") && run.stderr.contains(img), "\(run.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: img)) == before)

        // Read-only it still opens, and reads what qemu-img reads.
        let raw = dir + "/q.raw"
        try TestSupport.qemuImg(["convert", "-f", "vpc", "-O", "raw", img, raw])
        let cat = try TestSupport.blockscope(["cat", img])
        #expect(cat.status == 0)
        #expect(cat.stdout == (try Data(contentsOf: URL(fileURLWithPath: raw))))
    }

    /// The `vhd` fuzz target's second finding (2026-12-05): a fixed disk whose only footer is
    /// the copy at offset 0 opened (with a warning), and its first write to guest sector 0
    /// overwrote that footer, so the image no longer opened. qemu-img refuses the file; so does
    /// blockscope now, naming both places it looked.
    @Test func fixedVhdWhoseOnlyFooterIsTheCopyAtOffsetZeroIsRefused() throws {
        let dir = try TestSupport.makeTempDir("fuzz-vhd-fixed"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/fixed.vhd"
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", "-o", "subformat=fixed", img, "1M"])
        var file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: img)))
        let footer = Array(file[(file.count - 512)...])
        #expect(footer.starts(with: Array("conectix".utf8)))
        // The footer moves to offset 0 (over the data's first sector); the end holds zeroes.
        file.replaceSubrange(0..<512, with: footer)
        file.replaceSubrange((file.count - 512)..., with: [UInt8](repeating: 0, count: 512))
        try Data(file).write(to: URL(fileURLWithPath: img))
        #expect(try TestSupport.run("qemu-img", ["info", "-f", "vpc", img]).status != 0, "qemu-img opens it")

        let info = try TestSupport.blockscope(["info", img])
        #expect(info.status != 0)
        #expect(info.stderr.contains("no footer at the end of the file (0x\(String(file.count - 512, radix: 16)))") && info.stderr.contains("describes a fixed disk"), "\(info.stderr)")
        let script = dir + "/w.script"
        try "write 0 4k 0xab\n".write(toFile: script, atomically: true, encoding: .utf8)
        let before = try Data(contentsOf: URL(fileURLWithPath: img))
        let run = try TestSupport.blockscope(["run", img, script, "--write"])
        #expect(run.status != 0, "\(run.stdoutText)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: img)) == before)
    }
}

import Testing
import Foundation
import BlockCore
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The `vhdx-write` finding of campaign 2 (docs/FUZZING.md): after a write whose BAT update
/// failed, a later write of the same block reported success and read back as zeroes after a
/// reopen. The input is a qemu-img VHDX whose current header has LogOffset
/// 0xfffe000000100000 (Fuzz/regressions/vhdx-write/); qemu-img and QEMU's writes are the oracles.
@Suite struct FuzzRegressionVhdxWriteTests {
    @Test func vhdxWriteThroughALogPastTheEndOfTheFileFailsNamingTheFieldAndChangesNothing() throws {
        let dir = try TestSupport.makeTempDir("fuzz-vhdx-log"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/log.vhdx", viaQemu = dir + "/qemu.vhdx", script = dir + "/w.script"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M,block_state_zero=off", img, "4M"])
        try setCurrentVhdxHeaderField(img, field: 72, 0xfffe_0000_0010_0000)   // LogOffset
        let slot = try currentVhdxHeaderOffset(img)
        let before = try TestSupport.readFile(img)
        try FileManager.default.copyItem(atPath: img, toPath: viaQemu)
        // The log is clean, so nobody reads it: qemu-img accepts the file ...
        #expect(try TestSupport.qemuImg(["check", "-f", "vhdx", img]).status == 0, "qemu-img check accepts the file")
        // ... and QEMU's first write fails (it has no error to name the field: EIO).
        let q = try TestSupport.run("qemu-io", ["-f", "vhdx", "-c", "write -P 1 0x200 0x200", viaQemu])
        #expect((q.stdoutText + q.stderr).contains("write failed"), "QEMU cannot write either: \(q.stdoutText) \(q.stderr)")

        // The fuzzer's program (minimised input, scripts/fuzz/program-to-script.py).
        try "write 0x200 0x200 0x1\nwrite 0x3064 0x600 0x2\nzero 0x0 0x200\ndiscard 0x0 0x1000\nwrite 0x1000 0x20000 0x5\nfsync\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", img, script])
        #expect(r.status != 0)
        #expect(r.stderr.contains("\(img): \(script) line 1: vhdx: the current header (at \(hex(slot))) has LogOffset 0xfffe000000100000, LogLength 0x100000: the log lies beyond the end of the file (size 0x800000)"), "\(r.stderr)")
        #expect(r.stderr.contains("host offset \(hex(slot + 72))"), "the field's place in the file: \(r.stderr)")
        #expect(!r.stderr.contains("largest file offset"), "refused before any transfer: \(r.stderr)")
        // Every later write fails the same way, and none changed a byte of the file.
        for line in ["write 0x1000 0x20000 0x5", "zero 0 1M", "discard 1M 1M"] {
            try (line + "\n").write(toFile: script, atomically: true, encoding: .utf8)
            let again = try TestSupport.blockscope(["run", "--write", img, script])
            #expect(again.status != 0 && again.stderr.contains("LogOffset 0xfffe000000100000"), "\(line): \(again.stderr)")
        }
        #expect(try TestSupport.readFile(img) == before, "the file is unchanged")
        #expect(try TestSupport.qemuImg(["check", "-f", "vhdx", img]).status == 0, "and qemu-img still opens and checks it")
    }

    @Test func vhdxCheckOfALogRegionPastTwoToThe64EndsWithAMessageNotATrap() throws {
        // Found by vhdx (Fuzz/regressions/vhdx/): LogOffset 0xffffffffffff0000 with a clean
        // log opened, and check trapped adding LogLength to it. QEMU refuses to open the file
        // (the offset is not 1 MiB aligned); blockscope opens it read-only, and check says so.
        let dir = try TestSupport.makeTempDir("fuzz-vhdx-logend"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/e.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", img, "4M"])
        try setCurrentVhdxHeaderField(img, field: 72, 0xffff_ffff_ffff_0000)   // LogOffset
        #expect(try TestSupport.run("qemu-img", ["check", "-f", "vhdx", img]).status != 0, "QEMU does not open it")
        let r = try TestSupport.blockscope(["check", img])
        #expect(r.status < 128, "no trap: status \(r.status), \(r.stderr)")
        #expect(r.stdoutText.contains("the log region (header LogOffset 0xffffffffffff0000, LogLength 0x100000) lies beyond the end of the file (size 0x800000)"), "\(r.stdoutText)")
    }

    @Test func vhdxBatUpdateThatFailsIsTakenBackSoALaterWriteOfTheBlockIsKept() throws {
        let dir = try TestSupport.makeTempDir("fuzz-vhdx-undo"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/u.vhdx", raw = dir + "/mirror.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", img, "4M"])
        try TestSupport.qemuImg(["convert", "-f", "vhdx", "-O", "raw", img, raw])
        let disk = try openDisk(img, options: OpenOptions(writable: true, format: .vhdx, engine: .sync))
        let vd = try #require(disk as? VhdxDisk)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buf.deallocate() }
        func write(_ pattern: UInt8, at offset: UInt64) throws(BlockError) {
            buf.initializeMemory(as: UInt8.self, repeating: pattern)
            try disk.write(UnsafeRawBufferPointer(buf), at: offset)
        }
        // Start the write session (block 3), and grow the file so that the next allocation
        // needs no truncate: below, only the BAT update itself can fail.
        try write(0x5a, at: 3 << 20)
        let grow = try SystemFile(path: img, writable: true)
        try grow.truncate(to: try grow.size() + (4 << 20))
        grow.close()
        // The image's descriptor turns read-only for one write: its log entry cannot be written.
        let saved = dup(vd.file.fd), readOnly = open(img, O_RDONLY)
        #expect(saved >= 0 && readOnly >= 0)
        dup2(readOnly, vd.file.fd)
        #expect(throws: BlockError.self, "the BAT update fails") { try write(0x11, at: 0) }
        dup2(saved, vd.file.fd)
        close(saved); close(readOnly)
        // Later writes of the same block must be kept (they reported success before the fix
        // and read back as zeroes after the reopen).
        try write(0x22, at: 0)
        try write(0x33, at: 8192)
        try disk.close()

        #expect(try TestSupport.qemuImg(["check", "-f", "vhdx", img]).status == 0, "qemu-img check")
        try TestSupport.qemuIo(raw, format: "raw", ["write -P 0x5a 3M 4k", "write -P 0x22 0 4k", "write -P 0x33 8k 4k"])
        let cmp = try TestSupport.qemuImg(["compare", "-f", "vhdx", "-F", "raw", img, raw])
        #expect(cmp.status == 0, "guest content equals qemu-io's writes to a raw copy: \(cmp.stdoutText)")
    }
}

import Testing
import Foundation
import BlockCore
@testable import BlockIO
@testable import Vhdx
import TestSupport

/// A VHDX whose BAT update reached the log but not its final location (a crash between the
/// two) replays to the same content in blockscope (in memory read-only, on disk with
/// `--write`) and in `qemu-img check -r all`.
@Suite struct VhdxLogReplayTests {
    /// Writes through blockscope without closing (the log GUID stays set), then wipes the BAT
    /// pages in place, as if the log entries were written and the process died before applying them.
    func makeDirtyImage(_ dir: String) throws -> (image: String, expected: Data) {
        let img = dir + "/dirty.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", img, "32M"])
        var expected = [UInt8](repeating: 0, count: 32 << 20)
        let d = try openDisk(img, options: OpenOptions(writable: true))
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 300 << 10, alignment: 4096)
        defer { buf.deallocate() }
        let offsets: [UInt64] = [0, 3 << 20, (7 << 20) + 4096, 20 << 20, (31 << 20) + (600 << 10)]
        for (i, off) in offsets.enumerated() {
            buf.initializeMemory(as: UInt8.self, repeating: UInt8(0x30 + i))
            try d.write(UnsafeRawBufferPointer(buf), at: off)
            for j in 0..<buf.count where Int(off) + j < expected.count { expected[Int(off) + j] = UInt8(0x30 + i) }
        }
        try d.flush()
        let vd = try #require(d as? VhdxDisk)
        #expect(vd.metadata.logEntriesWritten > 0)
        let batOffset = vd.metadata.batRegion.fileOffset
        vd.file.close()   // "crash": the descriptor (and its lock) go, the header keeps its log GUID
        let f = try SystemFile(path: img, writable: true)
        try f.writeBytes([UInt8](repeating: 0, count: 4096), at: batOffset)
        f.close()
        return (img, Data(expected))
    }

    @Test func dirtyLogReplaysTheSameInBlockscopeAndQemu() throws {
        let dir = try TestSupport.makeTempDir("vhdx-log"); defer { TestSupport.removeTempDir(dir) }
        let (img, expected) = try makeDirtyImage(dir)
        let copy = dir + "/copy.vhdx"
        try FileManager.default.copyItem(atPath: img, toPath: copy)
        let before = try TestSupport.readFile(img)

        // Read-only: replayed in memory, file untouched.
        let cat = try TestSupport.blockscope(["cat", img])
        #expect(cat.status == 0, "\(cat.stderr)")
        #expect(cat.stderr.contains("replayed in memory"))
        #expect(cat.stdout == expected)
        #expect(try TestSupport.readFile(img) == before, "a read-only open must not modify the file")

        // qemu-img check -r all replays the log our writer produced.
        let qc = try TestSupport.qemuImg(["check", "-r", "all", "-f", "vhdx", copy])
        #expect(qc.status == 0, "qemu-img check -r all: \(qc.stdoutText) \(qc.stderr)")
        #expect(try TestSupport.qemuRaw(copy, format: "vhdx") == expected)

        // A writable open replays on disk; qemu then sees a clean image with the same content.
        let script = dir + "/noop.txt"
        try "fsync\n".write(toFile: script, atomically: true, encoding: .utf8)
        let run = try TestSupport.blockscope(["run", "--write", img, script])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try TestSupport.qemuImg(["check", "-f", "vhdx", img]).status == 0)
        #expect(try TestSupport.qemuRaw(img, format: "vhdx") == expected)
        let cmp = try TestSupport.qemuImg(["compare", "-f", "vhdx", "-F", "vhdx", img, copy])
        #expect(cmp.status == 0)
    }

    @Test func qemuWrittenDirtyLogIsReplayedInMemory() throws {
        // QEMU leaves its own log entries behind after a write; with the header's log GUID
        // restored, the image is dirty again and blockscope must replay QEMU's entries.
        let dir = try TestSupport.makeTempDir("vhdx-log"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/q.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", img, "16M"])
        try TestSupport.qemuIo(img, format: "vhdx", ["write -P 0x66 2M 1M"])
        let expected = try TestSupport.qemuRaw(img, format: "vhdx")
        let f = try SystemFile(path: img, writable: true)
        let log = try f.readBytes(at: 1 << 20, count: 4096)
        #expect(ByteField.hasTag(log, 0, "loge"))
        let guid = VhdxGuid(log, at: 32)
        let (h, _) = try VhdxHeader.readCurrent(f)
        var dirty = h
        dirty.logGuid = guid
        dirty.sequenceNumber += 1
        try f.writeBytes(dirty.encode(), at: VhdxLayout.headerOffsets[0])
        try f.writeBytes([UInt8](repeating: 0, count: 4096), at: 2 << 20)  // qemu's BAT is at 2 MiB
        f.close()
        let cat = try TestSupport.blockscope(["cat", img])
        #expect(cat.status == 0, "\(cat.stderr)")
        #expect(cat.stdout == expected)
    }
}

import Testing
import Foundation
import BlockCore
import TestSupport

/// Differencing VHDX and VHD made by `blockscope create -b`: reads fall through to the parent
/// where the child has nothing, writes land in the child only, and a hand-set
/// PARTIALLY_PRESENT block with a sector bitmap mixes child and parent sectors.
@Suite struct VhdxDifferencingTests {
    @discardableResult
    func bs(_ args: [String]) throws -> ProcessResult {
        let r = try TestSupport.blockscope(args)
        if r.status != 0 { throw TestFailure("blockscope \(args): \(r.stderr)") }
        return r
    }

    /// The guest size qemu-img reports (a VHD's size is rounded to its CHS geometry).
    func qemuSize(_ image: String) throws -> Int {
        let info = try JSONValue.parse(try TestSupport.qemuImg(["info", "--output", "json", image]).stdoutText)
        return Int(try #require(info["virtual-size"]?.intValue))
    }

    /// `size` bytes of `fill`, with `runs` (offset, length, byte) written over them in order.
    func bytes(_ size: Int, _ fill: UInt8, _ runs: [(Int, Int, UInt8)]) -> [UInt8] {
        var b = [UInt8](repeating: fill, count: size)
        for (off, len, v) in runs { for i in off..<min(size, off + len) { b[i] = v } }
        return b
    }

    @Test(arguments: ["vhdx", "vpc"])
    func childReadsParentWhereEmptyAndWritesOnlyItself(_ format: String) throws {
        let dir = try TestSupport.makeTempDir("diff"); defer { TestSupport.removeTempDir(dir) }
        let parent = dir + "/base.\(format)", child = dir + "/sub/child.\(format)"
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        try bs(["create", "-f", format, parent, "12M"])
        try "write 0 12M 0x11\nwrite 5M 1M 0x12\n".write(toFile: dir + "/p.txt", atomically: true, encoding: .utf8)
        try bs(["run", "--write", parent, dir + "/p.txt"])
        // The parent's bytes by hand: 12 MiB of 0x11 with 0x12 at 5 MiB, zero after (a VHD
        // may be a little larger than asked); qemu-img reads the same.
        let parentSize = try qemuSize(parent)
        #expect(parentSize >= 12 << 20)
        let parentBefore = Data(bytes(parentSize, 0, [(0, 12 << 20, 0x11), (5 << 20, 1 << 20, 0x12)]))
        #expect(try TestSupport.qemuRaw(parent, format: format) == parentBefore, "qemu-img reads the parent as written")
        try bs(["create", "-f", format, "-b", parent, child])
        let info = try JSONValue.parse(try bs(["info", "--output", "json", child]).stdoutText)
        #expect(info["backing-filename"]?.stringValue?.hasSuffix("base.\(format)") == true)
        let fresh = try bs(["cat", child])
        #expect(fresh.stdout == parentBefore, "an empty child reads as its parent")
        #expect(!fresh.stderr.contains("parent_linkage"))

        try "write 1M 4k 0x22\nwrite 3000k 2M 0x33\nzero 8M 1M\nwrite 11M 512 0x44\n".write(toFile: dir + "/c.txt", atomically: true, encoding: .utf8)
        try bs(["run", "--write", child, dir + "/c.txt"])
        var expected = [UInt8](parentBefore)
        func apply(_ off: Int, _ len: Int, _ v: UInt8) { for i in off..<(off + len) where i < expected.count { expected[i] = v } }
        apply(1 << 20, 4096, 0x22); apply(3000 << 10, 2 << 20, 0x33); apply(8 << 20, 1 << 20, 0); apply(11 << 20, 512, 0x44)
        #expect(try bs(["cat", child]).stdout == Data(expected))
        #expect(try TestSupport.qemuRaw(parent, format: format) == parentBefore, "writes must not reach the parent (qemu-img reads it unchanged)")
        if format == "vhdx" {
            // Writing the parent changes its DataWriteGuid: the child warns that its linkage is stale.
            try "write 0 512 0x11\n".write(toFile: dir + "/p2.txt", atomically: true, encoding: .utf8)
            try bs(["run", "--write", parent, dir + "/p2.txt"])
            #expect(try bs(["cat", child]).stderr.contains("parent_linkage"))
        }

        // Moving both keeps the relative locator working.
        try FileManager.default.moveItem(atPath: dir, toPath: dir + "-moved")
        defer { TestSupport.removeTempDir(dir + "-moved") }
        #expect(try bs(["cat", dir + "-moved/sub/child.\(format)"]).stdout == Data(expected))
    }

    @Test(arguments: ["vhdx", "vpc"])
    func childLargerThanParentReadsZeroesPastTheParent(_ format: String) throws {
        let dir = try TestSupport.makeTempDir("diff-big"); defer { TestSupport.removeTempDir(dir) }
        let parent = dir + "/base.\(format)", child = dir + "/child.\(format)"
        try bs(["create", "-f", format, parent, "3M"])
        try "write 0 3M 0x5e\n".write(toFile: dir + "/p.txt", atomically: true, encoding: .utf8)
        try bs(["run", "--write", parent, dir + "/p.txt"])
        let parentSize = try qemuSize(parent)
        #expect(try TestSupport.qemuRaw(parent, format: format) == Data(bytes(parentSize, 0, [(0, 3 << 20, 0x5e)])))
        try bs(["create", "-f", format, "-b", parent, child, "12M"])
        try "write 1M 4k 0x6f\n".write(toFile: dir + "/c.txt", atomically: true, encoding: .utf8)
        try bs(["run", "--write", child, dir + "/c.txt"])
        let out = try bs(["cat", child]).stdout
        // By hand: the parent's 0x5e for 3 MiB (zero to the parent's end), the child's 4 KiB
        // of 0x6f at 1 MiB, zero past the parent.
        // (qemu-img opens no differencing VHD/VHDX: the size is the one blockscope reads.)
        let childSize = out.count
        #expect(childSize >= 12 << 20)
        #expect(out == Data(bytes(childSize, 0, [(0, 3 << 20, 0x5e), (1 << 20, 4096, 0x6f)])))
        #expect(parentSize < childSize)
    }

    @Test func partiallyPresentBlockMixesChildAndParentSectors() throws {
        let dir = try TestSupport.makeTempDir("diff-pp"); defer { TestSupport.removeTempDir(dir) }
        let parent = dir + "/base.vhdx", child = dir + "/child.vhdx"
        try bs(["create", "-f", "vhdx", "-o", "block_size=1M", parent, "4M"])
        try "write 0 4M 0xaa\n".write(toFile: dir + "/p.txt", atomically: true, encoding: .utf8)
        try bs(["run", "--write", parent, dir + "/p.txt"])
        #expect(try TestSupport.qemuRaw(parent, format: "vhdx") == Data(bytes(4 << 20, 0xaa, [])), "qemu-img reads the parent as written")
        try bs(["create", "-f", "vhdx", "-o", "block_size=1M", "-b", parent, child])
        // Hand-build: payload block 1 PARTIALLY_PRESENT at 8 MiB holding 0xbb, sector bitmap
        // for chunk 0 at 9 MiB with sectors 0..7 of block 1 present.
        let f = try SystemFile(path: child, writable: true)
        let disk = try openDisk(child, options: OpenOptions(writable: false))
        let vd = try #require(disk as? VhdxDisk)
        let g = vd.metadata.geometry
        let batOffset = vd.metadata.batRegion.fileOffset
        try disk.close()
        try f.truncate(to: 10 << 20)
        try f.writeBytes([UInt8](repeating: 0xbb, count: 1 << 20), at: 8 << 20)
        var bitmap = [UInt8](repeating: 0, count: 1 << 20)
        bitmap[2048 / 8] = 0xff   // block 1 starts at sector 2048
        try f.writeBytes(bitmap, at: 9 << 20)
        var e = [UInt8](repeating: 0, count: 8)
        ByteField.putLE(&e, 0, VhdxBatEntry(state: .partiallyPresent, fileOffset: 8 << 20).raw, width: 8)
        try f.writeBytes(e, at: batOffset + UInt64(g.payloadIndex(1)) * 8)
        ByteField.putLE(&e, 0, VhdxBatEntry(state: .fullyPresent, fileOffset: 9 << 20).raw, width: 8)
        try f.writeBytes(e, at: batOffset + UInt64(g.bitmapIndex(0)) * 8)
        f.close()
        var expected = [UInt8](repeating: 0xaa, count: 4 << 20)
        for i in (1 << 20)..<((1 << 20) + 4096) { expected[i] = 0xbb }
        #expect(try bs(["cat", child]).stdout == Data(expected))
        #expect(try bs(["cat", "--engine", "sync", child]).stdout == Data(expected))
        // A write into the partial block materialises it; the parent's sectors stay visible.
        try "write 1500k 4k 0xcc\n".write(toFile: dir + "/c.txt", atomically: true, encoding: .utf8)
        try bs(["run", "--write", child, dir + "/c.txt"])
        for i in (1500 << 10)..<((1500 << 10) + 4096) { expected[i] = 0xcc }
        #expect(try bs(["cat", child]).stdout == Data(expected))
    }
}

import Testing
import Foundation
import BlockCore
@testable import BlockIO
@testable import Vhdx
import TestSupport

/// Payload block states read as the specification says (and as qemu-img reads them), and
/// 4 KiB logical sectors work end to end.
@Suite struct VhdxBlockStateTests {
    @Test(arguments: [UInt64(1), 2, 3, 5, 0])
    func nonPresentStatesReadAsZeroLikeQemu(_ state: UInt64) throws {
        let dir = try TestSupport.makeTempDir("states"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/u.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", img, "4M"])
        try TestSupport.qemuIo(img, format: "vhdx", ["write -P 0x77 1M 1M", "write -P 0x78 2M 4k"])
        let f = try SystemFile(path: img, writable: true)
        let raw = try ByteReader(try f.readBytes(at: (2 << 20) + 8, count: 8), what: "vhdx BAT entry").le64(0)
        var b = [UInt8](repeating: 0, count: 8)
        ByteField.putLE(&b, 0, (raw & ~7) | state, width: 8)   // keep FileOffsetMB, change the state
        try f.writeBytes(b, at: (2 << 20) + 8)
        f.close()
        let oracle = try TestSupport.qemuRaw(img, format: "vhdx")
        let cat = try TestSupport.blockscope(["cat", img])
        #expect(cat.status == 0, "\(cat.stderr)")
        #expect(cat.stdout == oracle)
        #expect(cat.stdout[(1 << 20)..<(2 << 20)].allSatisfy { $0 == 0 })
        #expect(cat.stdout[2 << 20] == 0x78)
        // Writing into the block allocates it again; the rest of the block reads as zeroes.
        try "write 1M 512 0x79\n".write(toFile: dir + "/w.txt", atomically: true, encoding: .utf8)
        #expect(try TestSupport.blockscope(["run", "--write", img, dir + "/w.txt"]).status == 0)
        let after = try TestSupport.qemuRaw(img, format: "vhdx")
        #expect(after[1 << 20] == 0x79 && after[(1 << 20) + 512] == 0)
        #expect(try TestSupport.qemuImg(["check", img]).status == 0)
    }

    @Test func fourKiBLogicalSectorsRoundTrip() throws {
        let dir = try TestSupport.makeTempDir("4k"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s4k.vhdx"
        var o = VhdxCreateOptions()
        o.logicalSectorSize = 4096
        o.blockSize = 1 << 20
        try VhdxFormat.create(path: img, size: 8 << 20, options: o)
        let d = try openDisk(img, options: OpenOptions(writable: true))
        #expect(d.topology.logicalBlockSize == 4096)
        let vd = try #require(d as? VhdxDisk)
        #expect(vd.metadata.geometry.chunkRatio == (1 << 23) * 4096 / (1 << 20))
        let buf = AlignedBuffer(count: 12288)
        buf.bytes.initializeMemory(as: UInt8.self, repeating: 0x4b)
        try d.write(UnsafeRawBufferPointer(buf.bytes), at: (1 << 20) - 4096)
        try d.close()
        let cat = try TestSupport.blockscope(["cat", img]).stdout
        #expect(cat[((1 << 20) - 4096)..<((1 << 20) + 8192)].allSatisfy { $0 == 0x4b })
        #expect(cat.count == 8 << 20)
        #expect(cat[0..<((1 << 20) - 4096)].allSatisfy { $0 == 0 })
        // qemu-img 7.2 refuses 4 KiB logical sectors ("Operation not supported"): no oracle here.
        let q = try TestSupport.run("qemu-img", ["info", img])
        #expect(q.status != 0)
    }
}

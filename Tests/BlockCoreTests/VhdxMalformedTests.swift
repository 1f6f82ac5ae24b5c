import Testing
import Foundation
@testable import BlockCore
import TestSupport

/// Malformed VHDX and VHD images: each must fail to open with a BlockError that names the
/// problem and where it is, never crash.
@Suite struct VhdxMalformedTests {
    /// A fresh 16 MiB dynamic VHDX with one allocated 1 MiB block (log 1 MiB, metadata 2 MiB, BAT 3 MiB).
    func image(_ dir: String, _ name: String = "m.vhdx") throws -> String {
        let p = dir + "/" + name
        var o = VhdxCreateOptions()
        o.blockSize = 1 << 20
        try VhdxFormat.create(path: p, size: 16 << 20, options: o)
        let d = try openDisk(p, options: OpenOptions(writable: true))
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buf.deallocate() }
        buf.initializeMemory(as: UInt8.self, repeating: 0xab)
        try d.write(UnsafeRawBufferPointer(buf), at: 0)
        try d.close()
        releaseLocks(of: d)
        return p
    }

    func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let f = try SystemFile(path: path, writable: true)
        try f.writeBytes(bytes, at: offset)
        f.close()
    }

    func openError(_ path: String, format: ImageFormat? = nil) -> BlockError? {
        do {
            let d = try openDisk(path, options: OpenOptions(writable: false, format: format))
            try? d.close()
            releaseLocks(of: d)
            return nil
        } catch let e { return e }
    }

    @Test func badChecksumInBothHeadersIsInvalidFormat() throws {
        let dir = try TestSupport.makeTempDir("vhdx-bad"); defer { TestSupport.removeTempDir(dir) }
        let p = try image(dir)
        try patch(p, at: 0x10000 + 200, [1])
        #expect(openError(p) == nil, "one good header is enough")
        try patch(p, at: 0x20000 + 200, [1])
        let e = try #require(openError(p))
        #expect(e.kind == .invalidFormat)
        #expect(e.description.contains("header"))
        #expect(e.path == p)
    }

    @Test func regionTablePastEndOfFileIsCorrupt() throws {
        let dir = try TestSupport.makeTempDir("vhdx-bad"); defer { TestSupport.removeTempDir(dir) }
        let p = try image(dir)
        var t = VhdxRegionTable(entries: [
            VhdxRegionEntry(guid: VhdxLayout.batGuid, fileOffset: 1 << 40, length: 1 << 20, required: true),
            VhdxRegionEntry(guid: VhdxLayout.metadataGuid, fileOffset: 2 << 20, length: 1 << 20, required: true),
        ])
        try patch(p, at: 0x30000, t.encode())
        try patch(p, at: 0x40000, t.encode())
        let e = try #require(openError(p))
        #expect(e.kind == .corruptImage)
        #expect(e.description.contains("beyond the end of the file"))
        #expect(e.hostOffset == 1 << 40)
        t.entries.removeLast()
        try patch(p, at: 0x30000, t.encode())
        try patch(p, at: 0x40000, t.encode())
        #expect(openError(p)?.kind == .corruptImage)
    }

    @Test func batEntryPastEndOfFileIsCorrupt() throws {
        let dir = try TestSupport.makeTempDir("vhdx-bad"); defer { TestSupport.removeTempDir(dir) }
        let p = try image(dir)
        var entry = [UInt8](repeating: 0, count: 8)
        ByteField.putLE(&entry, 0, VhdxBatEntry(state: .fullyPresent, fileOffset: 1 << 36).raw, width: 8)
        try patch(p, at: (3 << 20) + 8, entry)
        let e = try #require(openError(p))
        #expect(e.kind == .corruptImage)
        #expect(e.description.contains("BAT entry 1"))
    }

    @Test(arguments: [UInt32(0), 512 << 20, 3 << 20])
    func invalidBlockSizeIsCorrupt(_ size: UInt32) throws {
        let dir = try TestSupport.makeTempDir("vhdx-bad"); defer { TestSupport.removeTempDir(dir) }
        let p = try image(dir)
        var b = [UInt8](repeating: 0, count: 4)
        ByteField.putLE(&b, 0, UInt64(size), width: 4)
        try patch(p, at: (2 << 20) + 0x10000, b)
        let e = try #require(openError(p))
        #expect(e.kind == .corruptImage)
        #expect(e.description.contains("block size \(size)"))
    }

    @Test func hugeLogicalSectorSizeIsAnErrorNotAnOverflowTrap() throws {
        let dir = try TestSupport.makeTempDir("vhdx-bad"); defer { TestSupport.removeTempDir(dir) }
        let p = try image(dir)
        // Items: file parameters (8 bytes), virtual size (8), page 83 (16), then the logical sector size.
        try patch(p, at: (2 << 20) + 0x10000 + 32, [0, 0, 0, 0x80])
        let e = try #require(openError(p))
        #expect(e.kind == .corruptImage)
        #expect(e.description.contains("logical sector size"))
    }

    @Test func missingRequiredMetadataItemIsNamed() throws {
        let dir = try TestSupport.makeTempDir("vhdx-bad"); defer { TestSupport.removeTempDir(dir) }
        let p = try image(dir)
        // Second table entry (virtual disk size): clear the whole entry.
        try patch(p, at: (2 << 20) + 64, [UInt8](repeating: 0, count: 32))
        let e = try #require(openError(p))
        #expect(e.kind == .invalidFormat)
        #expect(e.description.contains("virtual disk size"))
    }

    @Test func parentLocatorLoopIsRefused() throws {
        let dir = try TestSupport.makeTempDir("vhdx-bad"); defer { TestSupport.removeTempDir(dir) }
        let base = try image(dir, "a.vhdx")
        var o = VhdxCreateOptions()
        o.parent = base
        try VhdxFormat.create(path: dir + "/b.vhdx", size: 0, options: o)
        o.parent = dir + "/b.vhdx"
        try VhdxFormat.create(path: dir + "/a2.vhdx", size: 0, options: o)
        try FileManager.default.removeItem(atPath: base)
        try FileManager.default.moveItem(atPath: dir + "/a2.vhdx", toPath: base)
        let e = try #require(openError(dir + "/b.vhdx"))
        #expect(e.kind == .corruptImage)
        #expect(e.description.contains("loop"))
    }

    @Test func missingParentIsNotFound() throws {
        let dir = try TestSupport.makeTempDir("vhdx-bad"); defer { TestSupport.removeTempDir(dir) }
        let base = try image(dir, "a.vhdx")
        var o = VhdxCreateOptions()
        o.parent = base
        try VhdxFormat.create(path: dir + "/b.vhdx", size: 0, options: o)
        try FileManager.default.removeItem(atPath: base)
        #expect(openError(dir + "/b.vhdx")?.kind == .notFound)
    }

    @Test func truncatedOrGarbageFilesFailCleanly() throws {
        let dir = try TestSupport.makeTempDir("vhdx-bad"); defer { TestSupport.removeTempDir(dir) }
        let p = dir + "/t.vhdx"
        try TestSupport.writeFile(p, Array("vhdxfile".utf8) + [UInt8](repeating: 0, count: 100))
        #expect(openError(p)?.kind == .invalidFormat)
        for seed in 1...20 {
            var junk = TestSupport.pseudoRandomBytes(count: 300_000, seed: UInt64(seed))
            junk[0..<8] = ArraySlice("vhdxfile".utf8)
            try TestSupport.writeFile(p, junk)
            #expect(openError(p) != nil)
        }
    }

    @Test func vhdBadFooterChecksumAndBatPastEndOfFile() throws {
        let dir = try TestSupport.makeTempDir("vhd-bad"); defer { TestSupport.removeTempDir(dir) }
        let p = dir + "/d.vhd"
        try VhdFormat.create(path: p, size: 8 << 20)
        #expect(openError(p) == nil)
        var entry = [UInt8](repeating: 0, count: 4)
        ByteField.putBE(&entry, 0, 0x0100_0000, width: 4)
        try patch(p, at: 1536, entry)
        let e = try #require(openError(p))
        #expect(e.kind == .corruptImage)
        #expect(e.description.contains("BAT entry 0"))
        let size = try SystemFile(path: p, writable: false).size()
        try patch(p, at: size - 512 + 48, [0xff])
        try patch(p, at: 48, [0xff])
        #expect(openError(p)?.kind == .corruptImage)
        let f = dir + "/f.vhd"
        var fo = VhdCreateOptions()
        fo.fixed = true
        try VhdFormat.create(path: f, size: 4 << 20, options: fo)
        #expect(openError(f) == nil)
        try patch(f, at: (try SystemFile(path: f, writable: false).size()) - 512 + 60, [0, 0, 0, 9])
        #expect(openError(f, format: .vpc) != nil)
    }
}

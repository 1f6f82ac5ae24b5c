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

/// Random corruption of the unchecksummed parts (metadata region, BAT, log, VHD BAT): opening,
/// reading everything and checking must end in success or a BlockError, never a trap.
@Suite struct VhdxFuzzTests {
    func exercise(_ path: String, format: ImageFormat) {
        do {
            let d = try openDisk(path, options: OpenOptions(writable: false, format: format))
            defer { try? d.close() }
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
            defer { buf.deallocate() }
            var off: UInt64 = 0
            while off < min(d.logicalSize, 64 << 20) {
                let n = Int(min(UInt64(buf.count), d.logicalSize - off))
                try d.read(into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<n]), at: off)
                off += UInt64(n)
            }
            _ = try (d as? InspectableDisk)?.check(repair: nil)
            _ = try (d as? InspectableDisk)?.mapExtents()
            _ = try d.info()
        } catch {}
    }

    @Test func corruptedVhdxMetadataBatAndLogNeverTrap() throws {
        let dir = try TestSupport.makeTempDir("fuzz"); defer { TestSupport.removeTempDir(dir) }
        let base = dir + "/base.vhdx"
        var o = VhdxCreateOptions()
        o.blockSize = 1 << 20
        try VhdxFormat.create(path: base, size: 8 << 20, options: o)
        let pristine = try TestSupport.readFile(base)
        for seed in 1...60 {
            var bytes = [UInt8](pristine)
            var x = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15
            func rnd() -> UInt64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
            // Regions: metadata table + items (2 MiB), BAT (3 MiB).
            let areas: [(Int, Int)] = [(2 << 20, 256), ((2 << 20) + 0x10000, 64), (3 << 20, 64)]
            for _ in 0..<(1 + Int(rnd() % 6)) {
                let a = areas[Int(rnd() % UInt64(areas.count))]
                bytes[a.0 + Int(rnd() % UInt64(a.1))] = UInt8(truncatingIfNeeded: rnd())
            }
            let p = dir + "/f\(seed).vhdx"
            try TestSupport.writeFile(p, bytes)
            exercise(p, format: .vhdx)
        }
    }

    @Test func garbageLogEntriesNeverTrap() throws {
        let dir = try TestSupport.makeTempDir("fuzz"); defer { TestSupport.removeTempDir(dir) }
        let p = dir + "/log.vhdx"
        try VhdxFormat.create(path: p, size: 8 << 20)
        let f = try SystemFile(path: p, writable: true)
        var (h, _) = try VhdxHeader.readCurrent(f)
        h.logGuid = .random()
        h.sequenceNumber += 2
        try f.writeBytes(h.encode(), at: VhdxLayout.headerOffsets[0])
        for seed in 1...20 {
            var page = [UInt8](repeating: 0, count: 4096)
            page[(2 << 20) % 4096] = 1
            var entry = VhdxLog.buildEntry(pages: [(2 << 20, page)], sequence: UInt64(seed), tail: 0, guid: h.logGuid, fileSize: 1 << 40)
            let junk = TestSupport.pseudoRandomBytes(count: 8, seed: UInt64(seed))
            entry.replaceSubrange(64..<72, with: junk)          // descriptor signature/trailing bytes
            ByteField.putLE(&entry, 72, UInt64(seed) << 60, width: 8)
            Crc32c.seal(&entry, fieldOffset: 4)
            try f.writeBytes(entry, at: h.logOffset)
            exercise(p, format: .vhdx)
        }
        f.close()
    }

    @Test func corruptedVhdHeadersNeverTrap() throws {
        let dir = try TestSupport.makeTempDir("fuzz"); defer { TestSupport.removeTempDir(dir) }
        let base = dir + "/base.vhd"
        try VhdFormat.create(path: base, size: 8 << 20)
        let pristine = [UInt8](try TestSupport.readFile(base))
        for seed in 1...60 {
            var bytes = pristine
            var x = UInt64(seed) &* 0x2545_F491_4F6C_DD1D
            func rnd() -> UInt64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
            var hdr = Array(bytes[512..<1536])
            for _ in 0..<(1 + Int(rnd() % 4)) { hdr[8 + Int(rnd() % 40)] = UInt8(truncatingIfNeeded: rnd()) }
            ByteField.putBE(&hdr, 36, UInt64(VhdChecksum.compute(hdr, field: 36)), width: 4)
            bytes.replaceSubrange(512..<1536, with: hdr)
            bytes[1536 + Int(rnd() % 16)] = UInt8(truncatingIfNeeded: rnd())
            let p = dir + "/f\(seed).vhd"
            try TestSupport.writeFile(p, bytes)
            exercise(p, format: .vpc)
        }
    }
}

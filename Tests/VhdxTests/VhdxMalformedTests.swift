import Testing
import Foundation
import BlockCore
@testable import BlockIO
@testable import Vhdx
@testable import Vhd
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
        o.referenceOpener = diskOpener
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
        o.referenceOpener = diskOpener
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
}

/// Random corruption of the unchecksummed parts (metadata region, BAT, log, VHD BAT): opening,
/// reading everything and checking ends either in success, with the bytes qemu-img reads
/// from the same file wherever qemu-img accepts it too, or in one BlockError of a
/// damaged-image kind that names the file and the offset or field at fault. Never a trap.
@Suite struct VhdxFuzzTests {
    /// What opening, reading and checking one damaged image gave.
    enum Outcome {
        /// Everything succeeded: the guest bytes read (up to 64 MiB).
        case read([UInt8])
        /// A step failed with this error.
        case failed(BlockError)
    }

    /// The kinds a damaged image may fail with (never `.io`, `.overflow` or a trap).
    static let damageKinds: Set<BlockError.Kind> = [.corruptImage, .invalidFormat, .unsupportedFeature, .outOfBounds]

    func exercise(_ path: String, format: ImageFormat) -> Outcome {
        do {
            let d = try openDisk(path, options: OpenOptions(writable: false, format: format))
            defer { try? d.close() }
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
            defer { buf.deallocate() }
            var bytes: [UInt8] = []
            var off: UInt64 = 0
            while off < min(d.logicalSize, 64 << 20) {
                let n = Int(min(UInt64(buf.count), d.logicalSize - off))
                try d.read(into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<n]), at: off)
                bytes += buf[0..<n]
                off += UInt64(n)
            }
            _ = try (d as? InspectableDisk)?.check(repair: nil)
            _ = try (d as? InspectableDisk)?.mapExtents()
            _ = try d.info()
            return .read(bytes)
        } catch let e { return .failed(e) }
    }

    /// Asserts the outcome of one damaged image: an error of a damage kind naming the file and
    /// where (an offset or a named field), or bytes equal to qemu-img's when it reads the file.
    /// Returns whether the image was refused.
    @discardableResult
    func expectCleanOutcome(_ path: String, format: ImageFormat, qemuFormat: String, _ what: String) throws -> Bool {
        switch exercise(path, format: format) {
        case .failed(let e):
            #expect(Self.damageKinds.contains(e.kind), "\(what): \(e.kind): \(e)")
            #expect(e.path == path || e.description.contains(path), "\(what): the error names no file: \(e)")
            let named = e.hostOffset != nil || e.guestOffset != nil || e.message.contains("0x")
                || Self.fieldWords.contains { e.message.lowercased().contains($0) }
            #expect(named, "\(what): the error names no offset or field: \(e)")
            return true
        case .read(let bytes):
            let out = path + ".qemu.raw"
            defer { try? FileManager.default.removeItem(atPath: out) }
            let q = try TestSupport.run("qemu-img", ["convert", "-f", qemuFormat, "-O", "raw", path, out])
            if q.status == 0 {
                let want = [UInt8](try TestSupport.readFile(out).prefix(bytes.count))
                #expect(bytes.count == min(want.count, 64 << 20) && bytes == want, "\(what): read differs from qemu-img's")
            }
            return false
        }
    }

    /// Words by which an error message names the field at fault.
    static let fieldWords = ["header", "region", "metadata", "bat", "log", "block size", "sector", "size", "footer",
                             "checksum", "signature", "entry", "table", "parent", "version", "offset", "guid"]

    @Test func corruptedVhdxMetadataBatAndLogNeverTrap() throws {
        let dir = try TestSupport.makeTempDir("fuzz"); defer { TestSupport.removeTempDir(dir) }
        let base = dir + "/base.vhdx"
        var o = VhdxCreateOptions()
        o.blockSize = 1 << 20
        try VhdxFormat.create(path: base, size: 8 << 20, options: o)
        let pristine = try TestSupport.readFile(base)
        #expect(try expectCleanOutcome(base, format: .vhdx, qemuFormat: "vhdx", "pristine") == false, "the undamaged image opens")
        var refused = 0
        for seed in 1...60 {
            var bytes = [UInt8](pristine)
            var rng = SeededRandom(seed: UInt64(seed))
            // Regions: metadata table + items (2 MiB), BAT (3 MiB).
            let areas: [(Int, Int)] = [(2 << 20, 256), ((2 << 20) + 0x10000, 64), (3 << 20, 64)]
            for _ in 0..<(1 + rng.below(6)) {
                let a = areas[rng.below(areas.count)]
                bytes[a.0 + rng.below(a.1)] = rng.byte()
            }
            let p = dir + "/f\(seed).vhdx"
            try TestSupport.writeFile(p, bytes)
            if try expectCleanOutcome(p, format: .vhdx, qemuFormat: "vhdx", "seed \(seed)") { refused += 1 }
        }
        // Damage to the metadata table and the BAT is mostly detected.
        #expect(refused > 0)
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
            // The entry's descriptor is damaged, so it is not a valid log entry and must not
            // be replayed (it would write into the metadata region): the image reads as the
            // empty disk it is, as qemu-img reads it, or is refused naming the log.
            switch exercise(p, format: .vhdx) {
            case .failed(let e):
                #expect(Self.damageKinds.contains(e.kind), "seed \(seed): \(e.kind): \(e)")
                #expect(e.path == p || e.description.contains(p), "seed \(seed): \(e)")
                #expect(e.message.lowercased().contains("log"), "seed \(seed): the error does not name the log: \(e)")
            case .read(let bytes):
                #expect(bytes.count == 8 << 20 && bytes.allSatisfy { $0 == 0 }, "seed \(seed): the empty disk does not read as zeroes")
                try expectCleanOutcome(p, format: .vhdx, qemuFormat: "vhdx", "seed \(seed)")
            }
        }
        f.close()
    }

    @Test func corruptedVhdHeadersNeverTrap() throws {
        let dir = try TestSupport.makeTempDir("fuzz"); defer { TestSupport.removeTempDir(dir) }
        let base = dir + "/base.vhd"
        try VhdFormat.create(path: base, size: 8 << 20)
        let pristine = [UInt8](try TestSupport.readFile(base))
        #expect(try expectCleanOutcome(base, format: .vpc, qemuFormat: "vpc", "pristine") == false, "the undamaged image opens")
        for seed in 1...60 {
            var bytes = pristine
            var rng = SeededRandom(seed: UInt64(seed) &+ 1_000)
            var hdr = Array(bytes[512..<1536])
            for _ in 0..<(1 + rng.below(4)) { hdr[8 + rng.below(40)] = rng.byte() }
            ByteField.putBE(&hdr, 36, UInt64(VhdChecksum.compute(hdr, field: 36)), width: 4)
            bytes.replaceSubrange(512..<1536, with: hdr)
            bytes[1536 + rng.below(16)] = rng.byte()
            let p = dir + "/f\(seed).vhd"
            try TestSupport.writeFile(p, bytes)
            try expectCleanOutcome(p, format: .vpc, qemuFormat: "vpc", "seed \(seed)")
        }
    }
}

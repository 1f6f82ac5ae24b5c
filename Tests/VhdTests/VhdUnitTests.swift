import Testing
import BlockCore
@testable import BlockIO
@testable import Vhd
import TestSupport

/// VHD (qemu-img's `vpc`) in process: the footer's checksum and CHS rule, and damaged
/// footers and BAT entries refused with an error that names them.
@Suite struct VhdUnitTests {
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

    @Test func vhdFooterChecksumAndChsRule() throws {
        let geo = VhdFooter.geometry(sectors: 131072)
        #expect(UInt64(geo.cylinders) * UInt64(geo.heads) * UInt64(geo.sectorsPerTrack) <= 131072)
        var f = VhdFooter(dataOffset: 512, timestamp: 1, creatorApp: Array("qemu".utf8), creatorVersion: 0, creatorOS: 0,
                          originalSize: 1 << 26, currentSize: 1 << 26, cylinders: 963, heads: 8, sectorsPerTrack: 17,
                          diskType: .dynamic, uniqueId: [UInt8](repeating: 1, count: 16), savedState: 0)
        #expect(f.virtualSize == 963 * 8 * 17 * 512)
        f.creatorApp = Array("qem2".utf8)
        #expect(f.virtualSize == 1 << 26)
        let b = f.encode()
        #expect(try VhdFooter.parse(b, path: "t", at: 0) == f)
        var bad = b
        bad[48] ^= 1
        #expect(throws: BlockError.self) { _ = try VhdFooter.parse(bad, path: "t", at: 0) }
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

import Testing
import Foundation
import BlockCore
import TestSupport

/// An ESXi seSparse disk built byte by byte from the layout QEMU's block/vmdk.c reads
/// (constant header, volatile header, 64-bit grain directory and tables, 4 KiB grains):
/// blockscope reads it as qemu-img does, refuses to write it, and rejects damaged entries.
@Suite struct VmdkSeSparseTests {
    static let capacity: UInt64 = 40 << 20   // three grain tables of 16 MiB
    static let grain: UInt64 = 4096

    /// Builds `dir/se.vmdk` (descriptor) and `dir/se-sesparse.vmdk`; returns the descriptor path.
    /// `entries` maps grain numbers to raw grain table entries; allocated grains get pattern data.
    static func build(_ dir: String, entries: [UInt64: UInt64], directory: [UInt64]? = nil, parent: (hint: String, cid: String)? = nil) throws -> String {
        func put(_ b: inout [UInt8], _ o: Int, _ v: UInt64) { ByteField.putLE(&b, o, v, width: 8) }
        let tables = Int((capacity + 16 << 20 - 1) / (16 << 20))
        let gdSector: UInt64 = 8, gtSector: UInt64 = 16
        let grainsSector = gtSector + UInt64(tables) * 64
        // The constant header: 26 little-endian words then zero padding (QEMU's VMDKSESparseConstHeader).
        let words: [UInt64] = [VmdkSeSparseHeader.magic, VmdkSeSparseHeader.supportedVersion, capacity / 512, 8, 64, 0, 0, 0, 0, 0,
                               1, 1, 2, 1, 3, 1, gdSector, 1, gtSector, UInt64(tables) * 64, 4, 1, 5, 1, grainsSector, 1 << 20]
        var f = [UInt8](repeating: 0, count: Int(grainsSector * 512))
        for (i, w) in words.enumerated() { put(&f, i * 8, w) }
        put(&f, 512, VmdkSeSparseHeader.volatileMagic)
        for (t, e) in (directory ?? (0..<UInt64(tables)).map { 0x1000_0000_0000_0000 | $0 }).enumerated() { put(&f, Int(gdSector * 512) + t * 8, e) }
        var dataEnd = f.count
        for (g, e) in entries {
            let t = Int(g / 4096), i = Int(g % 4096)
            put(&f, Int(gtSector * 512) + t * 32768 + i * 8, e)
            if e >> 60 == 3 {
                let index = ((e & 0x0fff_0000_0000_0000) >> 48) | ((e & 0x0000_ffff_ffff_ffff) << 12)
                let off = Int(grainsSector * 512 + index * grain)
                if f.count < off + Int(grain) { f += [UInt8](repeating: 0, count: off + Int(grain) - f.count) }
                let pat = TestSupport.pseudoRandomBytes(count: Int(grain), seed: g + 1)
                f.replaceSubrange(off..<(off + Int(grain)), with: pat)
                dataEnd = max(dataEnd, off + Int(grain))
            }
        }
        try TestSupport.writeFile(dir + "/se-sesparse.vmdk", Array(f[0..<dataEnd]))
        let desc = "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=1a2b3c4d\nparentCID=\(parent?.cid ?? "ffffffff")\ncreateType=\"seSparse\"\n\(parent.map { "parentFileNameHint=\"\($0.hint)\"\n" } ?? "")\n# Extent description\nRW \(capacity / 512) SESPARSE \"se-sesparse.vmdk\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.virtualHWVersion = \"14\"\n"
        try TestSupport.writeFile(dir + "/se.vmdk", Array(desc.utf8))
        return dir + "/se.vmdk"
    }

    /// The allocated-grain entry for grain index `index` in the grains area (QEMU's bit layout:
    /// bits 48-59 hold the index's low 12 bits, bits 0-47 the rest).
    static func allocated(_ index: UInt64) -> UInt64 { 0x3000_0000_0000_0000 | (index & 0xfff) << 48 | index >> 12 }

    /// Allocated grains (indices past 4096 use both halves of the entry), zero and unmapped
    /// grains and a missing grain table read and map as qemu-img reads and maps them.
    @Test func seSparseAgreesWithQemu() throws {
        let dir = try TestSupport.makeTempDir("vmdk-se"); defer { TestSupport.removeTempDir(dir) }
        var entries: [UInt64: UInt64] = [:]
        for (g, idx) in [(0, 0), (1, 1), (7, 5000), (4096, 2), (4097, 4097), (8000, 70000)] { entries[UInt64(g)] = Self.allocated(UInt64(idx)) }
        entries[2] = 0x2000_0000_0000_0000
        entries[3] = 0x1000_0000_0000_0000
        let img = try Self.build(dir, entries: entries, directory: [0x1000_0000_0000_0000, 0x1000_0000_0000_0001, 0])
        try VmdkEndToEndTests.agree(img, "seSparse")
        // Read only, as in qemu.
        do {
            _ = try openDisk(img, options: OpenOptions(writable: true))
            Issue.record("opened for writing")
        } catch let e { #expect(e.description.contains("seSparse extents are read only"), "\(e)") }
    }

    /// A seSparse delta over a base disk (as ESXi makes snapshots): unallocated grains come
    /// from the parent, zero and unmapped grains do not, as qemu-img reads them.
    @Test func seSparseChildOverParentAgreesWithQemu() throws {
        let dir = try TestSupport.makeTempDir("vmdk-se-chain"); defer { TestSupport.removeTempDir(dir) }
        try TestSupport.writeFile(dir + "/base.raw", TestSupport.pseudoRandomBytes(count: Int(Self.capacity), seed: 12))
        try TestSupport.qemuImg(["convert", "-O", "vmdk", "-o", "subformat=monolithicFlat", dir + "/base.raw", dir + "/base.vmdk"])
        let info = try JSONSerialization.jsonObject(with: try TestSupport.qemuImg(["info", "--output=json", dir + "/base.vmdk"]).stdout) as! [String: Any]
        let cid = ((info["format-specific"] as! [String: Any])["data"] as! [String: Any])["cid"] as! NSNumber
        var entries: [UInt64: UInt64] = [1: Self.allocated(0), 9000: Self.allocated(1)]
        entries[2] = 0x2000_0000_0000_0000
        entries[3] = 0x1000_0000_0000_0000
        let img = try Self.build(dir, entries: entries, parent: ("base.vmdk", String(cid.uint32Value, radix: 16)))
        try VmdkEndToEndTests.agree(img, "seSparse child")
    }

    /// Damaged entries are refused with the file and the entry, as qemu-img refuses them.
    @Test func damagedSeSparseEntriesAreRefused() throws {
        let dir = try TestSupport.makeTempDir("vmdk-se-bad"); defer { TestSupport.removeTempDir(dir) }
        let img = try Self.build(dir, entries: [5: 0x5000_0000_0000_0000])
        let r = try TestSupport.blockscope(["cat", img])
        #expect(r.status != 0 && r.stderr.contains("unknown seSparse entry type 5") && r.stderr.contains("se-sesparse.vmdk"), "\(r.stderr)")
        #expect(try TestSupport.run("qemu-img", ["convert", "-O", "raw", img, dir + "/x.raw"]).status != 0)
        // A grains area or tables area offset near 2^64 sectors: an error naming the grain, no overflow.
        let d3 = try TestSupport.makeTempDir("vmdk-se-far"); defer { TestSupport.removeTempDir(d3) }
        let img3 = try Self.build(d3, entries: [0: Self.allocated(1)])
        var ext = Array(try TestSupport.readFile(d3 + "/se-sesparse.vmdk"))
        ByteField.putLE(&ext, 24 * 8, 0xffff_ffff_ffff_ff00, width: 8)
        try TestSupport.writeFile(d3 + "/se-sesparse.vmdk", ext)
        let r3 = try TestSupport.blockscope(["cat", img3])
        #expect(r3.status != 0 && r3.stderr.contains("grain"), "\(r3.stderr)")
        ByteField.putLE(&ext, 24 * 8, 16 + 3 * 64, width: 8)
        ByteField.putLE(&ext, 18 * 8, 0xffff_ffff_ffff_ff00, width: 8)
        try TestSupport.writeFile(d3 + "/se-sesparse.vmdk", ext)
        let r4 = try TestSupport.blockscope(["cat", img3])
        #expect(r4.status != 0 && r4.stderr.contains("grain"), "\(r4.stderr)")
        let d2 = try TestSupport.makeTempDir("vmdk-se-gd"); defer { TestSupport.removeTempDir(d2) }
        let img2 = try Self.build(d2, entries: [:], directory: [0x2000_0000_0000_0001, 0, 0])
        let r2 = try TestSupport.blockscope(["info", img2])
        #expect(r2.status != 0 && r2.stderr.contains("grain directory entry 0"), "\(r2.stderr)")
    }
}

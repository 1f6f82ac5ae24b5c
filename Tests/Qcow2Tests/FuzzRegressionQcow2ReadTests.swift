import Testing
import Foundation
import BlockCore
import TestSupport

/// The `qcow2-read` findings (docs/FUZZING.md, Fuzz/regressions/qcow2-read/). Each image is
/// rebuilt by hand from one qemu-img made; qemu-img is the oracle for what it holds.
@Suite struct FuzzRegressionQcow2ReadTests {
    @Test func qcow2MapOfASnapshotWhoseGuestSizeIsTwoToThe62EndsInOneUnallocatedExtent() throws {
        // timeout-a3f6…: a snapshot entry's guest size (extra data bytes 8..16) was 2^62 over a
        // one-entry L1 table. `map` of that snapshot's view stepped through the guest range one
        // L2 table's span at a time, past the L1 table too: 2^41 steps, a hang.
        let dir = try TestSupport.makeTempDir("fuzz-qcow2-snapsize"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "1M"])
        #expect(try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x5a 0 64k", "write -P 0x33 512k 4k"]).status == 0)
        try TestSupport.qemuImg(["snapshot", "-c", "s1", img])
        // The active layer still shares every cluster with s1: qemu-img's map of it is s1's.
        let theirs = try JSONValue.parse(try TestSupport.qemuImg(["map", "--output=json", "-f", "qcow2", img]).stdoutText).arrayValue ?? []
        #expect(theirs.count == 4, "qemu-img maps data, zero, data, zero: \(theirs)")

        let table = try beU64(img, at: 64)   // snapshots_offset
        let extra = try beU32(img, at: table + 36)
        #expect(extra >= 16, "qemu-img writes the guest size in the extra data")
        let huge: UInt64 = 1 << 62
        try patch(img, at: table + 40 + 8, (0..<8).map { UInt8(truncatingIfNeeded: huge >> (8 * UInt64(7 - $0))) })

        var o = OpenOptions(writable: false, format: .qcow2, engine: .sync)
        o.snapshot = "s1"
        let view = try openDisk(img, options: o)
        defer { _ = try? view.close() }
        #expect(view.logicalSize == huge)
        let mine = try (view as? any InspectableDisk).map { try $0.mapExtents() } ?? []
        // Every extent qemu-img reports, the same; its last one (unallocated, up to 1 MiB)
        // runs on to the view's end in one piece.
        #expect(mine.count == theirs.count, "\(mine) against qemu-img's \(theirs)")
        for (i, (m, t)) in zip(mine, theirs).enumerated() {
            let last = i == theirs.count - 1
            #expect(Int64(m.start) == t["start"]?.intValue, "extent \(i): \(m) against \(t)")
            #expect(Int64(m.length) == (last ? Int64(huge) - (t["start"]?.intValue ?? 0) : t["length"]?.intValue), "extent \(i): \(m) against \(t)")
            #expect(m.present == t["present"]?.boolValue && m.zero == t["zero"]?.boolValue && m.data == t["data"]?.boolValue,
                    "extent \(i): \(m) against \(t)")
            #expect(m.offset.map { Int64($0) } == t["offset"]?.intValue, "extent \(i): \(m) against \(t)")
        }
        // Reads at both ends of the view: the data qemu-io wrote, and zeroes at the far end.
        var b = [UInt8](repeating: 0xff, count: 4096)
        try b.withUnsafeMutableBytes { try view.read(into: $0, at: 512 << 10) }
        #expect(b.allSatisfy { $0 == 0x33 })
        try b.withUnsafeMutableBytes { try view.read(into: $0, at: huge - 4096) }
        #expect(b.allSatisfy { $0 == 0 })
    }

    func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path)); defer { try? h.close() }
        try h.seek(toOffset: offset); try h.write(contentsOf: Data(bytes))
    }

    func beU64(_ path: String, at offset: UInt64) throws -> UInt64 {
        let d = try TestSupport.readFile(path)
        return d[Int(offset)..<Int(offset) + 8].reduce(0) { $0 << 8 | UInt64($1) }
    }

    func beU32(_ path: String, at offset: UInt64) throws -> UInt32 {
        let d = try TestSupport.readFile(path)
        return d[Int(offset)..<Int(offset) + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }
}

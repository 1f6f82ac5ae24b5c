import Testing
import Foundation
import BlockCore
import TestSupport

/// VMDK's host regions (``StructuredDisk``): the directories where the sparse header puts
/// them, and the walk's data units exactly where `qemu-img map` puts the allocated grains.
/// (The grain tables entry by entry are checked through the neutral model in
/// BlockScopeUITests' VmdkInspectTests.)
@Suite struct VmdkStructureTests {
    @Test func hostRegionsAndWalkAgreeWithTheHeaderAndQemuMap() throws {
        let dir = try TestSupport.makeTempDir("vmdk-struct"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/t.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", img, "48M"])
        try TestSupport.qemuIo(img, format: "vmdk", ["write -P 0x11 0 100k", "write -z 1M 2M", "write -P 0x22 40M 64k"])
        let disk = try openDisk(img)
        defer { try? disk.close() }
        let s = try #require(disk as? any StructuredDisk)
        let header = try VmdkSparseHeader.parse(Array(try TestSupport.readFile(img).prefix(512)), path: img)
        let regions = s.hostRegions()
        #expect(regions.contains { $0.label == "grain directory" && $0.offset == header.gdOffset * 512 })
        #expect(regions.contains { $0.label == "redundant grain directory" && $0.offset == header.rgdOffset * 512 })
        let use = try s.walkStructure(progress: nil)
        #expect(use.unit == 512)
        // Every 512-byte unit qemu-img maps as data is a payload unit of the walk, and no other.
        var expected = Set<Int>()
        let map = try JSONSerialization.jsonObject(with: try TestSupport.qemuImg(["map", "--output=json", img]).stdout) as! [[String: Any]]
        for m in map where m["data"] as! Bool {
            let off = (m["offset"] as! NSNumber).intValue, len = (m["length"] as! NSNumber).intValue
            for u in stride(from: off / 512, to: (off + len) / 512, by: 1) { expected.insert(u) }
        }
        let fileUnits = Int(try FileManager.default.attributesOfItem(atPath: img)[.size] as! NSNumber) / 512
        let payload = Set((0..<fileUnits).filter { use.kind($0) == .payload })
        #expect(!expected.isEmpty)
        #expect(payload == expected, "walk payload units \(payload.count), qemu-img map data units \(expected.count)")
    }
}

import Testing
import Foundation
import BlockCore
import TestSupport

/// The grain tables as the structure model shows them (``BatStructure``): entry by entry
/// they say what `qemu-img map` says of the same grain, and the host regions name the
/// directories where the header puts them.
@Suite struct VmdkStructureTests {
    @Test func grainEntriesAgreeWithQemuMap() throws {
        let dir = try TestSupport.makeTempDir("vmdk-struct"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/t.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", img, "48M"])
        try TestSupport.qemuIo(img, format: "vmdk", ["write -P 0x11 0 100k", "write -z 1M 2M", "write -P 0x22 40M 64k"])
        let disk = try openDisk(img)
        defer { try? disk.close() }
        let b = try #require(disk as? any BatStructure)
        #expect(b.hasBat && b.batBlockSize == 65536 && b.batEntryCount == 48 * 16)
        let map = try JSONSerialization.jsonObject(with: try TestSupport.qemuImg(["map", "--output=json", img]).stdout) as! [[String: Any]]
        for m in map {
            let start = (m["start"] as! NSNumber).uint64Value, length = (m["length"] as! NSNumber).uint64Value
            var g = start
            while g < start + length {
                let e = b.batEntry(Int(g / 65536))
                if m["data"] as! Bool {
                    #expect(e.state == .present && e.stateName == "allocated", "grain at \(g): \(e)")
                    #expect(e.hostOffset == (m["offset"] as! NSNumber).uint64Value + (g - start), "grain at \(g): \(e)")
                } else if m["present"] as! Bool {
                    #expect(e.state == .zero && e.stateName == "zeroed", "grain at \(g): \(e)")
                } else {
                    #expect(e.state == .absent, "grain at \(g): \(e)")
                }
                g += 65536
            }
        }
        let counts = Dictionary(uniqueKeysWithValues: b.batStateCounts().map { ($0.state, $0.count) })
        #expect(counts["allocated"] == 3 && counts["zeroed"] == 32)
        let header = try VmdkSparseHeader.parse(Array(try TestSupport.readFile(img).prefix(512)), path: img)
        let regions = b.hostRegions()
        #expect(regions.contains { $0.label == "grain directory" && $0.offset == header.gdOffset * 512 })
        #expect(regions.contains { $0.label == "redundant grain directory" && $0.offset == header.rgdOffset * 512 })
        #expect(b.batSections().first?.rows.contains { $0.label == "createType" && $0.value == "monolithicSparse" } == true)
        let use = try b.walkStructure(progress: nil)
        #expect(use.unit == 512)
    }
}

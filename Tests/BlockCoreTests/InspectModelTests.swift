import BlockCore
import BlockInspect
import Foundation
import Testing
import TestSupport

/// The format-neutral inspection model as each format fills it, checked against qemu-img's
/// own map of images qemu-img and qemu-io made.
@Suite struct InspectModelTests {
    /// One extent of `qemu-img map --output=json`.
    struct MapExtent {
        let start: UInt64, length: UInt64, data: Bool, zero: Bool, offset: UInt64?
    }

    static func qemuMap(_ img: String, format: String) throws -> [MapExtent] {
        let j = try JSONValue.parse(try TestSupport.qemuImg(["map", "--output=json", "-f", format, img]).stdoutText)
        return (j.arrayValue ?? []).map {
            MapExtent(start: UInt64($0["start"]?.intValue ?? 0), length: UInt64($0["length"]?.intValue ?? 0),
                      data: $0["data"]?.boolValue ?? false, zero: $0["zero"]?.boolValue ?? false,
                      offset: $0["offset"]?.intValue.map { UInt64($0) })
        }
    }

    static func extent(_ m: [MapExtent], _ g: UInt64) -> MapExtent? { m.first { g >= $0.start && g < $0.start + $0.length } }

    @Test("QCOW2: every leaf entry's state and host offset is what qemu-img map says of its guest cluster, read-only and over the open disk")
    func qcow2LeafEntriesMatchQemuImgMap() throws {
        let dir = try TestSupport.makeTempDir("inspect-qcow2")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/m.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "1G"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x11 0 64k", "write -P 0x22 1M 128k", "write -z 2M 64k",
                                                      "write -c -P 0x33 5M 64k", "write -P 0x44 600M 64k"])
        let map = try Self.qemuMap(img, format: "qcow2")
        let disk = try openDisk(img)
        defer { try? disk.close() }
        for live in [false, true] {
            let h = try #require(try openInspector(path: img, disk: live ? disk : nil, format: .qcow2))
            let dir = try #require(h.inspector.table(.directory))
            #expect(dir.error == nil)
            var present = 0, zero = 0, compressed = 0, leaves = 0
            for i in 0..<dir.count {
                let d = dir.entry(i)
                guard let ref = d.child else {
                    // An empty directory entry: qemu-img map has no data anywhere in its span.
                    let g = d.guestOffset ?? 0
                    #expect(!map.contains { $0.data && $0.start < g + dir.guestSpan && $0.start + $0.length > g }, "L1[\(i)] empty but map has data")
                    continue
                }
                leaves += 1
                let t = try #require(h.inspector.table(ref))
                for j in 0..<t.count {
                    let e = t.entry(j)
                    let g = try #require(e.guestOffset)
                    let x = try #require(Self.extent(map, g), "no map extent at \(hex(g))")
                    switch e.state {
                    case .present:
                        present += 1
                        #expect(x.data && x.offset.map { $0 + (g - x.start) } == e.hostOffset, "guest \(hex(g)): model \(e.hostOffset.map(hex) ?? "-"), map \(x)")
                        #expect(h.inspector.mapGuest(g + 512).host == e.hostOffset.map { $0 + 512 })
                    case .zero:
                        zero += 1
                        #expect(x.zero && !x.data, "guest \(hex(g)) zero in the model, map \(x)")
                    case .compressed:
                        compressed += 1
                        #expect(x.data && x.offset == nil, "guest \(hex(g)) compressed in the model, map \(x)")
                    case .absent:
                        #expect(!x.data, "guest \(hex(g)) absent in the model, map \(x)")
                    default:
                        Issue.record("guest \(hex(g)): unexpected state \(e.state)")
                    }
                }
            }
            // 1 + 2 + 1 clusters of plain data, one zero cluster, one compressed; L2 tables for 0-512M and 512M-1G.
            #expect(present == 4 && zero == 1 && compressed == 1 && leaves == 2, "live \(live): \(present) \(zero) \(compressed) \(leaves)")
            // The other way round: every plain data extent of the map is a present entry at its offset.
            for x in map where x.data && x.offset != nil {
                var g = x.start
                while g < x.start + x.length {
                    let path = h.inspector.path(toGuest: g)
                    let last = try #require(path.last)
                    let leaf = try #require(h.inspector.table(last.table))
                    let e = leaf.entry(last.row)
                    #expect(e.state == .present && e.hostOffset == x.offset! + (g - x.start), "guest \(hex(g))")
                    g += 65536
                }
            }
        }
    }

    @Test("VHDX: the allocation table's present entries are the blocks qemu-io wrote, and their host offsets hold its bytes")
    func vhdxAllocationEntriesPointAtQemuIoData() throws {
        // qemu-img 7.2's map of a VHDX reports the whole disk as data with no offsets, so the
        // oracle is qemu-io's patterns read back at the entries' host offsets.
        let dir = try TestSupport.makeTempDir("inspect-vhdx")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/b.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", img, "16M"])
        try TestSupport.qemuIo(img, format: "vhdx", ["write -P 0x42 3M 64k", "write -P 0x43 9M 1M"])
        let disk = try openDisk(img)
        defer { try? disk.close() }
        let h = try #require(try openInspector(path: img, disk: disk, format: .vhdx))
        #expect(h.inspector.table(.directory) == nil)
        let t = try #require(h.inspector.table(.allocation))
        let file = try SystemFile(path: img, writable: false)
        defer { file.close() }
        var present: [UInt64] = []
        for i in 0..<t.count {
            let e = t.entry(i)
            guard e.state == .present, let g = e.guestOffset else { continue }
            present.append(g)
            let host = try #require(e.hostOffset)
            let want: UInt8 = g == 3 << 20 ? 0x42 : 0x43
            #expect(try file.readBytes(at: host, count: 65536).allSatisfy { $0 == want }, "block at guest \(hex(g)), host \(hex(host))")
            #expect(h.inspector.path(toGuest: g) == [InspectLink(.allocation, i)])
            #expect(h.inspector.mapGuest(g + 4096).host == host + 4096)
        }
        #expect(present == [3 << 20, 9 << 20])
    }

    @Test("an entry's columns are padded to the table's widths, the last one and trailing empty ones not")
    func entryLinePadsColumns() {
        let e = InspectEntry(index: 0, state: .absent, tone: .free, columns: ["L1[0]", "guest 0x0", "unallocated", "", ""])
        #expect(e.line(widths: [10, 22, 28, 8]) == "L1[0]     guest 0x0             unallocated")
        let f = InspectEntry(index: 1, state: .present, tone: .data, columns: ["a", "", "c"])
        #expect(f.line(widths: [3, 2]) == "a    c")
    }
}

import Testing
import Foundation
import BlockCore
@testable import BlockInspect
import TestSupport

/// The format-neutral model in process: where a backing chain holds data, against qemu-img
/// map; the create options every format's parser reads.
@Suite struct BackingAllocationTests {
    @Test("BackingAllocation of a QCOW2 backing file holds data exactly where qemu-img map says data: true")
    func backingDataMatchesQemuImgMap() throws {
        let dir = try TestSupport.makeTempDir("backing-alloc"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/b.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", img, "8M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 1 0 64k", "write -P 2 1M 192k", "write -z 2M 64k", "write -P 3 5M 4k"])
        let map = try JSONSerialization.jsonObject(with: TestSupport.qemuImg(["map", "--output=json", img]).stdout) as! [[String: Any]]
        let disk = try openDisk(img)
        defer { try? disk.close() }
        let alloc = try BackingAllocation(backing: disk)
        #expect(alloc.backingSize == 8 << 20)
        for e in map {
            let start = UInt64(e["start"] as! Int), length = UInt64(e["length"] as! Int), data = e["data"] as! Bool
            var pos = start
            while pos < start + length {   // every 64 KiB cluster of the extent
                #expect(alloc.holdsData(pos, 65536) == data, "cluster at \(pos): qemu-img says data=\(data)")
                pos += 65536
            }
        }
        #expect(!alloc.holdsData(8 << 20, 4096), "past the backing file's end the chain holds nothing")
    }

    @Test("split gives the pieces of a range in order, data where the chain holds it, and they tile the range")
    func splitTilesTheRange() {
        let a = BackingAllocation(dataRanges: [(4096, 8192), (16384, 20480)], backingSize: 32768)
        let pieces = a.split(0, 24576)
        #expect(pieces.map(\.offset) == [0, 4096, 8192, 16384, 20480])
        #expect(pieces.map(\.data) == [false, true, false, true, false])
        #expect(pieces.reduce(0) { $0 + $1.length } == 24576)
    }

    @Test("CreateOptionList: flags, sizes and subformats parse as qemu-img's; an unknown option is named with the ones supported")
    func createOptionsParseAndRefuse() throws {
        let o = CreateOptionList(format: ImageFormat(rawValue: "vpc"), values: ["force_size": "on", "block_size": "2M", "subformat": "fixed"])
        #expect(try o.flag("force_size", absent: false))
        #expect(try o.flag("missing", absent: true))
        #expect(try o.size("block_size") == 2 << 20)
        #expect(try o.subformat(["dynamic", "fixed"], absent: "dynamic") == "fixed")
        do {
            try o.allowOnly(["force_size", "subformat"])
            Issue.record("block_size was accepted")
        } catch let e {
            #expect(e.kind == .invalidArgument)
            #expect(e.description.contains("vpc does not support option 'block_size' (supported: force_size, subformat)"), "\(e.description)")
        }
        #expect(throws: BlockError.self) { _ = try CreateOptionList(format: .raw, values: ["x": "maybe"]).flag("x", absent: false) }
    }
}

import Testing
import Foundation
import BlockCore
@testable import BlockIO
@testable import Vhdx
import TestSupport

/// `map`/`check`/`info` for VHDX and VHD through ``InspectableDisk``: VHD extents equal
/// `qemu-img map` (which carries vpc host offsets); VHDX extents carry BAT states; check
/// finds overlapping blocks and a dirty log; events report allocations and BAT updates.
@Suite struct VhdxInspectionTests {
    func open(_ p: String, writable: Bool = false, format: ImageFormat? = nil) throws -> any InspectableDisk {
        let d = try openDisk(p, options: OpenOptions(writable: writable, format: format))
        return try #require(d as? InspectableDisk)
    }

    @Test func vhdMapEqualsQemuImgMap() throws {
        let dir = try TestSupport.makeTempDir("map"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/m.vhd"
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", img, "16M"])
        try TestSupport.qemuIo(img, format: "vpc", ["write -P 1 3M 100k", "write -P 2 9M 3M"])
        let q = try JSONValue.parse(try TestSupport.qemuImg(["map", "--output=json", "-f", "vpc", img]).stdoutText)
        let d = try open(img)
        defer { try? d.close() }
        let ours = try d.mapExtents()
        #expect(JSONValue.array(ours.map { $0.json() }) == q)
    }

    @Test func fixedVhdMapEqualsQemuImgMap() throws {
        let dir = try TestSupport.makeTempDir("map"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/f.vhd"
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", "-o", "subformat=fixed", img, "16M"])
        try TestSupport.qemuIo(img, format: "vpc", ["write -P 1 3M 100k", "write -P 2 9M 3M"])
        let q = try JSONValue.parse(try TestSupport.qemuImg(["map", "--output=json", "-f", "vpc", img]).stdoutText)
        let d = try open(img, format: .vpc)
        defer { try? d.close() }
        #expect(JSONValue.array(try d.mapExtents().map { $0.json() }) == q)
    }

    @Test func vhdxMapShowsBlockStatesAndHostOffsets() throws {
        let dir = try TestSupport.makeTempDir("map"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/m.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", img, "8M"])
        try TestSupport.qemuIo(img, format: "vhdx", ["write -P 1 2M 4k"])
        let d = try open(img)
        defer { try? d.close() }
        let ext = try d.mapExtents()
        #expect(ext.count == 3)
        #expect(ext[0].detail == "ZERO" && ext[0].zero && ext[0].length == 2 << 20)
        #expect(ext[1].detail == "FULLY_PRESENT" && ext[1].data && ext[1].offset != nil && ext[1].length == 1 << 20)
        #expect(ext[2].detail == "ZERO" && ext[2].start == 3 << 20)
        let report = try d.check(repair: nil)
        #expect(report.exitCode == 0)
        #expect(report.allocatedClusters == 1 && report.totalClusters == 8)
        let info = try d.info()
        #expect(info["blockscope"]?["block-states"]?["FULLY_PRESENT"]?.intValue == 1)
    }

    @Test func vhdxCheckFindsOverlappingBlocks() throws {
        let dir = try TestSupport.makeTempDir("check"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/o.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", img, "8M"])
        try TestSupport.qemuIo(img, format: "vhdx", ["write -P 1 0 4k", "write -P 2 1M 4k"])
        let f = try SystemFile(path: img, writable: true)
        let bat = try f.readBytes(at: 2 << 20, count: 16)
        try f.writeBytes(Array(bat[0..<8]), at: (2 << 20) + 8)   // block 1 points at block 0's data
        f.close()
        let d = try open(img)
        defer { try? d.close() }
        let r = try d.check(repair: nil)
        #expect(r.corruptions >= 1)
        #expect(r.messages.contains { $0.contains("overlaps") })
        #expect(r.exitCode == 2)
    }

    final class Sink: IoEventSink, @unchecked Sendable {
        let lock = NSLock()
        var events: [IoEventPayload] = []
        func publish(_ event: IoEvent) { lock.lock(); events.append(event.payload); lock.unlock() }
    }

    @Test(arguments: ["vhdx", "vpc"])
    func queuesPublishAllocationBatUpdateAndSpanningEvents(_ format: String) throws {
        let dir = try TestSupport.makeTempDir("events"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/e.\(format)"
        try TestSupport.qemuImg(["create", "-q", "-f", format, img, "16M"])
        let d = try openDisk(img, options: OpenOptions(writable: true))
        let sink = Sink()
        let q = try d.makeQueue(QueueOptions(depth: 4, queueID: 3, engine: .uring, eventSink: sink))
        let buf = AlignedBuffer(count: 3 << 20)
        buf.bytes.initializeMemory(as: UInt8.self, repeating: 0x42)
        try q.write(at: (1 << 20) + 512, from: UnsafeRawBufferPointer(buf.bytes), userData: 7)
        try q.fsync(userData: 8)
        try q.submit()
        var got: [UInt64: BlockError?] = [:]
        while got.count < 2 { if let c = q.nextCompletion() { got[c.userData] = c.error } else { try q.waitForCompletion() } }
        #expect(got[7]! == nil && got[8]! == nil)
        // A read that spans blocks and unallocated space goes through a PendingIo.
        let rb = AlignedBuffer(count: 16 << 20)
        try q.read(at: 0, into: rb.bytes, userData: 9)
        try q.submit()
        let c = try q.awaitCompletion()
        #expect(c != nil && c?.error == nil)
        #expect(rb.bytes[(1 << 20) + 512] == 0x42 && rb.bytes[0] == 0 && rb.bytes[(4 << 20) + 511] == 0x42 && rb.bytes[(4 << 20) + 512] == 0)
        q.close()
        try d.close()
        let ev = sink.events
        #expect(ev.contains { if case .allocated = $0 { return true }; return false })
        #expect(ev.contains { if case .tableUpdate(table: .bat, _, _, _) = $0 { return true }; return false })
        #expect(ev.contains { if case .pendingCreated = $0 { return true }; return false })
        #expect(ev.contains { if case .pendingFinished = $0 { return true }; return false })
        #expect(ev.contains { if case .fsyncPhase(.completed) = $0 { return true }; return false })
        #expect(ev.filter { if case .guestCompleted = $0 { return true }; return false }.count == 3)
    }
}

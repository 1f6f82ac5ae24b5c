import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// The structure model (BlockCore's Qcow2Structure and its walk) against qemu-img check as
/// the oracle, and the views that show it: no leak where check finds none, nothing invented
/// on a truncated image.
@Suite("StructureModel") struct StructureModelTests {
    /// qemu-img check's JSON fields of `img`.
    static func qemuCheck(_ img: String) throws -> [String: Int64] {
        let r = try TestSupport.qemuImg(["check", "--output=json", img])
        let j = try #require(try? JSONValue.parse(r.stdoutText))
        var out: [String: Int64] = [:]
        for k in ["leaks", "corruptions", "check-errors", "allocated-clusters", "image-end-offset"] { out[k] = j[k]?.intValue ?? 0 }
        return out
    }

    @Test("one persistent bitmap: check, the walk and the TUI's Overview and Refcounts all report no leak")
    func bitmapImageHasNoLeak() throws {
        let f = try TuiFixture("bitmap")
        let img = try f.qcow2()
        try TestSupport.qemuImg(["bitmap", "--add", img, "b0"])
        let q = try Self.qemuCheck(img)
        #expect(q["leaks"] == 0 && q["corruptions"] == 0, "qemu-img check: \(q)")
        let u = try Qcow2Structure(path: img).walk()
        let r = try #require(u.report)
        #expect(r.leaks == 0 && r.corruptions == 0, "walk: \(r.messages)")
        #expect(Int64(r.allocatedClusters) == q["allocated-clusters"])
        #expect(r.imageEndOffset.map(Int64.init) == q["image-end-offset"])
        #expect(u.counts()[.bitmapDirectory, default: 0] == 1 && u.counts()[.leaked, default: 0] == 0)
        #expect(u.mismatchCount == 0)
        let app = try f.app(img)
        let ov = draw(OverviewView(), app)
        #expect(ov.contains("clean: every refcount matches"))
        #expect(!ov.contains("leaked"))
        #expect(ov.contains("Bitmaps (1)"))
        let rc = draw(RefcountsView(), app)
        #expect(rc.contains("clean"))
        #expect(!rc.contains("LEAKED"))
        #expect(RefcountsView().search("leak", app.state).contains("no cluster matches"))
        app.shutdown()
    }

    @Test("a leak the walk finds is the one qemu-img check finds, and the Refcounts view jumps to it")
    func leakMatchesQemuCheck() throws {
        let f = try TuiFixture("leak")
        let img = try f.qcow2()
        // Give the last cluster of the first refcount block's range past the file a refcount
        // of 1 by appending a cluster and raising its refcount: referenced by nothing.
        let s = try Qcow2Structure(path: img)
        let h = try #require(s.header)
        let fileClusters = s.fileSize / h.clusterSize
        let fh = try FileHandle(forUpdating: URL(fileURLWithPath: img))
        try fh.truncate(atOffset: (fileClusters + 1) * h.clusterSize)
        try fh.close()
        let block = try #require(s.metadata?.refcountTable.first) & Qcow2Entry.offsetMask
        var two = [UInt8](repeating: 0, count: 2)
        two[1] = 1
        let w = try SystemFile(path: img, writable: true)
        try w.writeBytes(two, at: block + fileClusters * 2)
        w.close()
        let q = try Self.qemuCheck(img)
        let u = try Qcow2Structure(path: img).walk()
        #expect(Int64(u.report?.leaks ?? -1) == q["leaks"] && q["leaks"] == 1, "walk \(u.report?.messages ?? []), qemu \(q)")
        #expect(u.kind(Int(fileClusters)) == .leaked && u.mismatched(Int(fileClusters)))
        let app = try f.app(img)
        #expect(draw(OverviewView(), app).contains("1 leaked"))
        #expect(RefcountsView().search("leak", app.state).contains("LEAKED"))
        app.shutdown()
    }

    @Test("a truncated QCOW2 shows what is unreadable and why, never invented snapshots, extensions or backing")
    func truncatedImageIsHonest() throws {
        let f = try TuiFixture("trunc")
        let img = try f.qcow2()
        try TestSupport.qemuImg(["snapshot", "-c", "s1", img])
        let full = try Qcow2Structure(path: img)
        #expect(full.snapshots?.count == 1 && full.problems.isEmpty)
        // Keep the header cluster only: the L1, refcount and snapshot tables are gone.
        let fh = try FileHandle(forUpdating: URL(fileURLWithPath: img))
        try fh.truncate(atOffset: 65536)
        try fh.close()
        let s = try Qcow2Structure(path: img)
        #expect(s.header != nil)
        #expect(s.metadata == nil && !s.problems.isEmpty)
        #expect(s.snapshots == nil || s.snapshots!.isEmpty)
        #expect(s.backingFile == nil)
        #expect(throws: BlockError.self) { try s.walk() }
        let app = try f.app(img)
        let ov = draw(OverviewView(), app)
        #expect(ov.contains("Unreadable"))
        #expect(!ov.contains("Snapshots (1)"))
        #expect(!ov.contains("1970"))
        #expect(!ov.contains("0x514649fb"))
        #expect(!ov.contains("backing file      ") || ov.contains("none"))
        let insp = try #require(app.state.image.inspector as? Qcow2Inspection)
        #expect(insp.guestCell(0, 1 << 20).tone == .error)
        #expect(insp.guestCell(0, 1 << 20).tone != .backing)
        app.shutdown()
    }

    @Test("a header cut short is reported with the parser's reason")
    func truncatedHeaderIsReported() throws {
        let f = try TuiFixture("trunc-head")
        let img = try f.qcow2()
        let fh = try FileHandle(forUpdating: URL(fileURLWithPath: img))
        try fh.truncate(atOffset: 40)
        try fh.close()
        let s = try Qcow2Structure(path: img)
        #expect(s.header == nil && s.problems.first?.kind == .unreadable)
        #expect(s.hostRegions().allSatisfy { $0.kind == .unreadable })
    }

    @Test("the walk over an open disk's live metadata sees an allocation before it is flushed")
    func liveWalkSeesUnflushedAllocation() throws {
        let f = try TuiFixture("live-walk")
        let img = f.dir + "/fresh.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        let disk = try openDisk(img, options: OpenOptions(writable: true))
        defer { try? disk.close() }
        let sd = try #require(disk as? any StructuredDisk)
        let before = try sd.walkStructure(progress: nil).counts()[.data, default: 0]
        let buf = [UInt8](repeating: 0x11, count: 65536)
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: buf.count, alignment: 4096)
        defer { p.deallocate() }
        p.copyBytes(from: buf)
        try disk.write(UnsafeRawBufferPointer(p), at: 8 << 20)
        let after = try sd.walkStructure(progress: nil)
        #expect(before == 0 && after.counts()[.data, default: 0] == 1)
        #expect(sd.hostRegions().contains { $0.kind == .l1Table })
    }

    @Test("VHDX and VHD regions come from BlockCore's parsed layout, blocks from the BAT")
    func batFormatsHaveRegions() throws {
        let f = try TuiFixture("bat-regions")
        let x = f.dir + "/b.vhdx", v = f.dir + "/d.vhd"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", x, "16M"])
        try TestSupport.qemuIo(x, format: "vhdx", ["write -P 0x42 3M 64k"])
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", v, "16M"])
        try TestSupport.qemuIo(v, format: "vpc", ["write -P 0x42 3M 64k"])
        for p in [x, v] {
            let d = try openDisk(p, options: OpenOptions(writable: false))
            defer { try? d.close() }
            let sd = try #require(d as? any StructuredDisk)
            let kinds = Set(sd.hostRegions().map(\.kind))
            #expect(kinds.contains(.bat), "\(p): \(kinds)")
            let u = try sd.walkStructure(progress: nil)
            #expect(u.counts()[.payload, default: 0] > 0, "\(p): \(u.counts())")
        }
    }
}

import BlockCore
import BlockEngine
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// Step-mode explanations read against qemu-img and qemu-io: the region kinds and host
/// offsets they state for a copy-on-write over a backing file and over a snapshot-shared
/// cluster agree with `qemu-img map` before and after, refcount changes agree with what
/// `qemu-img check` accepts, and the data agrees with qemu-io.
@Suite struct StepTeachingTests {
    /// The extent of `qemu-img map --output=json` holding guest offset `g`: (depth, host offset of `g`).
    func mapAt(_ img: String, _ g: UInt64, extra: [String] = []) throws -> (depth: Int64, host: UInt64?) {
        let r = try TestSupport.qemuImg(["map", "--output=json"] + extra + [img])
        let j = try #require(try? JSONValue.parse(r.stdoutText))
        let ext = try #require(j.arrayValue?.first {
            let s = UInt64($0["start"]?.intValue ?? 0), n = UInt64($0["length"]?.intValue ?? 0)
            return s <= g && g < s + n
        })
        let start = UInt64(ext["start"]?.intValue ?? 0)
        return (ext["depth"]?.intValue ?? 0, ext["offset"]?.intValue.map { UInt64($0) + g - start })
    }

    /// Runs a flush and waits until its completion event reached the view (so every event of
    /// the flush is in the log; "not busy" alone can be seen before the events are drained).
    func flushAndWait(_ app: TUIApp) {
        let before = app.state.live.completedRequests
        app.execute(.fsync)
        pumpUntil(app) { app.state.live.completedRequests > before && !app.state.busy }
    }

    /// Steps one command through to its completion; returns every explanation shown.
    func stepThrough(_ app: TUIApp, _ cmd: ScriptCommand) -> [String] {
        let before = app.state.live.completedRequests
        let from = app.state.stepsExplained
        app.execute(cmd)
        for _ in 0..<200 where app.state.live.completedRequests == before { stepOnce(app) }
        return Array(app.state.stepHistory.suffix(app.state.stepsExplained - from))
    }

    @Test("a 4 KiB write over a backing file is explained as backing, a backing read fills the new cluster, and the host offset is qemu-img map's")
    func cowOverBackingFile() throws {
        let f = try TuiFixture("step-backing")
        let base = f.dir + "/base.qcow2", ov = f.dir + "/ov.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", base, "64M"])
        try TestSupport.qemuIo(base, format: "qcow2", ["write -P 0x11 1M 1M"])
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", ov])
        let g: UInt64 = 0x111000   // inside guest cluster 0x110000 (64 KiB clusters)
        #expect(try mapAt(ov, g).depth == 1, "qemu-img map: the range lives in the backing file before the write")
        #expect(try mapAt(ov, 0x120000).depth == 1)
        let app = try f.app(ov, write: true)
        app.handle(.char("s"))
        // A read of a range qemu-img map placed in the backing file is explained as backing.
        let read = stepThrough(app, .read(offset: 0x120000, length: 4096, pattern: 0x11))
        #expect(read.contains { $0.contains("mapping 0x120000+4096: 1 region, not allocated in this image: the backing file holds the data") }, "\(read.joined(separator: "\n"))")
        let said = stepThrough(app, .write(offset: g, length: 4096, pattern: 0x5a))
        let all = said.joined(separator: "\n")
        #expect(said.contains { $0.contains("mapping 0x111000+4096: 1 region, not allocated in this image: the backing file holds the data") }, "\(all)")
        #expect(said.contains { $0.contains("region 0x111000+4096 before this request: unallocated here; the backing file has the data") }, "\(all)")
        #expect(!all.contains("not allocated here (backing file or zeroes)"))
        let alloc = try #require(said.first { $0.contains("allocate a new host cluster at") }, "\(all)")
        let newCluster = try #require(UInt64(alloc.components(separatedBy: "cluster at 0x")[1].prefix { $0.isHexDigit }, radix: 16))
        // The bytes around the guest data come from the backing file: before and after it.
        #expect(said.contains { $0.contains("read 4096 bytes at guest 0x110000 from the backing file into host \(hex(newCluster))") }, "\(all)")
        #expect(said.contains { $0.contains("read 57344 bytes at guest 0x112000 from the backing file into host \(hex(newCluster + 0x2000))") }, "\(all)")
        #expect(said.contains { $0.contains("L2[17]: unallocated -> data at \(hex(newCluster)) (COPIED)") }, "\(all)")
        #expect(said.contains { $0.contains("refcount of host cluster") && $0.contains("at \(hex(newCluster)): 0 -> 1 (newly allocated)") }, "\(all)")
        app.handle(.escape)
        app.shutdown()
        let after = try mapAt(ov, g)
        #expect(after.depth == 0 && after.host == newCluster + 0x1000, "qemu-img map after: \(after), explained new cluster \(hex(newCluster))")
        let check = try TestSupport.qemuImg(["check", ov])
        #expect(check.status == 0, "\(check.stdoutText)")
        let io = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x11 0x110000 0x1000", "-c", "read -P 0x5a 0x111000 0x1000", "-c", "read -P 0x11 0x112000 0xe000", ov])
        #expect(io.status == 0 && !io.stdoutText.contains("Pattern verification failed"), "\(io.stdoutText)")
    }

    @Test("a write over a snapshot-shared cluster is explained as shared (refcount 2), copied, and later released 2 -> 1, as qemu-img sees it")
    func cowOverSnapshotSharedCluster() throws {
        let f = try TuiFixture("step-shared")
        let img = f.dir + "/s.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x22 0x110000 64k"])
        try TestSupport.qemuImg(["snapshot", "-c", "s1", img])
        let g: UInt64 = 0x110000
        let old = try #require(try mapAt(img, g).host)
        // Oracle for "shared": the snapshot maps the same guest cluster to the same host cluster.
        let snapCopy = f.dir + "/snap.qcow2"
        try FileManager.default.copyItem(atPath: img, toPath: snapCopy)
        try TestSupport.qemuImg(["snapshot", "-a", "s1", snapCopy])
        #expect(try mapAt(snapCopy, g).host == old, "the snapshot and the image share host \(hex(old))")
        let app = try f.app(img, write: true)
        app.handle(.char("s"))
        let said = stepThrough(app, .write(offset: g, length: 4096, pattern: 0x5a))
        let all = said.joined(separator: "\n")
        #expect(said.contains { $0.contains("mapping 0x110000+4096: 1 region, shared at host \(hex(old))") }, "\(all)")
        #expect(said.contains { $0.contains("region 0x110000+4096 before this request: shared — host \(hex(old)) has refcount 2") }, "\(all)")
        #expect(!all.contains("not allocated"), "\(all)")
        let alloc = try #require(said.first { $0.contains("allocate a new host cluster at") }, "\(all)")
        let newCluster = try #require(UInt64(alloc.components(separatedBy: "cluster at 0x")[1].prefix { $0.isHexDigit }, radix: 16))
        #expect(said.contains { $0.contains("copy 61440 bytes from the shared cluster at host \(hex(old + 0x1000)) to host \(hex(newCluster + 0x1000))") }, "\(all)")
        // The L2 table itself was shared with the snapshot: it is copied first.
        #expect(said.contains { $0.contains("L1[0]: L2 table at") && $0.contains("(shared with a snapshot) -> L2 table at") && $0.contains("(COPIED); old L2 table") && $0.hasSuffix("refcount release pending (next flush)") }, "\(all)")
        #expect(said.contains { $0.contains("L2[17]: data at \(hex(old)) (shared, no COPIED) -> data at \(hex(newCluster)) (COPIED)") }, "\(all)")
        // Out of step mode: two flushes make the release of the old cluster stable and apply it.
        app.handle(.escape)
        for _ in 0..<2 { flushAndWait(app) }
        let log = app.state.live.log.joined(separator: "\n")
        #expect(log.contains("refcount of host cluster \(old >> 16) at \(hex(old)): 2 -> 1 (one reference dropped, 1 left; the release that was pending, applied by this flush"), "\(log.suffix(3000))")
        #expect(log.contains("flush: write the dirty refcount blocks"), "\(log.suffix(2000))")
        #expect(log.contains("flush: write the dirty L2 tables"), "\(log.suffix(2000))")
        #expect(log.contains("flush: write the dirty L1 entries"), "\(log.suffix(2000))")
        app.shutdown()
        #expect(try mapAt(img, g).host == newCluster, "qemu-img map after the write")
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "refcounts as qemu-img check counts them: \(check.stdoutText)")
        let io = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x5a 0x110000 0x1000", "-c", "read -P 0x22 0x111000 0xf000", img])
        #expect(io.status == 0 && !io.stdoutText.contains("Pattern verification failed"), "\(io.stdoutText)")
        // The snapshot still reads its old data from the old cluster.
        try TestSupport.qemuImg(["snapshot", "-a", "s1", img])
        let snap = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x22 0x110000 0x10000", img])
        #expect(snap.status == 0 && !snap.stdoutText.contains("Pattern verification failed"), "\(snap.stdoutText)")
    }

    @Test("a discard of an allocated cluster names the cluster it frees; the refcount drops 1 -> 0 after the flushes")
    func discardIsExplained() throws {
        let f = try TuiFixture("step-discard")
        let img = f.dir + "/d.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x33 0x110000 64k"])
        let host = try #require(try mapAt(img, 0x110000).host)
        let app = try f.app(img, write: true)
        app.execute(.discard(offset: 0x110000, length: 65536))
        pumpUntil(app) { !app.state.busy }
        for _ in 0..<2 { flushAndWait(app) }
        let log = app.state.live.log.joined(separator: "\n")
        #expect(log.contains("mapping 0x110000+65536: 1 region, allocated in this image at host \(hex(host))"), "\(log.suffix(2000))")
        #expect(!log.contains("0 regions"), "\(log.suffix(2000))")
        #expect(log.contains("L2[17]: data at \(hex(host)) (COPIED) -> zero"), "\(log.suffix(2000))")
        #expect(log.contains("at \(hex(host)): 1 -> 0 (freed: nothing references it any more; the release that was pending, applied by this flush"), "\(log.suffix(2000))")
        #expect(log.contains("L2[17]: data at \(hex(host)) (COPIED) -> zero; old cluster \(hex(host)): refcount release pending (next flush)"), "\(log.suffix(2000))")
        app.shutdown()
        #expect(try mapAt(img, 0x110000).host == nil, "qemu-img map: the range has no data after the discard")
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText)")
    }
}

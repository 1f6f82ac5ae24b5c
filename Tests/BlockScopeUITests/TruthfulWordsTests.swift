import BlockCore
import BlockEngine
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// Issue 21's "words that are true", each on an image made with qemu-img/qemu-io and read
/// against qemu-img: a release ADR 0006 defers is "release pending (next flush)", never
/// LEAKED, and exactly the leaks qemu-img check sees on disk meanwhile; the Refcounts summary
/// counts as qemu-img check does; "backing" only where qemu-img map puts data at depth 1.
@Suite struct TruthfulWordsTests {
    /// `qemu-img check -U --output=json` (the TUI may hold the image open): leaks, corruptions.
    static func qemuCheck(_ img: String) throws -> (leaks: Int64, corruptions: Int64) {
        let r = try TestSupport.qemuImg(["check", "-U", "--output=json", img])
        let j = try #require(try? JSONValue.parse(r.stdoutText), "qemu-img check: \(r.stdoutText) \(r.stderr)")
        // qemu-img leaves out a count that is 0.
        #expect(j["check-errors"]?.intValue ?? 0 == 0, "qemu-img check: \(r.stdoutText)")
        return (j["leaks"]?.intValue ?? 0, j["corruptions"]?.intValue ?? 0)
    }

    /// Host clusters `qemu-img check -U` names as leaked ("Leaked cluster N refcount=...").
    static func qemuLeakedClusters(_ img: String) throws -> Set<Int> {
        let r = try TestSupport.qemuImg(["check", "-U", img])
        var out = Set<Int>()
        for line in (r.stdoutText + r.stderr).split(separator: "\n") where line.hasPrefix("Leaked cluster ") {
            if let n = Int(line.dropFirst("Leaked cluster ".count).prefix { $0.isNumber }) { out.insert(n) }
        }
        return out
    }

    /// Rereads the layout and waits for the fresh walk (what the app does after metadata changes).
    static func freshUsage(_ app: TUIApp) throws -> (Qcow2Inspection, HostUseMap) {
        app.state.reloadLayout()
        let q = try #require(app.state.image.inspector as? Qcow2Inspection)
        return (q, try #require(q.waitForUsage()))
    }

    @Test("a COW over a snapshot-shared cluster, then one fsync: the deferred releases are 'release pending (next flush)' in step mode, Refcounts, Map and legend, exactly qemu-img check's on-disk leaks; the next flush applies them")
    func deferredReleaseIsPendingNotLeaked() throws {
        let f = try TuiFixture("release-pending")
        let img = f.dir + "/s.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x22 0x110000 64k"])
        try TestSupport.qemuImg(["snapshot", "-c", "s1", img])
        let steps = StepTeachingTests()
        let old = try #require(try steps.mapAt(img, 0x110000).host)
        let app = try f.app(img, write: true)
        app.handle(.char("s"))
        let said = steps.stepThrough(app, .write(offset: 0x110000, length: 4096, pattern: 0x5a))
        let all = said.joined(separator: "\n")
        // At the write that defers them: the old data cluster and the old (shared) L2 table.
        #expect(said.contains { $0.contains("L2[17]: data at \(hex(old)) (shared, no COPIED) -> data at") && $0.hasSuffix("; old cluster \(hex(old)): refcount release pending (next flush)") }, "\(all)")
        let l1Line = try #require(said.first { $0.contains("L1[0]: L2 table at") }, "\(all)")
        #expect(l1Line.contains("; old L2 table") && l1Line.hasSuffix("refcount release pending (next flush)"), "\(l1Line)")
        // Step mode at 80 columns shows the whole explanation of the L2 change (wrapped).
        app.state.lastStep = said.first { $0.contains("L2[17]:") }
        let stepScreen = draw(InFlightView(), app, width: 80, height: 24).text
        let stepWords = stepScreen.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
        #expect(stepWords.contains("old cluster \(hex(old)): refcount release pending (next flush)"), "\(stepScreen)")
        app.handle(.escape)
        steps.flushAndWait(app)
        // After one flush the new mappings are on disk and the old refcounts not yet dropped:
        // qemu-img check sees those clusters as leaks; blockscope names them pending releases.
        let onDisk = try Self.qemuCheck(img)
        let leakedOnDisk = try Self.qemuLeakedClusters(img)
        #expect(onDisk.corruptions == 0 && onDisk.leaks == 2 && leakedOnDisk.contains(Int(old >> 16)), "qemu-img check: \(onDisk) \(leakedOnDisk)")
        let (q, u) = try Self.freshUsage(app)
        let r = try #require(u.report)
        #expect(r.leaks == 0 && r.corruptions == 0, "walk: \(r.messages)")
        #expect(Int64(r.releasesPending) == onDisk.leaks)
        let pendingClusters = Set((0..<u.count).filter { u.releasePending($0) > 0 })
        #expect(pendingClusters == leakedOnDisk, "pending \(pendingClusters), qemu-img leaked \(leakedOnDisk)")
        let rc = draw(RefcountsView(), app).text
        #expect(rc.contains("0 leaked, 0 corruptions, 2 releases pending (next flush)"), "\(rc)")
        #expect(!rc.contains("LEAKED"))
        // At 80x24 the phrase stays whole on both rows and on the summary line.
        let small = draw(RefcountsView(), app, width: 80, height: 24).text.split(separator: "\n")
        #expect(small.filter { $0.contains(" refcount 2 release pending (next flush)") }.count == 2, "\(small.joined(separator: "\n"))")
        #expect(small.contains { $0.contains("0 leaked, 0 corruptions, 2 releases pending (next flush)") })
        let row = RefcountsView().clusterRow(q, Int(old >> 16))
        #expect(row.0.contains("release pending (next flush)") && !row.0.contains("LEAKED") && row.1 == .warning, "\(row.0)")
        let cell = q.hostCell(old, 65536)
        #expect(cell.tone == .warning && cell.text.contains("release pending (next flush)"), "\(cell)")
        #expect(MapLegend.items(q.legend).contains { $0.0 == .warning && $0.1.hasPrefix("release pending (next flush)") })
        let ov = draw(OverviewView(), app).text
        #expect(ov.contains("2 releases pending (next flush)"), "\(ov)")
        // The flush that applies them says so, in step mode and in the events log.
        app.handle(.char("s"))
        let flushSaid = steps.stepThrough(app, .fsync)
        app.handle(.escape)
        let applied = "at \(hex(old)): 2 -> 1 (one reference dropped, 1 left; the release that was pending, applied by this flush"
        #expect(flushSaid.contains { $0.contains(applied) }, "\(flushSaid.joined(separator: "\n"))")
        #expect(app.state.live.log.contains { $0.contains(applied) })
        let after = try Self.freshUsage(app).1
        #expect(after.report?.leaks == 0 && after.report?.corruptions == 0 && after.report?.releasesPending == 0, "\(after.report?.messages ?? [])")
        let clean = draw(RefcountsView(), app).text
        #expect(clean.contains("clean: every refcount equals the references found"), "\(clean)")
        let final = try Self.qemuCheck(img)
        #expect(final.leaks == 0 && final.corruptions == 0, "qemu-img check after the second flush: \(final)")
        app.shutdown()
    }

    @Test("a refcount set too high by hand and one too low: the walk, Refcounts and Overview count the leaks and corruptions qemu-img check counts (COPIED mismatches included)")
    func handCraftedRefcountsCountAsQemuImgCheck() throws {
        let f = try TuiFixture("rc-hand")
        let img = try TruthfulWordsTests.refcountDamagedImage(f.dir)
        let qemu = try Self.qemuCheck(img)
        #expect(qemu.leaks == 1 && qemu.corruptions == 3, "qemu-img check: \(qemu)")
        let u = try Qcow2Structure(path: img).walk()
        let r = try #require(u.report)
        #expect(Int64(r.leaks) == qemu.leaks && Int64(r.corruptions) == qemu.corruptions, "walk: \(r.messages)")
        let app = try f.app(img)
        let rc = draw(RefcountsView(), app).text
        #expect(rc.contains("\(qemu.leaks) leaked, \(qemu.corruptions) corruptions (as check counts them"), "\(rc)")
        let ov = draw(OverviewView(), app).text
        #expect(ov.contains("\(qemu.leaks) leaked, \(qemu.corruptions) corruptions"), "\(ov)")
        let q = try #require(app.state.image.inspector as? Qcow2Inspection)
        #expect(RefcountsView().clusterRow(q, 5).0.contains("LEAKED (1 extra)"))
        #expect(RefcountsView().clusterRow(q, 5).0.contains("COPIED flag wrong"))
        #expect(RefcountsView().clusterRow(q, 6).0.contains("OVER-REFERENCED"))
        app.shutdown()
    }

    /// A 64 MiB QCOW2 with 128 KiB of data at 1 MiB (host clusters 5 and 6), then cluster 5's
    /// refcount patched to 2 (too high) and cluster 6's to 0 (too low) in the refcount block.
    static func refcountDamagedImage(_ dir: String) throws -> String {
        let img = dir + "/rc.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0xab 1M 128k"])
        let map = try StepTeachingTests().mapAt(img, 1 << 20)
        #expect(map.host == 0x50000, "qemu-img map: data at host \(map.host.map { hex($0) } ?? "-")")
        let s = try Qcow2Structure(path: img)
        let block = try #require(s.metadata?.refcountTable.first) & Qcow2Entry.offsetMask
        let w = try SystemFile(path: img, writable: true)
        try w.writeBytes([0, 2], at: block + 5 * 2)
        try w.writeBytes([0, 0], at: block + 6 * 2)
        w.close()
        return img
    }

    @Test("an overlay over a backing file holding data only in 0-4 MiB: Map and step mode say 'backing' exactly where qemu-img map puts data at depth 1, and 'reads as zeroes' at 30 MiB")
    func backingOnlyWhereTheChainHoldsData() throws {
        let f = try TuiFixture("partial-backing")
        let base = f.dir + "/base.qcow2", ov = f.dir + "/ov.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", base, "64M"])
        try TestSupport.qemuIo(base, format: "qcow2", ["write -P 0x11 0 4M"])
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", ov])
        let r = try TestSupport.qemuImg(["map", "--output=json", ov])
        let extents = try #require(try JSONValue.parse(r.stdoutText).arrayValue)
        var backingData: UInt64 = 0
        for e in extents where (e["depth"]?.intValue ?? 0) >= 1 && e["data"]?.boolValue == true { backingData += UInt64(e["length"]?.intValue ?? 0) }
        #expect(backingData == 4 << 20, "qemu-img map: \(r.stdoutText)")
        let at30 = try #require(extents.first { UInt64($0["start"]?.intValue ?? 0) <= 30 << 20 && 30 << 20 < UInt64(($0["start"]?.intValue ?? 0) + ($0["length"]?.intValue ?? 0)) })
        #expect(at30["depth"]?.intValue == 1 && at30["zero"]?.boolValue == true && at30["data"]?.boolValue == false, "qemu-img map at 30 MiB: \(at30)")
        let app = try f.app(ov, write: true)
        let q = try #require(app.state.image.inspector as? Qcow2Inspection)
        // The Map's guest grid, one cell per MiB: backing exactly where qemu-img map says data.
        var painted: UInt64 = 0
        for mib in 0..<64 where q.guestCell(UInt64(mib) << 20, 1 << 20).tone == .backing { painted += 1 << 20 }
        #expect(painted == backingData, "Map paints \(painted >> 20) MiB as backing; qemu-img map: \(backingData >> 20) MiB")
        let cell30 = q.guestCell(30 << 20, 1 << 20)
        #expect(!cell30.text.contains("backing file") && cell30.text.contains("reads as zeroes") && cell30.tone != .backing, "\(cell30)")
        #expect(q.guestCell(1 << 20, 1 << 20).text.contains("read from the backing file"))
        // Step mode: a read and a write at 30 MiB.
        let steps = StepTeachingTests()
        app.handle(.char("s"))
        let read = steps.stepThrough(app, .read(offset: 30 << 20, length: 4096, pattern: 0))
        let readText = read.joined(separator: "\n")
        #expect(read.contains { $0.contains("mapping 0x1e00000+4096: 1 region, unallocated in this image and in its backing chain: reads as zeroes") }, "\(readText)")
        #expect(!readText.contains("backing file holds"), "\(readText)")
        let write = steps.stepThrough(app, .write(offset: 30 << 20, length: 4096, pattern: 0x5a))
        #expect(write.contains { $0.contains("region 0x1e00000+4096 before this request: unallocated here and in the backing chain (reads as zeroes)") }, "\(write.joined(separator: "\n"))")
        let inside = steps.stepThrough(app, .read(offset: 1 << 20, length: 4096, pattern: 0x11))
        #expect(inside.contains { $0.contains("not allocated in this image: the backing file holds the data, so the read goes to the backing file") }, "\(inside.joined(separator: "\n"))")
        app.handle(.escape)
        // L1/L2: the write gave L1[0] an L2 table; its unallocated entries say backing only in 0-4 MiB.
        app.state.reloadLayout()
        let at31 = L1L2View().l2Row(q, 0, 496).0, at1 = L1L2View().l2Row(q, 0, 16).0
        #expect(at31.contains("unallocated (zeroes)") && !at31.contains("backing"), "\(at31)")
        #expect(at1.contains("backing"), "\(at1)")
        app.shutdown()
    }

    @Test("reads are explained as reads; a request's id is printed in the same hexadecimal form as the ring's user_data in step mode and In-flight")
    func readsAreReadsAndIdsAreHex() throws {
        let f = try TuiFixture("read-words")
        let img = try f.qcow2()
        let host = try #require(try StepTeachingTests().mapAt(img, 1 << 20).host)
        let app = try f.app(img, write: true)
        app.handle(.char("s"))
        let said = StepTeachingTests().stepThrough(app, .read(offset: 1 << 20, length: 4096, pattern: 0xab))
        app.handle(.escape)
        let all = said.joined(separator: "\n")
        #expect(said.contains { $0.contains("allocated in this image at host \(hex(host)) (its own cluster): the read goes to host \(hex(host))") }, "\(all)")
        #expect(!all.contains("a write goes in place"), "\(all)")
        // Every "req X" is hexadecimal, like every user_data.
        for line in said where line.contains("req ") {
            #expect(line.components(separatedBy: "req ").dropFirst().allSatisfy { $0.hasPrefix("0x") }, "\(line)")
        }
        #expect(said.contains { $0.contains("user_data 0x") }, "\(all)")
        app.shutdown()
    }

    @Test("a VHDX read is explained in the BAT's words (PAYLOAD_BLOCK_FULLY_PRESENT), never 'refcount'")
    func vhdxMappingUsesBatWords() throws {
        let f = try TuiFixture("vhdx-words")
        let img = f.dir + "/v.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", img, "64M"])
        try TestSupport.qemuIo(img, format: "vhdx", ["write -P 0x44 0 1M"])
        let m = try TestSupport.qemuImg(["map", "--output=json", "-f", "vhdx", img])
        #expect(m.stdoutText.contains("\"data\": true"), "qemu-img map: \(m.stdoutText)")
        let app = try f.app(img, write: true)
        app.handle(.char("s"))
        let said = StepTeachingTests().stepThrough(app, .read(offset: 0, length: 4096, pattern: 0x44))
        // A write to a block qemu-io never wrote: the BAT entry changes in MS-VHDX's words.
        let wrote = StepTeachingTests().stepThrough(app, .write(offset: 32 << 20, length: 4096, pattern: 0x66))
        app.handle(.escape)
        let all = (said + wrote).joined(separator: "\n")
        #expect(said.contains { $0.contains("BAT: payload block at host") && $0.contains("PAYLOAD_BLOCK_FULLY_PRESENT") && $0.hasSuffix(": read from there") }, "\(all)")
        // qemu-img creates the entries ZERO (NOT_PRESENT with other tools); either is the BAT's word.
        #expect(wrote.contains { $0.contains(": ZERO -> FULLY_PRESENT at 0x") || $0.contains(": NOT_PRESENT -> FULLY_PRESENT at 0x") }, "\(all)")
        #expect(wrote.contains { $0.contains("allocate a new payload block at") }, "\(all)")
        #expect(!all.contains("refcount") && !all.contains("fully present") && !all.contains("host cluster"), "\(all)")
        app.shutdown()
        let io = try TestSupport.run("qemu-io", ["-f", "vhdx", "-c", "read -P 0x66 32M 4k", "-c", "read -P 0x44 0 1M", img])
        #expect(io.status == 0 && !io.stdoutText.contains("Pattern verification failed"), "\(io.stdoutText)")
    }
    @Test("a dynamic VHD read and a first write are explained in VHD BAT words (block sector, 0xFFFFFFFF), never 'refcount' or 'cluster'")
    func vhdMappingUsesBatWords() throws {
        let f = try TuiFixture("vhd-words")
        let img = f.dir + "/v.vhd"
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", img, "64M"])
        try TestSupport.qemuIo(img, format: "vpc", ["write -P 0x44 0 1M"])
        let app = try f.app(img, write: true)
        app.handle(.char("s"))
        let said = StepTeachingTests().stepThrough(app, .read(offset: 0, length: 4096, pattern: 0x44))
        let wrote = StepTeachingTests().stepThrough(app, .write(offset: 32 << 20, length: 4096, pattern: 0x66))
        app.handle(.escape)
        let all = (said + wrote).joined(separator: "\n")
        #expect(said.contains { $0.contains("VHD BAT entry: block data at host") && $0.hasSuffix(": read from there") }, "\(all)")
        #expect(wrote.contains { $0.contains(": 0xFFFFFFFF (no block) -> sector ") }, "\(all)")
        #expect(!all.contains("refcount") && !all.contains("cluster"), "\(all)")
        app.shutdown()
        let io = try TestSupport.run("qemu-io", ["-f", "vpc", "-c", "read -P 0x66 32M 4k", "-c", "read -P 0x44 0 1M", img])
        #expect(io.status == 0 && !io.stdoutText.contains("Pattern verification failed"), "\(io.stdoutText)")
    }

    @Test("a truncated QCOW2 (its L2 table past the end of the file): Map, L1/L2 and Refcounts say unreadable with the reader's error, never unallocated or leaked; check counts as qemu-img check")
    func truncatedL2IsUnreadable() throws {
        let f = try TuiFixture("trunc-l2")
        let img = f.dir + "/t.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0xab 1M 128k"])
        let l2 = try #require(Qcow2Structure(path: img).l1.first) & Qcow2Entry.offsetMask
        #expect(l2 == 0x40000)
        let fh = try FileHandle(forUpdating: URL(fileURLWithPath: img))
        try fh.truncate(atOffset: l2)   // the L2 table and the data after it are gone
        try fh.close()
        let qemu = try Self.qemuCheck(img)
        #expect(qemu.corruptions == 1 && qemu.leaks == 0, "qemu-img check: \(qemu)")
        let u = try Qcow2Structure(path: img).walk()
        #expect(Int64(u.report?.corruptions ?? -1) == qemu.corruptions && Int64(u.report?.leaks ?? -1) == qemu.leaks, "\(u.report?.messages ?? [])")
        let app = try f.app(img)
        let q = try #require(app.state.image.inspector as? Qcow2Inspection)
        let cell = q.guestCell(1 << 20, 1 << 20)
        #expect(cell.tone == .error && cell.text.contains("unreadable") && cell.text.contains("beyond the end of the file") && !cell.text.contains("unallocated"), "\(cell)")
        #expect(L1L2View().l1Row(q, 0).0.contains("L2 table at 0x40000 UNREADABLE: qcow2: L2 table at 0x40000 lies beyond the end of the file"), "\(L1L2View().l1Row(q, 0).0)")
        #expect(q.mapGuest(1 << 20).text.contains("unreadable"))
        let rc = draw(RefcountsView(), app).text
        #expect(rc.contains("0 leaked, 1 corruptions") && rc.contains("UNREADABLE: L2 table at 0x40000 lies beyond the end of the file (size 0x40000)"), "\(rc)")
        #expect(!rc.contains("LEAKED"))
        app.shutdown()
    }

    @Test("a QCOW2 truncated before its snapshot table: the tables are unreadable with the reason in L1/L2, the Map and Refcounts, and nothing is called unallocated or LEAKED")
    func truncatedTablesAreUnreadable() throws {
        let f = try TuiFixture("trunc-tables")
        let img = f.dir + "/t.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0xab 1M 128k"])
        try TestSupport.qemuImg(["snapshot", "-c", "s1", img])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0xcd 1M 4k"])
        let snapTable = try #require(Qcow2Structure(path: img).header?.snapshotsOffset)
        let fh = try FileHandle(forUpdating: URL(fileURLWithPath: img))
        try fh.truncate(atOffset: 0x50000)
        try fh.close()
        #expect(snapTable >= 0x50000, "qemu-img put the snapshot table at \(hex(snapTable))")
        // qemu-img check still counts (corruptions for what lies past the end); the image is damaged.
        let qemu = try Self.qemuCheck(img)
        #expect(qemu.corruptions > 0, "qemu-img check: \(qemu)")
        let app = try f.app(img)
        let q = try #require(app.state.image.inspector as? Qcow2Inspection)
        let l1 = draw(L1L2View(), app).text
        #expect(l1.contains("L1 table at 0x30000: UNREADABLE") && l1.contains("lies beyond the end of the file"), "\(l1)")
        let cell = q.guestCell(1 << 20, 1 << 20)
        #expect(cell.tone == .error && cell.text.contains("unreadable") && cell.text.contains("beyond the end of the file") && !cell.text.contains("unallocated here"), "\(cell)")
        let rc = draw(RefcountsView(), app).text
        #expect(rc.contains("tables unreadable") && !rc.contains("LEAKED") && !rc.contains("leaked,"), "\(rc)")
        app.shutdown()
    }

    @Test("an L1 entry pointing past the end of the file: the clusters only that table could reference are 'references unknown', not LEAKED, while the summary keeps qemu-img check's counts")
    func l2PastTheEndLeavesReferencesUnknown() throws {
        let f = try TuiFixture("l2-past-end")
        let img = f.dir + "/p.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0xab 1M 128k"])
        let s = try Qcow2Structure(path: img)
        let h = try #require(s.header)
        let e = try #require(s.l1.first)
        var b = [UInt8](repeating: 0, count: 8)
        let moved = (e & ~Qcow2Entry.offsetMask) | 0x100000   // 1 MiB: past the 448 KiB file
        for k in 0..<8 { b[k] = UInt8(truncatingIfNeeded: moved >> UInt64(56 - 8 * k)) }
        let w = try SystemFile(path: img, writable: true)
        try w.writeBytes(b, at: h.l1TableOffset)
        w.close()
        let qemu = try Self.qemuCheck(img)
        #expect(qemu.leaks == 3 && qemu.corruptions == 2, "qemu-img check: \(qemu)")
        let app = try f.app(img)
        let q = try #require(app.state.image.inspector as? Qcow2Inspection)
        let u = try #require(q.waitForUsage())
        #expect(Int64(u.report?.leaks ?? -1) == qemu.leaks && Int64(u.report?.corruptions ?? -1) == qemu.corruptions, "\(u.report?.messages ?? [])")
        let rc = draw(RefcountsView(), app).text
        #expect(rc.contains("3 leaked, 2 corruptions") && rc.contains("UNREADABLE: L2 table at 0x100000"), "\(rc)")
        for c in 4...6 {
            let row = RefcountsView().clusterRow(q, c)
            #expect(row.0.contains("references unknown") && !row.0.contains("LEAKED"), "\(row.0)")
            #expect(q.hostCell(UInt64(c) << 16, 65536).tone != .error, "\(q.hostCell(UInt64(c) << 16, 65536))")
        }
        app.shutdown()
    }
}

/// The guided tour (demo-images/demo.script) says what the views show: after its shared-cluster
/// write the old cluster's release is pending, after its first flush still pending (and
/// qemu-img check sees exactly those clusters as leaks on disk), after its second flush applied.
@Suite struct DemoTourWordsTests {
    @Test("the tour's pauses about the snapshot-shared write and the two flushes match Refcounts and qemu-img check")
    func tourWordsMatchTheViews() throws {
        let f = try TuiFixture("demo-tour")
        let root = TestSupport.packageRoot.appendingPathComponent("demo-images").path
        for n in ["demo.qcow2", "base.qcow2"] { try FileManager.default.copyItem(atPath: root + "/" + n, toPath: f.dir + "/" + n) }
        let script = try String(contentsOfFile: root + "/demo.script", encoding: .utf8)
        #expect(!script.contains("refcount dropped"), "the tour must not say the refcount dropped before a flush applied it")
        #expect(script.contains("release pending (next flush)"))
        let img = f.dir + "/demo.qcow2"
        let app = try f.app(img, write: true)
        func run(_ c: ScriptCommand) {
            let before = app.state.live.completedRequests
            app.execute(c)
            pumpUntil(app) { app.state.live.completedRequests > before && !app.state.busy }
        }
        run(.write(offset: 24 << 20, length: 64 << 10, pattern: 0x5a))
        run(.write(offset: 256 << 10, length: 4 << 10, pattern: 0x61))
        run(.write(offset: 1088 << 10, length: 4 << 10, pattern: 0x62))
        var u = try TruthfulWordsTests.freshUsage(app).1
        #expect(u.report?.leaks == 0 && u.report?.corruptions == 0 && (u.report?.releasesPending ?? 0) > 0, "after the shared-cluster write: \(u.report?.messages ?? [])")
        #expect(!draw(RefcountsView(), app).text.contains("LEAKED"))
        run(.write(offset: 8196 << 10, length: 4 << 10, pattern: 0x63))
        run(.zero(offset: 16448 << 10, length: 64 << 10))
        run(.discard(offset: 1152 << 10, length: 64 << 10))
        run(.fsync)
        u = try TruthfulWordsTests.freshUsage(app).1
        // The compressed cluster's release is named at the write; its cluster is among the pending.
        let compressedLine = try #require(app.state.live.log.first { $0.contains("; old compressed bytes at 0x") }, "\(app.state.live.log.suffix(40).joined(separator: "\n"))")
        let compressedAt = try #require(UInt64(compressedLine.components(separatedBy: "; old compressed bytes at 0x")[1].prefix { $0.isHexDigit }, radix: 16))
        #expect(u.releasePending(Int(compressedAt >> 16)) > 0, "\(compressedLine)")
        let onDisk = try TruthfulWordsTests.qemuCheck(img)
        let pending = Set((0..<u.count).filter { u.releasePending($0) > 0 })
        #expect(u.report?.leaks == 0 && u.report?.corruptions == 0, "\(u.report?.messages ?? [])")
        let leakedOnDisk = try TruthfulWordsTests.qemuLeakedClusters(img)
        #expect(onDisk.corruptions == 0 && Int(onDisk.leaks) == pending.count && pending == leakedOnDisk,
                "after the first flush: pending \(pending.sorted()), qemu-img check \(onDisk)")
        run(.fsync)
        u = try TruthfulWordsTests.freshUsage(app).1
        #expect(u.report?.leaks == 0 && u.report?.corruptions == 0 && u.report?.releasesPending == 0, "\(u.report?.messages ?? [])")
        let final = try TruthfulWordsTests.qemuCheck(img)
        #expect(final.leaks == 0 && final.corruptions == 0, "after the second flush: \(final)")
        app.shutdown()
    }
}

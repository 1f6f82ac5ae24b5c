import BlockCore
import Foundation
import Testing
import TestSupport

/// `blockscope explain` on images damaged byte by byte the way cloud-hypervisor's 2026 bugs
/// damaged theirs (DAMAGE.md), with the guest data known: one finding per cause with exact
/// ranges, against qemu-img check's counts and qemu-io reads of the guest data.
@Suite("explain: findings by cause")
struct ExplainDamageTests {
    @Test("an L2 table unlinked from L1: one orphaned-l2-table finding with its 64 intact data clusters, the empty slot it came from; re-linking it brings the data back")
    func unlinkedL2() throws {
        let dir = try TestSupport.makeTempDir("explain-unlink")
        defer { TestSupport.removeTempDir(dir) }
        let img = try ExplainFixtures.threeWindows(dir, "u.qcow2")
        let l1 = try ExplainFixtures.word(img, at: 40)
        let entry = try ExplainFixtures.word(img, at: l1 + 8)
        let l2 = entry & Qcow2Entry.offsetMask
        try ExplainFixtures.put(img, at: l1 + 8, [UInt8](repeating: 0, count: 8))
        let check = try ExplainFixtures.qemuCheck(img)
        #expect(int(check["leaks"]) == 65, "qemu-img sees 65 leaks and no cause")
        let j = try ExplainFixtures.explain(img)
        let f = findings(j)
        #expect(f.count == 1, "one cause, not 65 leaks: \(f)")
        #expect(str(f.first?["class"]) == "orphaned-l2-table" && int(f.first?["clusters"]) == 64 && str(f.first?["looks_like"]) == "l2-table")
        let host = pairs(f.first?["host"]), guest = pairs(f.first?["guest"]), text = str(f.first?["text"])
        let dataBytes = host.dropFirst().reduce(Int64(0)) { $0 + $1[1] }
        #expect(host.first == [Int64(l2), 65536])
        #expect(dataBytes == 64 * 65536, "the 64 data clusters")
        #expect(guest.contains([Int64(ExplainFixtures.window), Int64(ExplainFixtures.window)]), "the window of L1 slot 1")
        #expect(text.contains("64 intact"))
        #expect(int(j["space"]?["leaked"]) == int(check["leaks"]) * 65536 && total(j["space"]) == int(j["file_size"]))
        // The finding's advice works: writing the entry back restores the window's data.
        try ExplainFixtures.put(img, at: l1 + 8, ExplainFixtures.be(entry))
        let r = try TestSupport.qemuImg(["check", img])
        #expect(r.status == 0)
        try TestSupport.qemuIo(img, format: "qcow2", ["read -P 0x22 512M 4M"])
    }

    @Test("one host cluster referenced by two L2 entries: a double-reference finding naming both guest offsets; the cluster the second entry lost is a leak")
    func doubleReference() throws {
        let dir = try TestSupport.makeTempDir("explain-double")
        defer { TestSupport.removeTempDir(dir) }
        let img = try ExplainFixtures.threeWindows(dir, "d.qcow2")
        let l2 = try ExplainFixtures.l2Offset(img, l1Index: 0)
        let e3 = try ExplainFixtures.word(img, at: l2 + 3 * 8)
        let lost = try ExplainFixtures.word(img, at: l2 + 5 * 8) & Qcow2Entry.offsetMask
        try ExplainFixtures.put(img, at: l2 + 5 * 8, ExplainFixtures.be(e3))
        let check = try ExplainFixtures.qemuCheck(img)
        #expect(int(check["corruptions"]) >= 1 && int(check["leaks"]) == 1)
        let j = try ExplainFixtures.explain(img)
        let f = findings(j)
        let d = f.first { str($0["class"]) == "double-reference" }
        #expect(pairs(d?["host"]) == [[Int64(e3 & Qcow2Entry.offsetMask), 65536]])
        #expect(pairs(d?["guest"]) == [[3 * 65536, 65536], [5 * 65536, 65536]])
        let leak = f.first { str($0["class"]) == "leaked-cluster" }
        #expect(pairs(leak?["host"]) == [[Int64(lost), 65536]])
        #expect(f.count == 2, "\(f)")
    }

    @Test("an L2 table overwritten with guest data: one metadata-overwritten finding (looks like guest data) for its window and the 64 data clusters it orphaned, where qemu-img check prints thousands of lines")
    func l2OverwrittenWithData() throws {
        let dir = try TestSupport.makeTempDir("explain-l2data")
        defer { TestSupport.removeTempDir(dir) }
        let img = try ExplainFixtures.threeWindows(dir, "g.qcow2")
        let l2 = try ExplainFixtures.l2Offset(img, l1Index: 1)
        try ExplainFixtures.put(img, at: l2, TestSupport.pseudoRandomBytes(count: 65536, seed: 22))
        let qc = try TestSupport.qemuImg(["check", img])
        let lines = (qc.stdoutText + qc.stderr).split(separator: "\n").count
        #expect(lines > 1000, "qemu-img check: \(lines) lines")
        let j = try ExplainFixtures.explain(img)
        let f = findings(j)
        #expect(f.count == 1, "\(f)")
        #expect(str(f.first?["class"]) == "metadata-overwritten" && str(f.first?["looks_like"]) == "guest-data")
        #expect(pairs(f.first?["host"]).first == [Int64(l2), 65536])
        #expect(pairs(f.first?["guest"]) == [[Int64(ExplainFixtures.window), Int64(ExplainFixtures.window)]])
        #expect(int(f.first?["clusters"]) == 64)
        #expect(total(j["space"]) == int(j["file_size"]) && int(j["space"]?["leaked"]) == 64 * 65536)
    }

    @Test("an L2 table overwritten with a refcount block: metadata-overwritten, looks like refcount-block, for its window")
    func l2OverwrittenWithRefcountBlock() throws {
        let dir = try TestSupport.makeTempDir("explain-l2ref")
        defer { TestSupport.removeTempDir(dir) }
        let img = try ExplainFixtures.threeWindows(dir, "r.qcow2")
        let l2 = try ExplainFixtures.l2Offset(img, l1Index: 1)
        let refblock = try ExplainFixtures.word(img, at: try ExplainFixtures.word(img, at: 48)) & Qcow2Entry.offsetMask
        try ExplainFixtures.put(img, at: l2, try ExplainFixtures.get(img, at: refblock, count: 65536))
        let check = try ExplainFixtures.qemuCheck(img)
        #expect(int(check["corruptions"]) > 0 && int(check["leaks"]) == 64)
        let j = try ExplainFixtures.explain(img)
        let f = findings(j)
        #expect(f.count == 1, "\(f)")
        #expect(str(f.first?["class"]) == "metadata-overwritten" && str(f.first?["looks_like"]) == "refcount-block")
        #expect(pairs(f.first?["guest"]) == [[Int64(ExplainFixtures.window), Int64(ExplainFixtures.window)]] && int(f.first?["clusters"]) == 64)
    }

    @Test("six L2 tables overwritten with refcount-block bytes and two with data (cloud-hypervisor #8606): eight findings, each with its window and its own 32 data clusters, where qemu-img check prints tens of thousands of lines")
    func manyTablesOverwritten() throws {
        let dir = try TestSupport.makeTempDir("explain-8606")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/m.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "8G"])
        try TestSupport.qemuIo(img, format: "qcow2", (0..<12).map { "write -P \($0 + 1) \($0 * 512)M 2M" })
        let refblock = try ExplainFixtures.get(img, at: 0x20000, count: 65536)
        var tables: [UInt64: UInt64] = [:]
        for w: UInt64 in [1, 2, 3, 4, 5, 6, 8, 9] {
            let l2 = try ExplainFixtures.l2Offset(img, l1Index: w)
            tables[w] = l2
            try ExplainFixtures.put(img, at: l2, w < 8 ? refblock : TestSupport.pseudoRandomBytes(count: 65536, seed: w))
        }
        let qc = try TestSupport.qemuImg(["check", img])
        #expect((qc.stdoutText + qc.stderr).split(separator: "\n").count > 10000)
        let f = findings(try ExplainFixtures.explain(img))
        #expect(f.count == 8, "\(f.map { str($0["class"]) })")
        for (w, l2) in tables {
            let g = f.first { pairs($0["host"]).first == [Int64(l2), 65536] }
            #expect(str(g?["class"]) == "metadata-overwritten" && str(g?["looks_like"]) == (w < 8 ? "refcount-block" : "guest-data"))
            #expect(pairs(g?["guest"]) == [[Int64(w * ExplainFixtures.window), Int64(ExplainFixtures.window)]] && int(g?["clusters"]) == 32)
            #expect(pairs(g?["host"]).dropFirst().map { $0 } == [[Int64(l2 + 65536), 2 << 20]], "the 32 data clusters QEMU wrote after the table")
        }
    }

    @Test("an L2 table erased after its data was written (cloud-hypervisor #8624): qemu-img check sees 64 leaks and no error; explain names the zeroed table, its window and its 64 data clusters")
    func erasedL2Table() throws {
        let dir = try TestSupport.makeTempDir("explain-8624")
        defer { TestSupport.removeTempDir(dir) }
        let img = try ExplainFixtures.threeWindows(dir, "e.qcow2")
        let l2 = try ExplainFixtures.l2Offset(img, l1Index: 1)
        try ExplainFixtures.put(img, at: l2, [UInt8](repeating: 0, count: 65536))
        let check = try ExplainFixtures.qemuCheck(img)
        #expect(int(check["leaks"]) == 64 && int(check["corruptions"]) == -1)
        let f = findings(try ExplainFixtures.explain(img))
        #expect(f.count == 1 && str(f.first?["class"]) == "metadata-overwritten" && str(f.first?["looks_like"]) == "zeroes", "\(f)")
        #expect(pairs(f.first?["host"]) == [[Int64(l2), 65536], [Int64(l2 + 65536), 4 << 20]] && int(f.first?["clusters"]) == 64)
        #expect(pairs(f.first?["guest"]) == [[Int64(ExplainFixtures.window), Int64(ExplainFixtures.window)]])
    }

    @Test("a relocated refcount block left behind with its refcount (cloud-hypervisor #8597): one stranded-refcount-block finding, not a bare leak")
    func strandedRefcountBlock() throws {
        let dir = try TestSupport.makeTempDir("explain-strand")
        defer { TestSupport.removeTempDir(dir) }
        let img = try ExplainFixtures.threeWindows(dir, "s.qcow2")
        let refblock = try ExplainFixtures.word(img, at: try ExplainFixtures.word(img, at: 48)) & Qcow2Entry.offsetMask
        let size = UInt64(try ExplainFixtures.fileSize(img))
        let cluster = size / ExplainFixtures.cluster
        try ExplainFixtures.put(img, at: size, try ExplainFixtures.get(img, at: refblock, count: 65536))
        try ExplainFixtures.put(img, at: refblock + cluster * 2, [0, 1])   // refcount 1: a leak to qemu-img
        let check = try ExplainFixtures.qemuCheck(img)
        #expect(int(check["leaks"]) == 1 && int(check["corruptions"]) == -1)
        let j = try ExplainFixtures.explain(img)
        let f = findings(j)
        #expect(f.count == 1 && str(f.first?["class"]) == "stranded-refcount-block" && str(f.first?["looks_like"]) == "refcount-block")
        #expect(pairs(f.first?["host"]) == [[Int64(size), 65536]] && int(f.first?["clusters"]) == 1)
        #expect(int(j["space"]?["leaked"]) == 65536)
    }

    @Test("the JSON has issue 22's shape (file_size, space, findings with class/host/guest/looks_like/clusters/text, reclaim) and the human report has the space table, then one paragraph per finding")
    func reportShape() throws {
        let dir = try TestSupport.makeTempDir("explain-shape")
        defer { TestSupport.removeTempDir(dir) }
        let img = try ExplainFixtures.threeWindows(dir, "j.qcow2")
        let l2 = try ExplainFixtures.l2Offset(img, l1Index: 0)
        try ExplainFixtures.put(img, at: l2 + 2 * 8, [UInt8](repeating: 0, count: 8))
        let j = try ExplainFixtures.explain(img)
        guard case let .object(top) = j, case let .array(fs)? = j["findings"], case let .object(first)? = fs.first else {
            Issue.record("not an object with findings: \(j)"); return
        }
        #expect(Array(top.map(\.0).prefix(4)) == ["file_size", "space", "findings", "reclaim"])
        #expect(first.map(\.0) == ["class", "host", "guest", "looks_like", "clusters", "text"])
        guard case let .object(space)? = j["space"] else { Issue.record("no space object"); return }
        #expect(space.allSatisfy { k, _ in k.allSatisfy { $0.isLowercase || $0 == "_" || $0.isNumber } }, "snake_case kinds: \(space.map(\.0))")
        #expect(int(j["reclaim"]?["repair_leaks"]) == 65536 && int(j["reclaim"]?["convert"]) != -1)
        let human = try TestSupport.blockscope(["explain", img]).stdoutText
        let table = human.range(of: "data ")?.lowerBound, paragraph = human.range(of: "[leaked-cluster] Leaked: 1 cluster")?.lowerBound
        #expect(table != nil && paragraph != nil && table! < paragraph!, "\(human)")
    }

    @Test("the header cluster overwritten with guest data: header-overwritten, and the L1 and refcount tables found by content where qemu-img cannot open the image")
    func headerOverwritten() throws {
        let dir = try TestSupport.makeTempDir("explain-hdr")
        defer { TestSupport.removeTempDir(dir) }
        let img = try ExplainFixtures.threeWindows(dir, "h.qcow2")
        let l1 = try ExplainFixtures.word(img, at: 40), rt = try ExplainFixtures.word(img, at: 48)
        try ExplainFixtures.put(img, at: 0, [UInt8](repeating: 0x5a, count: 65536))
        #expect(try TestSupport.run("qemu-img", ["info", "-f", "qcow2", img]).status != 0)
        let j = try ExplainFixtures.explain(img)
        let f = findings(j)
        #expect(f.count == 1 && str(f.first?["class"]) == "header-overwritten" && str(f.first?["looks_like"]) == "guest-data")
        #expect(pairs(f.first?["host"]) == [[0, 65536]])
        let text = str(f.first?["text"])
        #expect(text.contains("L1 table was found at \(hex(l1))") && text.contains("refcount table was found by content at \(hex(rt))"), "\(text)")
        #expect(total(j["space"]) == int(j["file_size"]))
    }
}

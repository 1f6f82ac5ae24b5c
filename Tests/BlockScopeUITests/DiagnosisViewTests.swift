import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// The Diagnosis view on images qemu-img made and damaged byte by byte (as the explain tests
/// damage theirs): its rows name the causes with the counts qemu-img check agrees with, Enter
/// lands on the table entry, refcount row or host bytes a finding names, and the Map marks the
/// finding's host clusters.
@Suite("Diagnosis view") struct DiagnosisViewTests {
    static let cluster: UInt64 = 65536

    /// A 2 GiB image, 64 KiB clusters, 4 MiB of 0x11 at 0, 4 MiB of 0x22 at 512 MiB and 1 MiB
    /// of 0x33 at 1 GiB: one L2 table per 512 MiB window.
    static func threeWindows(_ f: TuiFixture, _ name: String) throws -> String {
        let img = f.dir + "/" + name
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "2G"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x11 0 4M", "write -P 0x22 512M 4M", "write -P 0x33 1G 1M"])
        return img
    }

    /// The big-endian 64-bit word at `offset`.
    static func word(_ path: String, at offset: UInt64) throws -> UInt64 {
        let h = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: offset)
        return h.readData(ofLength: 8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// Writes `bytes` at `offset`.
    static func put(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: offset)
        h.write(Data(bytes))
    }

    /// Big-endian bytes of `v`.
    static func be(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64($0))) } }

    /// `qemu-img check --output=json`'s integer field (-1 when absent).
    static func check(_ img: String, _ key: String) throws -> Int64 {
        let j = try JSONValue.parse(try TestSupport.qemuImg(["check", "--output=json", img]).stdoutText)
        switch j[key] {
        case let .int(i)?: return i
        case let .uint(u)?: return Int64(u)
        default: return -1
        }
    }

    /// An app on `img` with the Diagnosis view up and its report ready.
    static func diagnosed(_ f: TuiFixture, _ img: String) throws -> TUIApp {
        let app = try f.app(img)
        #expect(app.selectView(named: "diagnosis"))
        _ = app.render(width: 80, height: 24)   // the first draw starts the explanation
        app.state.diagnosis.waitUntilIdle()
        #expect(app.state.diagnosis.report != nil, "\(app.state.diagnosis.error ?? "")")
        return app
    }

    /// The screen's rows, trailing spaces dropped.
    static func rows(_ s: ScreenModel) -> [String] { (0..<s.height).map { s.line($0) } }

    @Test("an L2 table unlinked from L1: one orphaned-l2-table row with its 64 data clusters, the leaked space qemu-img check counts, nothing cut at 80x24; Enter opens its host bytes, e the empty L1 slot, and the Map marks its clusters")
    func orphanedTable() throws {
        let f = try TuiFixture("diag-orphan")
        let img = try Self.threeWindows(f, "u.qcow2")
        let l1 = try Self.word(img, at: 40)
        let l2 = try Self.word(img, at: l1 + 8) & 0x00ff_ffff_ffff_fe00
        try Self.put(img, at: l1 + 8, [UInt8](repeating: 0, count: 8))
        let leaks = try Self.check(img, "leaks")
        #expect(leaks == 65, "qemu-img check: the table and its 64 data clusters leak")
        let app = try Self.diagnosed(f, img)
        let s = app.render(width: 80, height: 24)
        let r = Self.rows(s)
        #expect(s.clipped.isEmpty, "cut at 80x24: \(s.clipped)")
        let row = try #require(r.first { $0.contains("orphaned-l2-table") && $0.contains("64 clusters") }, "\(r.joined(separator: "\n"))")
        #expect(row.contains("host \(hex(l2))+"), "\(row)")
        let leaked = try #require(r.first { $0.hasPrefix("leaked ") }, "\(r.joined(separator: "\n"))")
        #expect(leaked.contains(formatBytes(Double(UInt64(leaks) * Self.cluster))), "\(leaked)")
        #expect(r.contains { $0.contains("Enter: host bytes at \(hex(l2))") })
        // Enter: the table's bytes in Hex, host mode; Esc comes back.
        app.handle(.enter)
        let hv = try #require(app.currentView as? HexView)
        #expect(hv.hostMode && hv.offset == l2)
        app.handle(.escape)
        #expect(app.currentView is DiagnosisView)
        // e: the L1 slot of the window the table mapped (now empty).
        app.handle(.char("e"))
        #expect(app.currentView is L1L2View)
        #expect(app.state.status.text.contains("L1[1]") && app.state.status.text.contains("unallocated"), "\(app.state.status.text)")
        app.handle(.escape)
        // m: the Map's host grid at the table's cluster, which is marked as a finding.
        app.handle(.char("m"))
        let map = try #require(app.currentView as? MapView)
        #expect(map.gotoSpace == .host)
        let ms = app.render(width: 80, height: 24)
        #expect(map.cursorDescription(app.state)?.contains("finding: orphaned-l2-table") == true, "\(map.cursorDescription(app.state) ?? "")")
        #expect(ms.contains("X finding (Diagnosis)"), "\(Self.rows(ms).joined(separator: "\n"))")
        // On a larger screen, with the cursor in the guest grid, the host grid's X cells are
        // exactly the cells of the finding's host ranges: the table and its 64 data clusters,
        // 65 clusters, which is what qemu-img check counts as leaked.
        let report = try #require(app.state.diagnosis.report)
        let ranges = report.findings[0].host
        #expect(ranges.reduce(0) { $0 + $1.length } == UInt64(leaks) * Self.cluster)
        map.focus(on: .guest)
        let big = app.render(width: 160, height: 60)
        let lines = Self.rows(big)
        let hy = try #require(lines.firstIndex { $0.hasPrefix("Host file: ") })
        let bpc = try #require(Self.cellBytes(lines[hy]), "\(lines[hy])")
        var marked = Set<UInt64>(), expected = Set<UInt64>()
        var y = hy + 1
        while y < big.height, let rowStart = UInt64(lines[y].prefix(13).trimmingCharacters(in: .whitespaces).dropFirst(2), radix: 16) {
            for x in 14..<big.width {
                let start = rowStart + UInt64(x - 14) * bpc
                guard start < report.fileSize else { break }
                if big.cells[y * big.width + x].character == "X" { marked.insert(start) }
                if ranges.contains(where: { $0.offset < start + bpc && start < $0.offset + $0.length }) { expected.insert(start) }
            }
            y += 1
        }
        #expect(!expected.isEmpty && marked == expected, "X cells \(marked.count), finding cells \(expected.count) at \(bpc) bytes a cell")
    }

    /// The bytes per cell a grid heading names ("Host file: 9.44 MiB, 1 cell = 4.00 KiB").
    static func cellBytes(_ heading: String) -> UInt64? {
        guard let r = heading.range(of: "1 cell = ") else { return nil }
        let parts = heading[r.upperBound...].split(separator: " ")
        guard parts.count >= 2, let v = Double(parts[0]) else { return nil }
        let unit: [Substring: Double] = ["B": 1, "KiB": 1024, "MiB": 1_048_576, "GiB": 1_073_741_824]
        guard let m = unit[parts[1]] else { return nil }
        return UInt64(v * m)
    }

    @Test("one host cluster referenced by two L2 entries: double-reference and leaked-cluster rows; Enter on the first selects the L2 entry of the first referrer, on the leak its refcount row")
    func doubleReference() throws {
        let f = try TuiFixture("diag-double")
        let img = try Self.threeWindows(f, "d.qcow2")
        let l1 = try Self.word(img, at: 40)
        let l2 = try Self.word(img, at: l1) & 0x00ff_ffff_ffff_fe00
        let e3 = try Self.word(img, at: l2 + 3 * 8)
        let lost = try Self.word(img, at: l2 + 5 * 8) & 0x00ff_ffff_ffff_fe00
        try Self.put(img, at: l2 + 5 * 8, Self.be(e3))
        #expect(try Self.check(img, "corruptions") >= 1)
        #expect(try Self.check(img, "leaks") == 1)
        let app = try Self.diagnosed(f, img)
        let s = app.render(width: 80, height: 24)
        let r = Self.rows(s)
        #expect(s.clipped.isEmpty, "cut at 80x24: \(s.clipped)")
        let fs = try #require(app.state.diagnosis.report?.findings)
        #expect(fs.map(\.findingClass.rawValue).sorted() == ["double-reference", "leaked-cluster"])
        #expect(r.contains { $0.contains("double-reference") }, "\(r.joined(separator: "\n"))")
        #expect(r.contains { $0.contains("leaked-cluster") && $0.contains("1 cluster ") && $0.contains("host \(hex(lost))+") }, "\(r.joined(separator: "\n"))")
        #expect(r.first { $0.hasPrefix("leaked ") }?.contains(formatBytes(Double(Self.cluster))) == true)
        let di = try #require(fs.firstIndex { $0.findingClass == .doubleReference })
        let li = try #require(fs.firstIndex { $0.findingClass == .leakedCluster })
        let view = try #require(app.currentView as? DiagnosisView)
        for _ in 0..<fs.count where view.selected < di { app.handle(.down) }
        for _ in 0..<fs.count where view.selected > di { app.handle(.up) }
        app.handle(.enter)
        let l = try #require(app.currentView as? L1L2View)
        #expect(l.openL1 == 0)
        #expect(app.state.status.text.contains("L2[3]"), "\(app.state.status.text)")
        app.handle(.escape)   // closes the L2 table
        app.handle(.escape)   // back where Enter came from
        try #require(app.currentView is DiagnosisView)
        for _ in 0..<fs.count where view.selected < li { app.handle(.down) }
        for _ in 0..<fs.count where view.selected > li { app.handle(.up) }
        app.handle(.enter)
        #expect(app.currentView is RefcountsView)
        #expect(app.state.status.text.contains("host \(hex(lost)) is in cluster \(lost / Self.cluster)"), "\(app.state.status.text)")
    }

    @Test("an L2 table overwritten with a refcount block: one metadata-overwritten row for its window and the 64 clusters qemu-img check counts as leaked; Enter selects the L1 entry of that window, r its refcount row")
    func tableOverwrittenWithRefcountBlock() throws {
        let f = try TuiFixture("diag-l2ref")
        let img = try Self.threeWindows(f, "r.qcow2")
        let l1 = try Self.word(img, at: 40)
        let l2 = try Self.word(img, at: l1 + 8) & 0x00ff_ffff_ffff_fe00
        let refblock = try Self.word(img, at: try Self.word(img, at: 48)) & 0x00ff_ffff_ffff_fe00
        let h = try FileHandle(forReadingFrom: URL(fileURLWithPath: img))
        try h.seek(toOffset: refblock)
        let bytes = [UInt8](h.readData(ofLength: Int(Self.cluster)))
        try h.close()
        try Self.put(img, at: l2, bytes)
        let leaks = try Self.check(img, "leaks")
        let corruptions = try Self.check(img, "corruptions")
        #expect(leaks == 64 && corruptions > 0)
        let app = try Self.diagnosed(f, img)
        let s = app.render(width: 80, height: 24)
        let r = Self.rows(s)
        #expect(s.clipped.isEmpty, "cut at 80x24: \(s.clipped)")
        let fs = try #require(app.state.diagnosis.report?.findings)
        #expect(fs.count == 1 && fs.first?.findingClass == .metadataOverwritten && fs.first?.looksLike == .refcountBlock)
        #expect(r.contains { $0.hasPrefix("metadata-overwritten") && $0.contains("64 clusters") && $0.contains("host \(hex(l2))+") }, "\(r.joined(separator: "\n"))")
        #expect(r.first { $0.hasPrefix("leaked ") }?.contains(formatBytes(Double(UInt64(leaks) * Self.cluster))) == true)
        app.handle(.enter)
        #expect(app.currentView is L1L2View)
        #expect(app.state.status.text.contains("at guest 0x20000000") && app.state.status.text.contains("L1[1]"), "\(app.state.status.text)")
        app.handle(.escape)
        app.handle(.escape)
        try #require(app.currentView is DiagnosisView)
        app.handle(.char("r"))
        #expect(app.currentView is RefcountsView)
        #expect(app.state.status.text.contains("host \(hex(l2)) is in cluster \(l2 / Self.cluster)"), "\(app.state.status.text)")
    }

    @Test("a healthy image: no findings, and the space table's data row holds what qemu-img check counts as allocated, at 80x24 with nothing cut")
    func healthy() throws {
        let f = try TuiFixture("diag-ok")
        let img = try f.qcow2()
        let allocated = try Self.check(img, "allocated-clusters")
        let app = try Self.diagnosed(f, img)
        let s = app.render(width: 80, height: 24)
        let r = Self.rows(s)
        #expect(s.clipped.isEmpty, "cut at 80x24: \(s.clipped)")
        #expect(r.contains { $0.contains("No findings") }, "\(r.joined(separator: "\n"))")
        let data = try #require(r.first { $0.hasPrefix("data ") }, "\(r.joined(separator: "\n"))")
        #expect(data.contains(formatBytes(Double(UInt64(allocated) * Self.cluster))) && data.contains("█"), "\(data)")
        #expect(r.contains { $0.hasPrefix("total ") && $0.contains("100.0%") })
        #expect(!app.render(width: 80, height: 24).contains("finding (Diagnosis)"))
    }

    @Test("while the explanation runs the view says computing… and the other views stay usable; the report shows once it is done")
    func computingUntilReady() throws {
        let f = try TuiFixture("diag-wait")
        let app = try f.app(try f.qcow2())
        final class Gate: @unchecked Sendable {
            let lock = NSLock()
            var held = false
            let reached = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        }
        let g = Gate()
        app.state.diagnosis.observer = { _ in
            let first = g.lock.withLock { () -> Bool in defer { g.held = true }; return !g.held }
            if first { g.reached.signal(); g.release.wait() }
        }
        #expect(app.selectView(named: "diagnosis"))
        _ = app.render(width: 80, height: 24)
        #expect(g.reached.wait(timeout: .now() + 120) == .success, "the explanation never reported progress")
        let s = app.render(width: 80, height: 24)
        #expect(s.contains("computing…") && !s.contains("No findings"), "\(Self.rows(s).joined(separator: "\n"))")
        app.handle(.char("1"))
        #expect(app.render(width: 80, height: 24).contains("virtual size"))
        g.release.signal()
        app.state.diagnosis.waitUntilIdle()
        app.handle(.char("9"))
        #expect(app.render(width: 80, height: 24).contains("No findings"))
    }

    @Test("a format with no explainer says so instead of computing forever")
    func rawHasNoDiagnosis() throws {
        let f = try TuiFixture("diag-raw")
        let app = try f.app(try f.raw())
        #expect(app.selectView(named: "diagnosis"))
        _ = app.render(width: 80, height: 24)
        app.state.diagnosis.waitUntilIdle()
        let s = app.render(width: 80, height: 24)
        #expect(s.contains("no diagnosis for this image") && s.contains("not supported"), "\(Self.rows(s).joined(separator: "\n"))")
    }
}

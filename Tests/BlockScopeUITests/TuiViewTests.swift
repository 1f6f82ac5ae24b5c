import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// Snapshot-style tests: each view drawn into a ScreenModel on images made by qemu-img.
@Suite("TuiViews") struct TuiViewTests {
    @Test func overviewShowsFormatVirtualSizeAndHeaderFields() throws {
        let f = try TuiFixture("ov")
        let app = try f.app(try f.qcow2())
        let s = draw(OverviewView(), app)
        #expect(s.contains("qcow2"))
        #expect(s.contains("64.0 MiB"))
        #expect(s.contains("67108864"))
        #expect(s.contains("cluster_bits 16"))
        #expect(s.contains("clean: every refcount matches"))
    }

    @Test func mapShowsAllocatedCellWhereQemuIoWroteAndZeroCellWhereItZeroed() throws {
        let f = try TuiFixture("map")
        let app = try f.app(try f.qcow2())
        let v = MapView()
        let s = draw(v, app)
        // Guest grid starts on row 1 after its heading; the label column is 14 wide.
        #expect(s.contains("Guest space: 64.0 MiB"))
        let perRow = 160 - 14 - 1
        let bpc = v.bytesPerCell(.guest, app.state, cells: perRow * ((46 - 5) / 2))
        let dataCell = Int((1 << 20) / bpc), zeroCell = Int((4 << 20) / bpc), freeCell = Int((32 << 20) / bpc)
        func cell(_ i: Int) -> Cell? { s[14 + i % perRow, 1 + i / perRow] }
        #expect(cell(dataCell)?.style.role == .data)
        #expect(cell(dataCell)?.character == "█")
        #expect(cell(zeroCell)?.style.role == .zero)
        #expect(cell(freeCell)?.style.role == .free)
        // The host grid shows the header, L1, L2, refcount structures.
        for role in [Role.header, .l1, .l2, .refcount, .data] { #expect(!s.cells(with: role).isEmpty, "no \(role) cell") }
    }

    @Test func mapOnRawShowsDataAtTheWrittenOffset() throws {
        let f = try TuiFixture("rawmap")
        let app = try f.app(try f.raw())
        let v = MapView()
        let s = draw(v, app)
        let perRow = 160 - 14 - 1
        let bpc = v.bytesPerCell(.guest, app.state, cells: perRow * ((46 - 5) / 2))
        let i = Int((2 << 20) / bpc)
        #expect(s[14 + i % perRow, 1 + i / perRow]?.style.role == .data)
    }

    @Test func l1l2ListsL1AndOpensL2WithCompressedFlag() throws {
        let f = try TuiFixture("l2")
        let app = try f.app(try f.compressedQcow2())
        let v = L1L2View()
        var s = draw(v, app)
        #expect(s.contains("L1[0]"))
        #expect(s.contains("L2 table at"))
        _ = v.handle(.enter, app.state)
        s = draw(v, app)
        #expect(v.openL1 == 0)
        #expect(s.contains("compressed"))
        #expect(s.contains("L2[32]"))   // 2 MiB / 64 KiB
        #expect(v.search("compressed", app.state).contains("L2[32]"))
    }

    @Test func refcountsShowHistogramAndCleanState() throws {
        let f = try TuiFixture("rc")
        let app = try f.app(try f.qcow2())
        let s = draw(RefcountsView(), app)
        #expect(s.contains("Refcount table at 0x10000"))
        #expect(s.contains("refcount 1"))
        #expect(s.contains("clean"))
        #expect(s.contains("L2 table"))
    }

    @Test func hexFollowsGuestOffsetThroughMappingToHostBytes() throws {
        let f = try TuiFixture("hex")
        let app = try f.app(try f.qcow2())
        let v = HexView()
        _ = v.goto(1 << 20, app.state)
        let s = draw(v, app)
        #expect(s.contains("guest 0x100000"))
        #expect(s.contains("L1[0] -> L2"))
        #expect(s.contains("-> host 0x"))
        #expect(s.contains("ab ab ab ab"))
        _ = v.handle(.char("m"), app.state)   // host bytes at the mapped offset
        let h = draw(v, app)
        #expect(h.contains("ab ab ab ab"))
        #expect(h.contains("cluster"))
    }

    @Test func formatViewsDegradeGracefullyOnOtherFormats() throws {
        let f = try TuiFixture("deg")
        let app = try f.app(try f.raw())
        #expect(draw(L1L2View(), app).contains("no two-level tables"))
        #expect(draw(RefcountsView(), app).contains("no reference counts"))
        #expect(draw(BatView(), app).contains("no block allocation table"))
    }

    @Test func batViewShowsVhdxHeadersRegionsAndEntryStates() throws {
        let f = try TuiFixture("bat")
        let p = f.dir + "/b.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", p, "16M"])
        try TestSupport.qemuIo(p, format: "vhdx", ["write -P 0x42 3M 64k"])
        let app = try f.app(p)
        let s = draw(BatView(), app)
        #expect(s.contains("sequence"))
        #expect(s.contains("CRC ok, current"))
        #expect(s.contains("Region table"))
        #expect(s.contains("block size             1.00 MiB"))
        #expect(s.contains("BAT[3]    block 3 guest 0x300000              FULLY_PRESENT"))
        let h = HexView()
        _ = h.goto(3 << 20, app.state)
        let hs = draw(h, app)
        #expect(hs.contains("BAT[3]"))
        #expect(hs.contains("42 42 42 42"))
    }

    @Test func batViewShowsVhdFooterDynamicHeaderAndBat() throws {
        let f = try TuiFixture("vhd")
        let p = f.dir + "/d.vhd"
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", p, "16M"])
        try TestSupport.qemuIo(p, format: "vpc", ["write -P 0x24 2M 64k"])
        let app = try f.app(p)
        let s = draw(BatView(), app)
        #expect(s.contains("Dynamic header"))
        #expect(s.contains("block size             2.00 MiB"))
        #expect(s.contains("BAT[1]    block 1 guest 0x200000              allocated"))
        let h = HexView()
        _ = h.goto(2 << 20, app.state)
        #expect(draw(h, app).contains("24 24 24 24"))
    }

    @Test func corruptQcow2TablesDrawWithoutCrashing() throws {
        let f = try TuiFixture("corrupt")
        let good = try f.qcow2()
        let bytes = try TestSupport.readFile(good)
        // Each damage: (offset, bytes). L1 size huge, L1 offset past EOF, refcount table past EOF, an L2 entry pointing far away.
        let damages: [(Int, [UInt8])] = [(36, [0x00, 0xff, 0xff, 0xff]), (40, [0, 0, 0, 0x7f, 0, 0, 0, 0]), (48, [0, 0, 0, 0x7f, 0, 0, 0, 0]),
                                         (0x40000 + 16 * 8, [0x80, 0, 0, 0x7f, 0, 0, 0, 0]), (60, [0, 0, 0x10, 0]), (64, [0, 0, 0, 0, 0, 0x04, 0, 0])]
        for (i, d) in damages.enumerated() {
            var b = [UInt8](bytes)
            for (k, v) in d.1.enumerated() where d.0 + k < b.count { b[d.0 + k] = v }
            let p = f.dir + "/bad\(i).qcow2"
            try TestSupport.writeFile(p, b)
            let t0 = monotonicNanos()
            let app = try f.app(p)
            for v in app.views { _ = draw(v, app) }
            // A hang bound (a size field the file cannot back must not make a view walk it), not a speed check.
            #expect(monotonicNanos() - t0 < 120_000_000_000, "damage \(i): drawing every view took \(formatDuration(monotonicNanos() - t0))")
            let h = HexView()
            _ = h.goto(1 << 20, app.state)
            _ = h.handle(.char("m"), app.state)
            _ = draw(h, app)
        }
    }

    @Test func inFlightTreeAndCompletionsDrawFromEvents() throws {
        let f = try TuiFixture("live")
        let app = try f.app(try f.raw())
        let live = app.state.live
        live.apply(IoEvent(queue: 0, request: 7, .guestRequest(op: .write, offset: 0x12000, length: 4096)))
        live.apply(IoEvent(queue: 0, request: 7, .pendingCreated(id: 3, subOps: 2)))
        live.apply(IoEvent(queue: 0, request: 7, .sqeSubmitted(opcode: .writev, userData: 17, hostOffset: 0x50000, length: 4096)))
        // The engine holds request 7 (its queue's snapshot); the events annotate it.
        app.state.inFlightSnapshot = [OutstandingRequest(queue: 0, userData: 7, op: .write, offset: 0x12000, length: 4096, acceptedNs: monotonicNanos())]
        var s = draw(InFlightView(), app)
        #expect(s.contains("in flight 1 (held by the engine now)"))
        #expect(s.contains("req 0x7  write 0x12000+4096"))
        #expect(s.contains("req 0x7.1: PendingIo of 2 sub-ops"))
        #expect(s.contains("SQE writev user_data 0x11  host 0x50000+4096"))
        live.apply(IoEvent(queue: 0, request: 7, .cqeReaped(opcode: .writev, userData: 17, result: 4096, latencyNs: 40_000)))
        live.apply(IoEvent(queue: 0, request: 0, .cqDrain(batch: 1)))
        live.apply(IoEvent(queue: 0, request: 7, .guestCompleted(op: .write, userData: 7, result: 0, latencyNs: 50_000)))
        live.tick()
        app.state.inFlightSnapshot = []
        s = draw(InFlightView(), app)
        // No engine queue ran here: the exact count (the queues' counters) stays 0, the
        // completion event is still folded into the latency figures and the log.
        #expect(s.contains("in flight 0 (held by the engine now)   completed 0"))
        #expect(s.contains("slowest completed: req 0x7 write 0x12000+4096 q0 50.0µs"))
        #expect(s.contains("CQE user_data 0x11 (writev): 4096 bytes"))
        s = draw(CompletionsView(), app)
        #expect(s.contains("Window: last 1 s"))
        #expect(s.text.split(separator: "\n").contains { $0.hasPrefix("write") && $0.contains("50.0µs") }, "\(s.text)")
        #expect(s.contains("mean batch 1.0   completion events seen 1"))
        #expect(live.writtenGuest.intersects(0x12000, length: 1))
    }

    @Test func stepExplanationsNameTheTableEntryAndSqe() {
        // The entry words are the format's (QCOW2's, as the image's inspector registration gives them).
        #expect(Explain.line(IoEvent(queue: 0, request: 1, .tableUpdate(table: .l2, index: 3, old: 0, new: 0x8000_0000_0005_0000)), ExplainContext(words: Qcow2EventWords(clusterBits: 16))) == "req 0x1: L2[3]: unallocated -> data at 0x50000 (COPIED)")
        #expect(Explain.line(IoEvent(queue: 0, request: 1, .tableUpdate(table: .l1, index: 0, old: 0, new: 0x8000_0000_0004_0000)), ExplainContext(words: Qcow2EventWords(clusterBits: 16))) == "req 0x1: L1[0]: empty -> L2 table at 0x40000 (COPIED)")
        #expect(Explain.line(IoEvent(queue: 0, request: 1, .tableUpdate(table: .l2, index: 3, old: 0x50000, new: 0x8000_0000_0007_0000)), ExplainContext(words: Qcow2EventWords(clusterBits: 16))).contains("data at 0x50000 (shared, no COPIED) -> data at 0x70000 (COPIED)"))
        #expect(Explain.line(IoEvent(queue: 0, request: 1, .tableUpdate(table: .refcount, index: 5, old: 2, new: 1)), ExplainContext(words: Qcow2EventWords(clusterBits: 16))) == "req 0x1: refcount of host cluster 5 at 0x50000: 2 -> 1 (one reference dropped, 1 left)")
        #expect(Explain.line(IoEvent(queue: 0, request: 1, .tableUpdate(table: .refcount, index: 5, old: 0, new: 1))).contains("0 -> 1"))
        #expect(Explain.line(IoEvent(queue: 0, request: 1, .allocated(guestOffset: 0x12000, hostOffset: 0x50000, length: 65536))).contains("new host cluster at 0x50000"))
    }
}

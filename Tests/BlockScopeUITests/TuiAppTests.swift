import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// The app without a terminal: tabs, footer, prompt, write refusal, view switching, resize.
@Suite("TuiApp") struct TuiAppTests {
    @Test func frameHasTabBarFooterAndStatus() throws {
        let f = try TuiFixture("frame")
        let app = try f.app(try f.qcow2())
        app.pump()
        let s = app.render(width: 160, height: 50)
        // The table tabs carry the inspector's words: QCOW2 names its L1/L2 tables and has no
        // allocation table, so that tab keeps the neutral "Alloc".
        for t in ["1 Overview", "2 L1/L2", "3 Refcounts", "4 Map", "5 Alloc", "6 Hex", "7 In-flight", "8 Completions"] {
            #expect(s.line(1).contains(t))
        }
        #expect(s.line(49).contains("q quit"))
        #expect(s.line(0).contains("read-only"))
    }

    @Test func smallTerminalKeepsFooter() throws {
        let f = try TuiFixture("small")
        let app = try f.app(try f.qcow2())
        for i in 1...8 {
            app.handle(.char(Character(String(i))))
            let s = app.render(width: 80, height: 24)
            #expect(s.line(23).contains("quit") || s.line(23).contains("help"), "footer missing in view \(i)")
        }
    }

    @Test func writesAreRefusedWithoutWriteFlag() throws {
        let f = try TuiFixture("ro")
        let app = try f.app(try f.raw())
        app.handle(.char(":"))
        for c in "write 0 4k" { app.handle(.char(c)) }
        app.handle(.enter)
        #expect(app.state.status.text.contains("--write"))
        #expect(app.state.status.role == .error)
    }

    @Test func promptSwitchesViewsAndGoesToOffsets() throws {
        let f = try TuiFixture("prompt")
        let app = try f.app(try f.qcow2())
        app.execute(.view(name: "map"))
        #expect(app.currentView is MapView)
        app.execute(.view(name: "l2"))
        #expect(app.currentView is L1L2View)
        app.handle(.tab)
        #expect(app.currentView is RefcountsView)
        app.execute(.view(name: "completions"))
        app.execute(.goto(offset: 1 << 20))  // Completions has no offsets: goes to Hex
        #expect((app.currentView as? HexView)?.offset == 1 << 20)
        app.execute(.theme(name: "monochrome"))
        #expect(app.theme.name == "monochrome")
    }

    @Test func writeFromPromptOnRawShowsEventsAndTintsMap() throws {
        let f = try TuiFixture("rw")
        let app = try f.app(try f.raw(), write: true)
        app.execute(.write(offset: 8 << 20, length: 65536, pattern: 0x77))
        pumpUntil(app) { !app.state.busy && app.state.live.completedRequests > 0 }
        #expect(app.state.live.completedRequests >= 1)
        #expect(app.state.live.writtenGuest.intersects(8 << 20, length: 65536))
        #expect(app.state.live.log.contains { $0.contains("wrote 65536/65536") })
        let v = MapView()
        let s = draw(v, app)
        #expect(!s.cells(with: .written).isEmpty)
        app.shutdown()
        let bytes = try TestSupport.readFile(app.state.image.path)
        #expect(bytes[8 << 20] == 0x77)
    }

    @Test func stepModeHoldsTheWriteAndReleasesOneExplainedEventPerKey() throws {
        let f = try TuiFixture("step")
        let app = try f.app(try f.raw(), write: true)
        app.handle(.char("s"))
        #expect(app.state.stepMode)
        app.execute(.write(offset: 0x10000, length: 4096, pattern: 0x5a))
        pumpUntil(app) { app.state.heldEvent != nil }
        #expect(app.state.heldEvent?.contains("guest write 0x10000+4096") == true)
        #expect(app.state.live.completedRequests == 0)
        var explained: [String] = []
        for _ in 0..<20 where app.state.live.completedRequests == 0 {
            stepOnce(app)
        }
        #expect(app.state.live.completedRequests == 1)
        explained = app.state.stepHistory
        #expect(explained.contains { $0.contains("SQE writev") })
        #expect(explained.contains { $0.contains("completed ok") })
        // Let the request's trailing events (the CQ drain) through until nothing is held.
        for _ in 0..<10 where app.state.heldEvent != nil || app.state.busy { stepOnce(app) }
        #expect(app.state.heldEvent == nil)
        // Surplus presses are not banked: after 25 presses with nothing held, the next write
        // still stops at its first event.
        for _ in 0..<25 { app.handle(.char("s")) }
        app.execute(.write(offset: 0x20000, length: 4096, pattern: 0x5b))
        pumpUntil(app) { app.state.heldEvent != nil }
        #expect(app.state.heldEvent?.contains("guest write 0x20000+4096") == true, "\(app.state.heldEvent ?? "nothing held")")
        #expect(app.state.live.completedRequests == 1)
        app.handle(.escape)
        #expect(!app.state.stepMode)
        app.shutdown()
    }

    /// Proves issue 7's step-mode acceptance on QCOW2: one 4 KiB write to a fresh image is
    /// walked through allocation, refcount 0 -> 1, the SQE, the CQE and the L2 update, each
    /// explained; afterwards `qemu-img check` is clean and qemu-io reads the pattern back.
    @Test func stepModeWalksAQcow2WriteThroughAllocation() throws {
        let f = try TuiFixture("step-qcow2")
        let img = f.dir + "/fresh.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        let app = try f.app(img, write: true)
        app.handle(.char("s"))
        app.execute(.write(offset: 0x12000, length: 4096, pattern: 0x5a))
        pumpUntil(app) { app.state.heldEvent != nil }
        var explained: [String] = []
        if let h = app.state.heldEvent { explained.append(h) }
        for _ in 0..<40 where app.state.live.completedRequests == 0 {
            stepOnce(app)
        }
        #expect(app.state.live.completedRequests == 1)
        explained += app.state.stepHistory
        let all = explained.joined(separator: "\n")
        #expect(explained.contains { $0.contains("guest write 0x12000+4096") }, "\(all)")
        #expect(explained.contains { $0.contains("allocate") && $0.contains("host") }, "\(all)")
        #expect(explained.contains { $0.contains("refcount of host cluster") && $0.contains("0 -> 1") }, "\(all)")
        #expect(explained.contains { $0.contains("SQE writev") }, "\(all)")
        #expect(explained.contains { $0.contains("CQE") }, "\(all)")
        #expect(explained.contains { $0.contains("L2[1]: unallocated -> data at") }, "\(all)")
        #expect(explained.contains { $0.contains("completed ok") }, "\(all)")
        // The SQE comes after the allocation and the L2 update after the CQE.
        let alloc = explained.firstIndex { $0.contains("allocate") } ?? 0
        let sqe = explained.firstIndex { $0.contains("SQE writev") } ?? 0
        let cqe = explained.firstIndex { $0.contains("CQE") } ?? 0
        let l2 = explained.firstIndex { $0.contains("L2[1]") } ?? 0
        #expect(alloc < sqe && sqe < cqe && cqe < l2, "\(all)")
        app.handle(.escape)
        app.shutdown()
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText) \(check.stderr)")
        let io = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x5a 0x12000 4096", img])
        #expect(io.status == 0 && !io.stdoutText.contains("Pattern verification failed"), "\(io.stdoutText) \(io.stderr)")
    }

    /// Proves the L1/L2 views show a QCOW2 allocation as soon as the write completes, before
    /// any flush wrote the tables back: the L2 entry the view reads points at the host
    /// cluster that `qemu-img map` reports once the image is closed.
    @Test func qcow2AllocationShowsBeforeItIsFlushed() throws {
        let f = try TuiFixture("live-l2")
        let img = f.dir + "/fresh.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        let app = try f.app(img, write: true)
        app.execute(.write(offset: 3 << 20, length: 65536, pattern: 0x42))
        pumpUntil(app) { !app.state.busy && app.state.live.completedRequests > 0 }
        app.state.reloadLayout()
        let q = try #require(app.state.image.inspector as? Qcow2Inspection)
        let l1 = q.l1
        #expect(l1.count > 0 && q.l2TableOffset(l1[0]) != 0, "L1[0] still empty in the view")
        let e = try #require(q.l2Table(l1Index: 0)?[48])   // 3 MiB / 64 KiB
        #expect(e.entry & Qcow2Entry.copied != 0 && q.type(of: e) == .normal)
        #expect(q.refcount(ofClusterAt: e.hostOffset) == 1)
        let shown = e.hostOffset
        app.shutdown()
        let map = try TestSupport.qemuImg(["map", "--output=json", img])
        let j = try #require(try? JSONValue.parse(map.stdoutText))
        let ext = try #require(j.arrayValue?.first { $0["start"]?.intValue == Int64(3 << 20) })
        #expect(ext["offset"]?.intValue == Int64(shown), "view showed host \(shown), qemu-img map says \(map.stdoutText)")
    }

    @Test func jobFromPromptRunsOnTheWorkloadAndReportsCounters() throws {
        let f = try TuiFixture("job")
        let img = try f.raw()
        let job = f.dir + "/r.fio"
        try "[r]\nrw=randread\nbs=4k\nsize=1M\nnumber_ios=64\nioengine=io_uring\n".write(toFile: job, atomically: true, encoding: .utf8)
        let app = try f.app(img)
        app.execute(.job(path: job))
        pumpUntil(app) { !app.state.busy && app.state.live.completedRequests > 0 }
        app.pump()
        #expect(app.state.live.log.contains { $0.contains("job r.fio done: 64 I/Os") }, "\(app.state.live.log.suffix(3))")
        #expect(app.state.live.completedRequests > 0)
        app.shutdown()
    }

    /// Frame cost is measured by scripts/perf/tui-cost.sh (docs/PERFORMANCE.md), not asserted
    /// here: a test on a busy machine checks what a frame holds, not how fast it came.
    @Test func everyViewRendersRepeatedFramesWithItsTitleAndFooter() throws {
        let f = try TuiFixture("fps")
        let app = try f.app(try f.qcow2())
        for i in 1...8 {
            app.handle(.char(Character(String(i))))
            for _ in 0..<3 {
                app.pump()
                let frame = app.render(width: 160, height: 50).text
                #expect(frame.contains(app.currentView.title), "view \(i): no title \(app.currentView.title)")
                #expect(frame.contains("q quit"), "view \(i): no footer")
            }
        }
    }
}

/// Pumps `app` (folds engine events into its state) every 10 ms until `condition` holds, for
/// up to the generous progress bound; records an issue if it never does.
func pumpUntil(_ app: TUIApp, _ condition: () -> Bool) {
    let ok = Progress.wait(interval: 0.01) { app.pump(); return condition() }
    if !ok { Issue.record("condition not met within \(Progress.defaultTimeout) s") }
}

/// Steps until the event held at the gate contains `text`, at most `limit` presses. Each round
/// first waits for an event to be held (or the command to end) before it looks: a loop that
/// looked at once saw nothing held while the next event was still on its way (a CQE under
/// load), pressed, and stepped past the event it was looking for. Returns whether it is held.
@discardableResult
func stepUntilHeld(_ app: TUIApp, containing text: String, limit: Int = 20, step: (TUIApp) -> Void = stepOnce) -> Bool {
    for _ in 0..<limit {
        pumpUntil(app) { app.state.heldEvent != nil || !app.state.busy }
        if app.state.heldEvent?.contains(text) == true { return true }
        guard app.state.heldEvent != nil else { return false }
        step(app)
    }
    pumpUntil(app) { app.state.heldEvent != nil || !app.state.busy }
    return app.state.heldEvent?.contains(text) == true
}

/// One step-mode key press as a person makes it: waits until an event is held at the gate (or
/// the command is done), presses `s`, and waits until the released event reached the view.
func stepOnce(_ app: TUIApp) {
    pumpUntil(app) { app.state.heldEvent != nil || !app.state.busy }
    guard app.state.heldEvent != nil else { return }
    // No permit is pending (the previous step was explained), so the held event leaves the
    // gate only through this press.
    let target = app.gate.released + 1
    app.handle(.char("s"))
    pumpUntil(app) { app.state.stepsExplained >= target }
}

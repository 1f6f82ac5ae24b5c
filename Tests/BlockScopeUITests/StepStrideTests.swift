import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// Step mode's longer strides and the entry highlight: `c` finishes the held request and
/// holds the next event, `>` runs to the next request; a view that comes up after a step
/// selects the metadata entry the step changed.
@Suite struct StepStrideTests {
    @Test("c runs the held request to completion, > runs to the next request's first event")
    func strides() throws {
        let f = try TuiFixture("stride")
        let app = try f.app(try f.raw(), write: true)
        app.handle(.char("s"))
        app.execute(.write(offset: 0x10000, length: 4096, pattern: 0x5a))
        app.execute(.write(offset: 0x20000, length: 4096, pattern: 0x5b))
        app.execute(.write(offset: 0x30000, length: 4096, pattern: 0x5c))
        pumpUntil(app) { app.state.heldEvent?.contains("guest write 0x10000+4096") == true }
        app.handle(.char("c"))
        // The status line can say so before the completion event is drained into the view.
        pumpUntil(app) { app.state.status.text.contains("completed (c)") && app.state.live.completedRequests >= 1 }
        #expect(app.state.live.completedRequests == 1)
        // The gate holds again (the first write's trailing CQ drain, or the second write):
        // nothing of the second write has completed.
        pumpUntil(app) { app.state.heldEvent != nil }
        #expect(app.state.live.completedRequests == 1)
        for _ in 0..<10 {
            pumpUntil(app) { app.gate.heldEvent != nil }
            app.pump()
            if app.state.heldEvent?.contains("guest write 0x20000+4096") == true { break }
            // One press, waited on by the gate's own count (the events `c` ran through were
            // explained without presses, so stepOnce's count would not wait).
            let target = app.gate.released + 1
            app.handle(.char("s"))
            pumpUntil(app) { app.gate.released >= target }
        }
        #expect(app.state.heldEvent?.contains("guest write 0x20000+4096") == true, "held: \(app.state.heldEvent ?? "nothing"); steps: \(app.state.stepHistory.suffix(6)); busy \(app.state.busy)")
        #expect(app.state.live.completedRequests == 1)
        app.handle(.char(">"))
        pumpUntil(app) { app.state.heldEvent?.contains("guest write 0x30000+4096") == true }
        // The third write is held at its first event and has not completed. The second may
        // have: its CQE can be reaped after the third write was accepted, and then its
        // completion event waits behind the held one (seen under load).
        #expect((1...2).contains(app.state.live.completedRequests))
        app.handle(.escape)
        // The command ends before its last completion event is drained into the view: wait
        // for both (seen under load: busy false with 2 completions counted).
        pumpUntil(app) { !app.state.busy && app.state.live.completedRequests >= 3 }
        #expect(app.state.live.completedRequests == 3)
        app.shutdown()
        let io = try TestSupport.run("qemu-io", ["-f", "raw", "-c", "read -P 0x5a 0x10000 4k", "-c", "read -P 0x5b 0x20000 4k", "-c", "read -P 0x5c 0x30000 4k", f.dir + "/r.raw"])
        #expect(io.status == 0 && !io.stdoutText.contains("Pattern verification failed"), "\(io.stdoutText)")
    }

    @Test("after a stepped QCOW2 write, L1/L2 selects the L2 entry it changed and Refcounts the new cluster's refcount")
    func steppedEntryIsSelected() throws {
        let f = try TuiFixture("stride-highlight")
        let img = f.dir + "/h.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        let app = try f.app(img, write: true)
        app.handle(.char("s"))
        app.execute(.write(offset: 0x110000, length: 4096, pattern: 0x5a))
        for _ in 0..<60 where app.state.live.completedRequests == 0 { stepOnce(app) }
        #expect(app.state.steppedEntry?.table == .l2 && app.state.steppedEntry?.index == 17)
        app.handle(.escape)
        pumpUntil(app) { !app.state.busy }
        app.state.reloadLayout()
        app.selectView(named: "l1")
        #expect(app.state.status.text.contains("selected L2[17]"), "\(app.state.status.text)")
        let screen = app.render(width: 160, height: 50)
        app.shutdown()
        // The view's body (below the title and tab bar, above the status line and footer):
        // the open L2 table, its selected row the entry of guest 0x110000 (64 KiB clusters:
        // index 17), pointing where qemu-img says the data lies.
        let body = 2..<(50 - 2)
        let selectedRows = Set(screen.cells(with: .selected).map(\.y)).filter { body.contains($0) }
        #expect(selectedRows.count == 1, "rows selected in the body: \(selectedRows.sorted())\n\(screen.text)")
        #expect(screen.line(2).hasPrefix("L2 table of L1[0]"), "heading: \(screen.line(2))")
        let row = screen.line(selectedRows.first ?? -1)
        #expect(row.hasPrefix("L2[17] ") && row.contains("guest 0x110000"), "selected row: \(row)")
        let map = try JSONValue.parse(try TestSupport.qemuImg(["map", "--output=json", img]).stdoutText)
        let extent = map.arrayValue?.first { ($0["start"]?.intValue ?? -1) <= 0x110000 && 0x110000 < ($0["start"]?.intValue ?? 0) + ($0["length"]?.intValue ?? 0) }
        let host = try #require(extent?["offset"]?.intValue, "qemu-img map: \(map)") + (0x110000 - (extent?["start"]?.intValue ?? 0))
        #expect(row.contains("0x" + String(host, radix: 16)) && row.contains("refcount 1"), "selected row \(row); qemu-img puts the data at 0x\(String(host, radix: 16))")
    }
}

import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// Whole-image walks in the TUI: progress in the footer while one runs, `x` cancels it (the
/// views say so and keep what they had), `x` again walks anew, and the views show the
/// finished walk, whose counts agree with qemu-img check.
@Suite("BackgroundWalkUI") struct BackgroundWalkUITests {
    /// A gate the walk stops at on its first progress report until the test opens it.
    final class Gate: @unchecked Sendable {
        let reached = DispatchSemaphore(value: 0)
        let open = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var armed = true
        func observe(_ fraction: Double) {
            let stop = lock.withLock { () -> Bool in defer { armed = false }; return armed }
            if stop { reached.signal(); open.wait() }
        }
    }

    @Test("the footer shows the walk's progress, x cancels it, x walks again and the views update")
    func footerProgressCancelAndRestart() throws {
        let f = try TuiFixture("walk-ui")
        let img = f.dir + "/pre.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", img, "8G"])
        let r = try TestSupport.qemuImg(["check", "--output=json", img])
        let q = try #require(try? JSONValue.parse(r.stdoutText))
        let app = try f.app(img)
        let insp = try #require(app.state.image.inspector as? Qcow2Inspector)
        let gate = Gate()
        insp.walkObserver = { @Sendable in gate.observe($0) }
        // The Overview asks for the use map: the walk starts and stops at the gate.
        _ = app.render(width: 160, height: 50)
        #expect(gate.reached.wait(timeout: .now() + 180) == .success)
        let during = app.render(width: 160, height: 50)
        let footer = during.line(49)
        #expect(footer.contains("walking host clusters 0%"), "\(footer)")
        #expect(footer.contains("of \(grouped(Int((insp.hostSize + 65535) / 65536))))"), "\(footer)")
        #expect(footer.contains("x stop walk"), "\(footer)")
        #expect(during.text.contains("walking host clusters"))
        app.handle(.char("x"))
        #expect(app.state.status.text.contains("cancelled"), "\(app.state.status.text)")
        gate.open.signal()
        pumpUntil(app) { app.render(width: 160, height: 50).text.contains("walk cancelled (x walks again)") }
        let after = app.render(width: 160, height: 50)
        #expect(!after.line(49).contains("walking"), "\(after.line(49))")
        #expect(insp.usage == nil)
        // x again: a new walk runs to the end and the views show it.
        app.handle(.char("x"))
        pumpUntil(app) { app.render(width: 160, height: 50).text.contains("Host clusters (") }
        let done = app.render(width: 160, height: 50).text
        #expect(done.contains("clean: every refcount matches"), "\(done)")
        let u = try #require(insp.usage)
        #expect(u.report?.imageEndOffset.map(Int64.init) == q["image-end-offset"]?.intValue)
        #expect(u.report.map { $0.leaks + $0.corruptions } == 0)
        #expect(Int64(u.report?.allocatedClusters ?? 0) == q["allocated-clusters"]?.intValue)
        app.shutdown()
    }

    @Test("a VHDX's BAT view reads entries through BlockCore's BatStructure and its walk finishes in the background")
    func vhdxBatThroughCapability() throws {
        let f = try TuiFixture("walk-vhdx")
        let x = f.dir + "/b.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", x, "16M"])
        try TestSupport.qemuIo(x, format: "vhdx", ["write -P 0x42 3M 64k"])
        let map = try TestSupport.qemuImg(["map", "--output=json", "-f", "vhdx", x])
        let extents = try #require(try? JSONValue.parse(map.stdoutText))
        let app = try f.app(x)
        #expect(app.state.image.inspector is BatFormatInspector)
        let bat = draw(BatView(), app).text
        #expect(bat.contains("FULLY_PRESENT"), "\(bat)")
        // qemu-img map's data extent at 3 MiB is the block the BAT says is present, at the same host offset.
        var host: Int64?
        if case let .array(items) = extents {
            for e in items where e["data"]?.boolValue == true && e["start"]?.intValue == 3 << 20 { host = e["offset"]?.intValue }
        }
        let h = try #require(host)
        #expect(bat.contains("block 3 guest 0x300000"))
        #expect(bat.contains(hex(UInt64(h))), "BAT row of block 3 should name host \(hex(UInt64(h)))")
        pumpUntil(app) { draw(OverviewView(), app).text.contains("FULLY_PRESENT") && app.state.image.inspector?.backgroundProgress == nil }
        app.shutdown()
    }
}

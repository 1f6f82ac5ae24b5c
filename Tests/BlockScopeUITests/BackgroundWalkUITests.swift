import BlockCore
import BlockInspect
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
        // Not f.app(): it waits for the walk; this test watches it run.
        let app = try TUIApp(options: TUIOptions(imagePath: img))
        let insp = try #require(app.state.image.inspector as? Qcow2Inspection)
        let gate = Gate()
        insp.walker.observer = { @Sendable in gate.observe($0) }
        // The Overview asks for the use map: the walk starts and stops at the gate.
        _ = app.render(width: 160, height: 50)
        #expect(gate.reached.wait(timeout: .now() + 180) == .success)
        let during = app.render(width: 160, height: 50)
        let footer = during.line(49)
        // Held at its first report: the footer shows that report's percent and clusters.
        let pct = try #require(insp.backgroundProgress)
        #expect(footer.contains("walking host clusters \(Int(pct.fraction * 100))% (\(groupedDigits(pct.done)) "), "\(footer)")
        #expect(footer.contains("of \(groupedDigits(Int((insp.hostSize + 65535) / 65536))))"), "\(footer)")
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
        let app = try f.app(x)
        #expect(app.state.image.inspector is BatInspection)
        let bat = draw(BatView(), app).text
        #expect(bat.contains("FULLY_PRESENT"), "\(bat)")
        // The row of block 3 (qemu-io wrote 0x42 there) names a host offset whose bytes in the
        // file are the ones qemu-io wrote.
        let row = try #require(bat.split(separator: "\n").first { $0.contains("block 3 guest 0x300000") })
        let hostHex = try #require(row.split(separator: " ").last { $0.hasPrefix("0x") })
        let h = try #require(UInt64(hostHex.dropFirst(2), radix: 16))
        let file = try SystemFile(path: x, writable: false)
        defer { file.close() }
        #expect(try file.readBytes(at: h, count: 65536).allSatisfy { $0 == 0x42 }, "host \(hex(h))")
        #expect(app.state.image.inspector?.mapGuest(3 << 20).host == h)
        pumpUntil(app) { draw(OverviewView(), app).text.contains("FULLY_PRESENT") && app.state.image.inspector?.backgroundProgress == nil }
        app.shutdown()
    }
}

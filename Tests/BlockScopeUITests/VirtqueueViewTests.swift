import BlockCore
@testable import BlockServe
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// A vhost-user-blk server on the app's disk wired as `tui --serve vhost-user:` wires it:
/// its stage events through the app's step gate, each virtqueue's queue in the app's registry.
final class ServedVhostApp: @unchecked Sendable {
    let server: VhostUserServer
    private let done = DispatchSemaphore(value: 0)

    init(_ app: TUIApp, socket: String) throws {
        guard let disk = app.state.image.disk else { throw TestFailure("the image has no I/O") }
        let export = VhostUserBlkExport(disk: disk, queues: 1, eventSink: app.eventSink, inFlightRegistry: app.inFlightRegistry, queueIDBase: 8)
        server = try VhostUserServer(export: export, path: socket, log: { _ in })
        try server.listen()
        Thread { [self] in
            try? server.run(handleSignals: false)
            done.signal()
        }.start()
    }

    /// Stops the server and waits for its threads.
    func stop() {
        server.stop()
        done.wait()
    }
}

/// Issue 23: the Virtqueue view. A guest's read held by step mode shows its descriptor chain
/// (guest-physical addresses, lengths, directions) under the id In-flight gives it, Enter
/// opens In-flight on that request, and each step names the virtqueue stage and what comes next.
@Suite(.serialized) struct VirtqueueViewTests {
    /// Presses `s` once the gate holds an event, and waits until the released event is explained.
    static func step(_ app: TUIApp) {
        pumpUntil(app) { app.state.heldEvent != nil }
        let target = app.state.stepsExplained + 1
        app.handle(.char("s"))
        pumpUntil(app) { app.state.stepsExplained >= target }
    }

    @Test("a held guest read: its chain's segments under the In-flight id, Enter opens In-flight on it, six stages in order, the bytes are qemu-io's")
    func heldChainIsShownAndStepped() throws {
        let f = try TuiFixture("vq-view")
        let img = try f.raw()   // 0x55 at 2 MiB, written by qemu-io
        var o = TUIOptions(imagePath: img)
        o.themeName = TestSupport.packageRoot.appendingPathComponent("themes/default.theme").path
        o.virtqueueView = true
        let app = try TUIApp(options: o)
        #expect(app.views.last is VirtqueueView)
        let served = try ServedVhostApp(app, socket: f.dir + "/vu.sock")
        let fe = try FakeFrontEnd(path: f.dir + "/vu.sock")
        try fe.setUp()
        app.handle(.char("s"))
        #expect(app.state.stepMode)
        // IN of 4 KiB at sector 4096 (2 MiB): header, data, status, as Linux chains them.
        fe.header(at: 0x4000, type: 0, sector: 4096)
        fe.submit([(0x4000, 16, false), (0x10000, 4096, true), (0x4100, 1, true)])
        pumpUntil(app) { app.state.heldEvent?.contains("stage 1/6") == true }
        let from = app.state.stepsExplained
        // Step until the gate holds the request's first SQE: the engine holds it now.
        stepUntilHeld(app, containing: "SQE readv", step: Self.step)
        #expect(app.state.heldEvent?.contains("SQE readv") == true && app.state.heldEvent?.contains("stage 3/6") == true, "\(app.state.heldEvent ?? "nothing held") after \(app.state.stepHistory.suffix(app.state.stepsExplained - from))")
        let held = try #require(app.state.inFlightSnapshot.first)
        #expect(held.op == .read && held.offset == 2 << 20 && held.length == 4096 && held.client == "vhost vq0")
        let id = Explain.req(held.userData)
        #expect(app.selectView(named: "virtqueue"))
        let vq = app.render(width: 160, height: 46).text
        #expect(vq.contains("vhost vq0 head 0  \(id)  read 0x200000+4096"), "\(vq)")
        #expect(vq.contains("desc 0  gpa 0x4000  len 16  R device reads"), "\(vq)")
        #expect(vq.contains("desc 1  gpa 0x10000  len 4096  W device writes"), "\(vq)")
        #expect(vq.contains("desc 2  gpa 0x4100  len 1  W device writes"), "\(vq)")
        #expect(vq.contains("SQE readv user_data"), "\(vq)")
        #expect(vq.contains("next: ") && vq.contains("virtqueue stage 3/6: SQE submitted"), "\(vq)")
        // The table: 1 made available, 0 used, the device's last_avail 1, 1 held, 1 kick.
        let row = vq.split(separator: "\n").first { $0.hasPrefix("vhost vq0 ") && !$0.contains("head") }.map { $0.split(separator: " ").map(String.init) }
        #expect(Array(row?.prefix(9) ?? []) == ["vhost", "vq0", "8", "1", "0", "1", "1", "1", "1"], "\(row ?? [])")
        // At 80 columns the table splits in two: indexes, then notifications (the no-kick
        // column is 0: the one chain was taken at the avail_event the device published).
        let narrow = app.render(width: 80, height: 24).text.split(separator: "\n").map(String.init)
        #expect(narrow.contains { $0.hasPrefix("queue ") && $0.hasSuffix("ring held") } && narrow.contains { $0.hasPrefix("queue ") && $0.hasSuffix("no-kick") }, "\(narrow.joined(separator: "\n"))")
        let notes = narrow.last { $0.hasPrefix("vhost vq0 ") }.map { $0.split(separator: " ").map(String.init) } ?? []
        #expect(notes.first == "vhost" && notes.count == 9 && notes[2] == "1" && notes[8] == "0", "\(notes)")
        // Enter: In-flight, filtered to this request.
        app.handle(.enter)
        #expect(app.currentView is InFlightView)
        let inflight = app.render(width: 160, height: 46).text
        #expect(inflight.contains("filter 'id=\(hex(held.userData))': 1 shown") && inflight.contains("\(id)  read 0x200000+4096"), "\(inflight)")
        // On to the call: every stage in order, each saying what comes next.
        for _ in 0..<40 where !app.state.stepHistory.suffix(app.state.stepsExplained - from).contains(where: { $0.contains("stage 6/6") }) { Self.step(app) }
        let steps = Array(app.state.stepHistory.suffix(app.state.stepsExplained - from))
        let order = ["stage 1/6", "stage 2/6: head 0 decoded as IN (read)", "stage 3/6 begins", "stage 3/6: SQE submitted", "stage 4/6: CQE reaped",
                     "stage 5/6", "stage 6/6: call (interrupt) sent"]
        let at = order.map { w in steps.firstIndex { $0.contains(w) } }
        #expect(at.allSatisfy { $0 != nil } && at.map { $0 ?? 0 } == at.map { $0 ?? 0 }.sorted(), "\(steps.joined(separator: "\n"))")
        #expect(steps.filter { $0.contains("virtqueue stage") }.allSatisfy { $0.contains("next:") || $0.contains("stage 6/6") })
        // Two more reads (heads 3 and 6): `>` from the first runs it and holds the next
        // request where its chain is popped, not at its acceptance.
        fe.header(at: 0x4020, type: 0, sector: 4104)
        fe.submit([(0x4020, 16, false), (0x11000, 4096, true), (0x4101, 1, true)])
        fe.header(at: 0x4040, type: 0, sector: 4112)
        fe.submit([(0x4040, 16, false), (0x12000, 4096, true), (0x4102, 1, true)])
        pumpUntil(app) { app.state.heldEvent?.contains("head 3's chain of 3 descriptors popped") == true }
        app.handle(.char(">"))
        pumpUntil(app) { app.state.heldEvent?.contains("req 0x100000006: virtqueue stage 1/6: head 6's chain") == true }
        app.handle(.char(" "))
        #expect(fe.waitUsed(3))
        for (i, at) in [0x10000, 0x11000, 0x12000].enumerated() {
            #expect(UnsafeRawBufferPointer(start: fe.mem + at, count: 4096).allSatisfy { $0 == 0x55 })
            #expect((fe.mem + 0x4100 + i).load(as: UInt8.self) == 0 && fe.used(i).len == 4097)
        }
        pumpUntil(app) { app.state.inFlightSnapshot.isEmpty }
        served.stop()
        app.shutdown()
    }
}

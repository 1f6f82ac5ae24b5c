@testable import BlockCore
@testable import BlockScopeUI
import Testing

/// Completions lists each open virtqueue's ring (vhost-user) as its server published it,
/// with kicks and calls per second over the last second; other queues add no section.
@Suite("VirtqueueSection") struct VirtqueueSectionTests {
    static func status(_ serial: Int, _ name: String, open: Bool = true, ring: FrontEndQueue.Ring?) -> QueueStatus {
        QueueStatus(queue: 8 + serial, serial: serial, name: name, clientTagName: ring == nil ? nil : "head", open: open, figures: QueueFigures(), ring: ring)
    }

    @Test func ringsAndNotificationRatesAreShownForOpenVirtqueuesOnly() throws {
        let f = try TuiFixture("vq")
        let app = try f.app(try f.raw())
        let r = app.state.queueRates
        let t0: UInt64 = 50_000_000_000
        let a = FrontEndQueue.Ring(size: 128, availIndex: 100, usedIndex: 98, inFlight: 2, kicks: 90, calls: 80, suppressed: 10, chains: 100)
        var b = a
        b.availIndex = 400; b.usedIndex = 396; b.inFlight = 4; b.kicks = 390; b.calls = 330; b.suppressed = 60; b.chains = 400
        let old = FrontEndQueue.Ring(size: 128, availIndex: 1, usedIndex: 1, inFlight: 0, kicks: 2, calls: 0, suppressed: 1, chains: 1)
        r.update([Self.status(0, "vhost vq0", open: false, ring: old), Self.status(1, "vhost vq0", ring: a), Self.status(2, "prompt", ring: nil)], now: t0)
        r.update([Self.status(0, "vhost vq0", open: false, ring: old), Self.status(1, "vhost vq0", ring: b), Self.status(2, "prompt", ring: nil)], now: t0 + 1_000_000_000)
        let s = draw(CompletionsView(), app)
        #expect(s.contains("── Virtqueues"))
        let rows = s.text.split(separator: "\n").filter { $0.hasPrefix("vhost vq0 ") && $0.contains(" 128 ") }
        #expect(rows.count == 1, "\(s.text)")   // the closed ring of a reset is left out
        let cells = rows.first.map { $0.split(separator: " ").map(String.init) } ?? []
        // vhost vq0 | size avail used taken in-ring | kicks/s calls/s suppr/s
        #expect(cells == ["vhost", "vq0", "128", "400", "396", "400", "4", "300", "250", "50"], "\(cells)")
        #expect(s.contains("in all: 390 kicks, 330 calls, 60 calls suppressed by the driver (EVENT_IDX)"))
    }

    @Test func queuesWithoutRingsAddNoVirtqueueSection() throws {
        let f = try TuiFixture("novq")
        let app = try f.app(try f.raw())
        app.state.queueRates.update([Self.status(1, "nbd 1 unix", ring: nil)], now: 1_000_000_000)
        #expect(!draw(CompletionsView(), app).contains("Virtqueues"))
    }
}

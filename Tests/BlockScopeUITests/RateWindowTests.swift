import BlockCore
@testable import BlockIO
@testable import BlockEngine
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// The "last 1 s" figures are a window, not the last value seen: after a job ends they fall
/// to zero once a second has passed without completions, while the totals and the whole-job
/// rates stay as the job left them.
@Suite("RateWindows") struct RateWindowTests {
    /// One open queue's status with `writes` 4 KiB writes completed.
    static func status(writes: UInt64) -> [QueueStatus] {
        var f = QueueFigures()
        f.completed = writes
        f.writes = writes
        f.writeBytes = writes * 4096
        return [QueueStatus(queue: 1, serial: 0, name: "job w #0", clientTagName: nil, open: true, figures: f)]
    }

    @Test("with the clock driven by hand: 1000 writes in a second, then a second with none, reads 0 IOPS over the last second")
    func lastSecondFallsToZeroOnADrivenClock() {
        let r = QueueRates()
        let t0: UInt64 = 10_000_000_000
        r.update(Self.status(writes: 0), now: t0)
        r.update(Self.status(writes: 500), now: t0 + 500_000_000)
        r.update(Self.status(writes: 1000), now: t0 + 1_000_000_000)
        #expect(r.rate([.write], .lastSecond).iops == 1000)
        // The job ended at t0 + 1 s; half a second later half its last second is still in the window.
        r.update(Self.status(writes: 1000), now: t0 + 1_500_000_000)
        #expect(r.rate([.write], .lastSecond).iops > 0)
        r.update(Self.status(writes: 1000), now: t0 + 2_100_000_000)
        r.update(Self.status(writes: 1000), now: t0 + 2_600_000_000)
        #expect(r.rate([.write], .lastSecond).iops == 0)
        #expect(r.rate([.write], .lastSecond).bandwidth == 0)
        #expect(r.rows(.lastSecond).map(\.iops) == [0])
        // The whole window does not decay: its 1000 writes, and the exact count stays.
        #expect(r.rate([.write], .whole).count == 1000)
        #expect(r.completed == 1000)
    }

    @Test("after a real job ends in the app, its last-second IOPS reach 0 while its totals stay")
    func lastSecondFallsToZeroAfterARealJob() throws {
        let f = try TuiFixture("rates")
        let img = try f.raw()
        let job = f.dir + "/r.fio"
        try "[r]\nrw=randread\nbs=4k\nsize=8M\nruntime=1\ntime_based=1\niodepth=4\nioengine=io_uring\n".write(toFile: job, atomically: true, encoding: .utf8)
        let app = try f.app(img)
        app.execute(.job(path: job))
        var sawRate = false
        let done = Progress.wait(interval: 0.02) {
            app.pump()
            if app.state.queueRates.rate([.read], .lastSecond).iops > 0 { sawRate = true }
            return !app.state.busy && app.state.live.log.contains { $0.contains("done:") }
        }
        #expect(done, "the job did not finish")
        #expect(sawRate, "no last-second IOPS while the job ran")
        let ended = monotonicNanos()
        let total = app.state.queueRates.rate([.read], .whole).count
        let whole = app.state.queueRates.rate([.read], .whole).iops
        #expect(total > 0)
        // The job line's I/O count is what the engine's counters hold.
        #expect(app.state.live.log.contains { $0.contains("done: \(total) I/Os") }, "\(total) vs \(app.state.live.log.suffix(2))")
        let zero = Progress.wait(interval: 0.02) {
            app.pump()
            return app.state.queueRates.rate([.read], .lastSecond).iops == 0 && app.state.queueRates.rows(.lastSecond).allSatisfy { $0.iops == 0 }
        }
        let waited = Double(monotonicNanos() - ended) / 1e9
        #expect(zero, "last-second IOPS still \(app.state.queueRates.rate([.read], .lastSecond).iops) after the job ended")
        // A second without completions empties the window; a few frames of slack beyond it.
        #expect(waited < 5, "took \(waited) s after the job ended")
        #expect(app.state.queueRates.rate([.read], .whole).count == total)
        #expect(app.state.queueRates.rate([.read], .whole).iops == whole)
        app.shutdown()
    }
}

import BlockCore
@testable import BlockEngine
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// The "last 1 s" figures are a window, not the last value seen: after a job ends they fall
/// to zero once a second has passed without completions, while the totals and the whole-job
/// rates stay as the job left them.
@Suite("RateWindows") struct RateWindowTests {
    /// A one-queue snapshot with `writes` 4 KiB writes done after `elapsed` ns of the job.
    static func snapshot(writes: UInt64, elapsed: UInt64) -> WorkloadSnapshot {
        let q = QueueSnapshot(queueID: 1, jobName: "w", readIos: 0, writeIos: writes, trimIos: 0, syncIos: 0,
                              readBytes: 0, writeBytes: writes * 4096, inFlight: 0, finished: false)
        return WorkloadSnapshot(elapsedNs: elapsed, queues: [q], progress: nil)
    }

    @Test("with the clock driven by hand: 1000 writes in a second, then a second with none, reads 0 IOPS over the last second")
    func lastSecondFallsToZeroOnADrivenClock() {
        let r = EngineRates()
        let t0: UInt64 = 10_000_000_000
        r.update(Self.snapshot(writes: 0, elapsed: 0), now: t0)
        r.update(Self.snapshot(writes: 500, elapsed: 500_000_000), now: t0 + 500_000_000)
        r.update(Self.snapshot(writes: 1000, elapsed: 1_000_000_000), now: t0 + 1_000_000_000)
        #expect(r.rate(.write, .lastSecond)?.iops == 1000)
        // The job ended at t0 + 1 s; half a second later half its last second is still in the window.
        r.advance(now: t0 + 1_500_000_000)
        #expect((r.rate(.write, .lastSecond)?.iops ?? 0) > 0)
        r.advance(now: t0 + 2_100_000_000)
        #expect(r.rate(.write, .lastSecond)?.iops == 0)
        #expect(r.rate(.write, .lastSecond)?.bandwidth == 0)
        #expect(r.rows.map(\.iopsLastSecond) == [0])
        // The whole job's figures do not decay: 1000 writes over its 1 s of running time.
        #expect(r.rate(.write, .whole)?.iops == 1000)
        #expect(r.rows.first?.writes == 1000)
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
            if (app.state.engineRates.rate(.read, .lastSecond)?.iops ?? 0) > 0 { sawRate = true }
            return !app.state.busy && app.state.live.log.contains { $0.contains("done:") }
        }
        #expect(done, "the job did not finish")
        #expect(sawRate, "no last-second IOPS while the job ran")
        let ended = monotonicNanos()
        let total = app.state.engineRates.rows.first?.reads ?? 0
        let whole = app.state.engineRates.rate(.read, .whole)?.iops ?? 0
        #expect(total > 0)
        // The job line's I/O count is what the rows hold.
        #expect(app.state.live.log.contains { $0.contains("done: \(total) I/Os") }, "\(total) vs \(app.state.live.log.suffix(2))")
        let zero = Progress.wait(interval: 0.02) {
            app.pump()
            return app.state.engineRates.rate(.read, .lastSecond)?.iops == 0 && app.state.engineRates.rows.allSatisfy { $0.iopsLastSecond == 0 }
        }
        let waited = Double(monotonicNanos() - ended) / 1e9
        #expect(zero, "last-second IOPS still \(app.state.engineRates.rate(.read, .lastSecond)?.iops ?? -1) after the job ended")
        // A second without completions empties the window; a few frames of slack beyond it.
        #expect(waited < 5, "took \(waited) s after the job ended")
        #expect(app.state.engineRates.rows.first?.reads == total)
        #expect(app.state.engineRates.rate(.read, .whole)?.iops == whole)
        app.shutdown()
    }
}

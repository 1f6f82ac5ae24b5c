import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// Time a human spends is not I/O time: a request held in step mode reports the latency of
/// its I/O, and a paused time-based job runs its remaining time after it is resumed.
@Suite struct StepClockTests {
    @Test("a write held in step mode reports the latency of its I/O: latency plus the time held fits in the wall time")
    func stepLatencyExcludesHeldTime() throws {
        let f = try TuiFixture("step-latency")
        let app = try f.app(try f.raw(), write: true)
        app.handle(.char("s"))
        let start = monotonicNanos()
        app.execute(.write(offset: 0x10000, length: 4096, pattern: 0x5a))
        pumpUntil(app) { app.state.heldEvent != nil }
        // To the SQE's submission: a hold there lies between the request's start and its
        // completion, inside the span its latency measures.
        stepUntilHeld(app, containing: "SQE", limit: 10)
        #expect(app.state.heldEvent?.contains("SQE") == true, "held: \(app.state.heldEvent ?? "nothing")")
        // The held time is the input of this test: hold the request for at least 0.5 s.
        let t0 = monotonicNanos()
        _ = Progress.wait(timeout: 5, interval: 0.01) { monotonicNanos() - t0 >= 500_000_000 }
        for _ in 0..<40 where app.state.live.completedRequests == 0 { stepOnce(app) }
        // Held time read before the clock: it can only grow, so it never exceeds the wall time.
        let held = (0..<64).reduce(UInt64(0)) { $0 + app.gate.heldNanos(queue: Int32($1)) }
        let wall = monotonicNanos() - start
        let slow = try #require(app.state.live.slowest.first)
        #expect(app.state.live.completedRequests == 1)
        // The gate counted the hold it was given; a latency that included the held time
        // would add it twice and not fit in the wall time, however slow the machine.
        #expect(held >= 500_000_000, "held \(formatDuration(held))")
        #expect(slow.latencyNs + held <= wall, "latency \(formatDuration(slow.latencyNs)) + held \(formatDuration(held)) > wall \(formatDuration(wall))")
        #expect(app.state.stepHistory.contains { $0.contains("completed ok in") && $0.contains("time held in step mode not counted") })
        app.handle(.escape)
        app.shutdown()
    }

    @Test("the next: preview of a held CQE and completion shows the latency the step then shows: the time held is not in it")
    func heldPreviewExcludesHeldTime() throws {
        let f = try TuiFixture("step-preview")
        let app = try f.app(try f.raw(), write: true)
        app.handle(.char("s"))
        app.execute(.write(offset: 0x20000, length: 4096, pattern: 0x3c))
        pumpUntil(app) { app.state.heldEvent != nil }
        stepUntilHeld(app, containing: "SQE", limit: 10)
        #expect(app.state.heldEvent?.contains("SQE") == true, "held: \(app.state.heldEvent ?? "nothing")")
        // Hold the request for at least 0.5 s (the input of this test).
        let t0 = monotonicNanos()
        _ = Progress.wait(timeout: 5, interval: 0.01) { monotonicNanos() - t0 >= 500_000_000 }
        for word in ["CQE", "guest write completed"] {
            stepUntilHeld(app, containing: word)
            let preview = try #require(app.state.heldEvent, "nothing held before the \(word); the steps so far:\n\(app.state.stepHistory.joined(separator: "\n"))")
            #expect(preview.contains(word), "held: \(preview)")
            // The figure after "after"/"in": µs or ms, never the 0.5 s held.
            let figure = preview.components(separatedBy: word == "CQE" ? " after " : " in ").dropFirst().first?.split(separator: " ").first.map(String.init) ?? ""
            #expect(figure.hasSuffix("µs") || figure.hasSuffix("ms") || figure.hasSuffix("ns"), "preview: \(preview)")
            stepOnce(app)
            #expect(app.state.stepHistory.last == preview, "preview: \(preview)\nafter the step: \(app.state.stepHistory.last ?? "")")
        }
        app.handle(.escape)
        app.shutdown()
    }

    @Test("a paused time_based job does not end on resume: it runs its remaining time")
    func pausedTimeBasedJobKeepsItsRemainingTime() throws {
        let f = try TuiFixture("pause-clock")
        let img = try f.raw()
        let job = f.dir + "/t.fio"
        try "[t]\nrw=randread\nbs=4k\nsize=8M\nruntime=2s\ntime_based=1\nioengine=io_uring\n".write(toFile: job, atomically: true, encoding: .utf8)
        let app = try f.app(img)
        app.execute(.job(path: job))
        pumpUntil(app) { (app.state.jobSummary ?? "").contains(" I/Os") && !(app.state.jobSummary ?? "").contains(": 0 I/Os") }
        app.handle(.char(" "))
        #expect(app.state.paused)
        // Paused for longer than the whole runtime (the pause is the input of this test).
        let t0 = monotonicNanos()
        _ = Progress.wait(timeout: 10, interval: 0.05) { app.pump(); return monotonicNanos() - t0 >= 2_500_000_000 }
        #expect(app.state.busy, "the job ended while paused")
        let atResume = ioCount(app.state.jobSummary)
        app.handle(.char(" "))
        #expect(!app.state.paused)
        pumpUntil(app) { !app.state.busy }
        let done = app.state.lastJobLine ?? ""
        let total = ioCount(done.replacingOccurrences(of: " done:", with: ":"))
        #expect(total > atResume, "no I/O after the resume: \(atResume) at resume, final line: \(done)")
        app.shutdown()
    }

    /// The I/O count of a job line ("job t.fio 40%: 1234 I/Os, ...").
    func ioCount(_ line: String?) -> UInt64 {
        guard let l = line, let r = l.range(of: " I/Os") else { return 0 }
        return UInt64(l[..<r.lowerBound].split(separator: " ").last ?? "") ?? 0
    }
}

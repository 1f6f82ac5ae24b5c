import Foundation
import Testing
import BlockCore
import BlockEngine

/// A drainer sleeps in `EventSubscription.wait(timeoutNs:)` and is woken by the events
/// themselves or by `wakeReader()`, never by its timeout (each wait here has 60 s).
@Suite struct EventStreamWakeTests {
    static let longWait: UInt64 = 60_000_000_000

    /// Pushing a quarter of a ring from another thread wakes a subscriber that waits with a
    /// 60 s timeout, and every pushed event is then there to drain.
    @Test func aQuarterFullRingWakesTheWaitingSubscriber() throws {
        let s = EventStream(queues: 2, capacityPerQueue: 64)
        let sub = s.subscribe()
        let started = DispatchSemaphore(value: 0)
        let t = Thread {
            started.wait()
            for i in 0..<16 { s.publish(IoEvent(queue: 1, request: UInt64(i), .cqDrain(batch: 0))) }
        }
        t.start()
        let t0 = monotonicNanos()
        started.signal()
        var got = 0
        while got < 16 && monotonicNanos() - t0 < Self.longWait {
            let n = sub.drain { _ in }
            got += n
            if n == 0 { sub.wait(timeoutNs: Self.longWait) }
        }
        #expect(got == 16)
        #expect(monotonicNanos() - t0 < Self.longWait / 2, "the subscriber slept until its timeout")
    }

    /// `wakeReader()` from another thread ends a wait that no event would end (a stop request).
    @Test func wakeReaderEndsAWaitWithNoEvents() {
        let s = EventStream(queues: 1, capacityPerQueue: 64)
        let sub = s.subscribe()
        let t = Thread { s.wakeReader() }
        let t0 = monotonicNanos()
        t.start()
        sub.wait(timeoutNs: Self.longWait)
        #expect(monotonicNanos() - t0 < Self.longWait / 2, "the wait ran to its timeout")
        #expect(sub.drain { _ in } == 0)
    }
}

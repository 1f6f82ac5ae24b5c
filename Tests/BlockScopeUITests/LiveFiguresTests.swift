import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// The In-flight filter and the Completions windows, unit by unit.
@Suite struct LiveFiguresTests {
    func req(_ q: Int, _ id: UInt64, _ op: GuestOp, _ off: UInt64, _ len: UInt64, age ns: UInt64, now: UInt64) -> OutstandingRequest {
        OutstandingRequest(queue: q, userData: id, op: op, offset: off, length: len, acceptedNs: now - ns)
    }

    @Test("the In-flight filter keeps writes, one queue, a guest range or old requests, and names words it does not know")
    func filterWords() {
        let now = monotonicNanos()
        let rs = [req(1, 1, .read, 0x100000, 4096, age: 10_000, now: now),
                  req(1, 2, .write, 0x180000, 4096, age: 2_000_000, now: now),
                  req(2, 3, .discard, 0x300000, 65536, age: 5_000, now: now),
                  req(2, 4, .fsync, 0, 0, age: 5_000, now: now)]
        func ids(_ f: String) -> [UInt64] { let x = InFlightFilter(f); return rs.filter { x.matches($0, now: now) }.map(\.userData) }
        #expect(ids("w") == [2, 3])
        #expect(ids("r") == [1])
        #expect(ids("f") == [4])
        #expect(ids("q2") == [3, 4])
        #expect(ids("w q1") == [2])
        #expect(ids("0x100000-0x200000") == [1, 2])
        #expect(ids("1M-2M") == [1, 2])
        #expect(ids("0x300010") == [3])
        #expect(ids(">1ms") == [2])
        #expect(ids("") == [1, 2, 3, 4])
        #expect(InFlightFilter("w bogus").unknown == ["bogus"])
    }

    @Test("histogram buckets tile the latencies, and whole-job percentiles are within 9% of the exact ones")
    func wholeWindowPercentiles() {
        for b in 0..<480 {
            let (lo, hi) = LatencyWindows.bounds(b)
            #expect(LatencyWindows.bucket(lo) == b && LatencyWindows.bucket(hi - 1) == b && LatencyWindows.bucket(hi) == b + 1, "bucket \(b)")
        }
        var w = LatencyWindows()
        var values: [UInt64] = []
        var rng = SeededRandom(seed: 40)
        let t = monotonicNanos()
        for _ in 0..<10000 {
            let v = 20_000 + rng.next() % 3_000_000
            values.append(v)
            w.record(time: t, latencyNs: v, op: .write)
        }
        values.sort()
        let s = w.summary(.whole, [.write], now: t)
        let exact = { (p: Double) in values[Int((p / 100 * Double(values.count)).rounded(.up)) - 1] }
        for (p, got) in [(50.0, s.p50), (99.0, s.p99), (99.9, s.p999)] {
            let e = Double(exact(p)), g = Double(got ?? 0)
            #expect(abs(g - e) / e <= 0.09, "p\(p): \(g) vs exact \(e)")
        }
        #expect(s.max == values.last)
        #expect(s.count == 10000)
        // The last second holds the exact values; reads are a separate row.
        let last = w.summary(.lastSecond, [.write], now: t)
        #expect(last.p50 == exact(50) && last.exact)
        #expect(w.summary(.lastSecond, [.read], now: t).count == 0)
        // Samples older than a second are out of the last-second window, not of the whole.
        #expect(w.summary(.lastSecond, [.write], now: t + 2_000_000_000).count == 0)
        #expect(w.summary(.whole, [.write], now: t + 2_000_000_000).count == 10000)
    }
}

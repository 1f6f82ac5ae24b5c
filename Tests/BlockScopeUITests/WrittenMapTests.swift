import BlockScopeUI
import Testing
import TestSupport

/// The session's written-bytes sets against a byte-per-chunk brute force.
@Suite struct WrittenMapTests {
    /// Proves: after random inserts, `intersects` agrees with a brute-force bitmap at the
    /// map's chunk size, including after the chunk size grows for a large space.
    @Test func writtenMapMatchesBruteForce() {
        var m = WrittenMap()
        var rng = SeededRandom(seed: 12345)
        func next() -> UInt64 { rng.next() }
        var inserted: [(UInt64, UInt64)] = []
        for _ in 0..<2000 {
            let s = next() % (64 << 20), l = next() % (256 << 10) + 1
            m.insert(s, length: l)
            inserted.append((s, l))
        }
        m.insert(1 << 40, length: 4096)   // forces coarser chunks
        inserted.append((1 << 40, 4096))
        let c = UInt64(1) << m.chunkShift
        for _ in 0..<2000 {
            let s = next() % (70 << 20), l = next() % (64 << 10) + 1
            let expect = inserted.contains { a in (a.0 >> m.chunkShift) * c < s + l && s < ((a.0 + a.1 - 1) >> m.chunkShift + 1) * c }
            #expect(m.intersects(s, length: l) == expect)
        }
        #expect(m.intersects(1 << 40, length: 1))
    }

    /// Proves: IntervalSet's binary-search insert keeps ranges sorted, merged and exact.
    @Test func intervalSetMergesExactly() {
        var s = IntervalSet()
        var bytes = [Bool](repeating: false, count: 1 << 16)
        var rng = SeededRandom(seed: 99)
        func next() -> UInt64 { rng.next() }
        for _ in 0..<3000 {
            let a = next() % 65000, l = next() % 300 + 1
            s.insert(a, length: l)
            for i in a..<min(a + l, 1 << 16) { bytes[Int(i)] = true }
        }
        for (i, r) in s.ranges.enumerated() {
            if i > 0 { #expect(s.ranges[i - 1].upperBound < r.lowerBound) }
        }
        for _ in 0..<3000 {
            let a = next() % 65000, l = next() % 100 + 1
            #expect(s.intersects(a, length: l) == bytes[Int(a)..<Int(min(a + l, 1 << 16))].contains(true))
        }
    }
}

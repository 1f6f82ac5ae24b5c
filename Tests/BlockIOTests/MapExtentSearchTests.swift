import Testing
import BlockIO

/// `firstExtentIndex(endingAfter:in:)`: where `map` starts in a backing image's map for an
/// unallocated range (the answers are worked out by hand for a map with a gap and a tail).
@Suite struct MapExtentSearchTests {
    let map = [
        MapExtent(start: 0, length: 10, depth: 0, present: true, zero: false, data: true),
        MapExtent(start: 10, length: 10, depth: 0, present: true, zero: true, data: false),
        MapExtent(start: 30, length: 10, depth: 0, present: true, zero: false, data: true),
    ]

    @Test("the first extent that ends after the offset, or the count when none does")
    func findsTheFirstExtentEndingAfterTheOffset() {
        let cases: [(offset: UInt64, index: Int)] = [(0, 0), (9, 0), (10, 1), (19, 1), (20, 2), (25, 2), (39, 2), (40, 3), (1 << 40, 3)]
        for c in cases {
            #expect(firstExtentIndex(endingAfter: c.offset, in: map) == c.index, "offset \(c.offset)")
        }
        #expect(firstExtentIndex(endingAfter: 0, in: []) == 0)
    }
}

/// The tests' one pseudo-random generator: xorshift64* from a seed, so a failing run can be
/// repeated exactly (print the seed with the failure). The same generator as
/// ``TestSupport/pseudoRandomBytes(count:seed:)``; a zero seed is replaced by a fixed
/// non-zero one (xorshift stays at zero forever).
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator whose sequence depends only on `seed`.
    public init(seed: UInt64) {
        // Nearby seeds (1, 2, 3...) start far apart.
        let mixed = seed &* 0x9E37_79B9_7F4A_7C15
        state = mixed == 0 ? 0x9E37_79B9_7F4A_7C15 : mixed
    }

    /// Creates a generator that starts at `state` itself (no mixing; zero is replaced as
    /// above): ``TestSupport/pseudoRandomBytes(count:seed:)``'s sequence.
    public init(state: UInt64) {
        self.state = state == 0 ? 0x9E37_79B9_7F4A_7C15 : state
    }

    /// The next 64 pseudo-random bits.
    public mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }

    /// A value in `0..<bound` (`bound` > 0).
    public mutating func below(_ bound: UInt64) -> UInt64 {
        bound.multipliedFullWidth(by: next()).high
    }

    /// A value in `0..<bound` as an `Int` (`bound` > 0).
    public mutating func below(_ bound: Int) -> Int {
        Int(below(UInt64(bound)))
    }

    /// The next pseudo-random byte.
    public mutating func byte() -> UInt8 {
        UInt8(truncatingIfNeeded: next() >> 56)
    }
}

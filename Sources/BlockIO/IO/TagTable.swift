/// What each in-flight ring tag of a queue waits for, with the tag as an index into an array
/// (reused once its CQE is reaped), so the submit/complete path neither hashes nor allocates.
///
/// Tags start at 1; ``park(_:)`` returns a tag, ``unpark(_:)`` takes the value back exactly
/// once. Owned by one queue (one thread), like the ring it serves.
package struct TagTable<Value> {
    private var slots: [Value?] = []
    private var free: [Int] = []

    /// An empty table.
    package init() {}

    /// Stores `v` under a free tag and returns the tag (index + 1).
    package mutating func park(_ v: Value) -> UInt64 {
        if let i = free.popLast() {
            slots[i] = v
            return UInt64(i) + 1
        }
        slots.append(v)
        return UInt64(slots.count)
    }

    /// Takes the value of tag `t` out of the table; nil for an unknown or already taken tag.
    package mutating func unpark(_ t: UInt64) -> Value? {
        guard t >= 1, t <= UInt64(slots.count) else { return nil }
        let i = Int(t - 1)
        guard let v = slots[i] else { return nil }
        slots[i] = nil
        free.append(i)
        return v
    }
}

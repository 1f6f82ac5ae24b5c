/// Refcount entry encoding: widths 1..64 bits; sub-byte widths packed LSB first,
/// byte and wider widths big-endian.
public enum Qcow2Refcounts {
    /// Refcount entries per refcount block: `cluster_size * 8 / refcount_bits`.
    public static func entriesPerBlock(clusterBits: UInt32, refcountOrder: UInt32) -> UInt64 {
        ((UInt64(1) << UInt64(clusterBits)) * 8) >> UInt64(refcountOrder)
    }

    /// The largest refcount a width can hold.
    public static func maxValue(order: UInt32) -> UInt64 {
        order >= 6 ? UInt64.max : (UInt64(1) << (UInt64(1) << UInt64(order))) - 1
    }

    /// Entry `index` of a refcount block of width `1 << order` bits.
    public static func get(_ block: [UInt8], index: Int, order: UInt32) -> UInt64 {
        let bits = 1 << Int(order)
        if bits < 8 {
            let bitPos = index * bits
            let byte = block[bitPos >> 3]
            return UInt64((byte >> UInt8(bitPos & 7)) & UInt8((1 << bits) - 1))
        }
        let width = bits / 8
        var v: UInt64 = 0
        let base = index * width
        for i in 0..<width { v = v << 8 | UInt64(block[base + i]) }
        return v
    }

    /// Sets entry `index` of a refcount block to `value` (truncated to the width).
    public static func set(_ block: inout [UInt8], index: Int, order: UInt32, value: UInt64) {
        let bits = 1 << Int(order)
        if bits < 8 {
            let bitPos = index * bits
            let mask = UInt8((1 << bits) - 1) << UInt8(bitPos & 7)
            let v = (UInt8(truncatingIfNeeded: value) << UInt8(bitPos & 7)) & mask
            block[bitPos >> 3] = (block[bitPos >> 3] & ~mask) | v
            return
        }
        storeBE(value, into: &block, at: index * (bits / 8), width: bits / 8)
    }
}

/// An in-memory refcount array for `check`: one UInt64 per cluster, grown on demand
/// (only up to the clusters the metadata references, which lie within the file or just past it).
struct RefcountArray {
    var counts: [UInt64]
    let max: UInt64

    init(clusters: Int, order: UInt32) {
        counts = [UInt64](repeating: 0, count: clusters)
        max = Qcow2Refcounts.maxValue(order: order)
    }

    /// Adds one reference to every cluster of `[offset, offset+length)`; returns how many
    /// clusters were already at the width's maximum (each is a corruption).
    mutating func add(offset: UInt64, length: UInt64, clusterBits: UInt32, limit: Int) -> (overflows: Int, pastLimit: Int) {
        if length == 0 { return (0, 0) }
        let first = offset >> UInt64(clusterBits)
        // A range from a size field may reach past 2^64 or far past the file: such a range
        // is one problem and counts no cluster (a 2^56-byte bitmap directory once made check
        // step through every cluster of it, one problem each, for minutes).
        let (end, wrapped) = offset.addingReportingOverflow(length - 1)
        let last = end >> UInt64(clusterBits)
        if wrapped || last >= UInt64(limit) { return (0, 1) }
        var overflows = 0
        var k = first
        while k <= last {
            let i = Int(k)
            if i >= counts.count { counts += [UInt64](repeating: 0, count: i + 1 - counts.count) }
            if counts[i] == max { overflows += 1 } else { counts[i] += 1 }
            k += 1
        }
        return (overflows, 0)
    }
}

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

/// An in-memory refcount array for `check` and the structure walk: one byte per cluster,
/// with counts of 255 and more kept in a side table (they are rare: a cluster shared by
/// hundreds of snapshots). Grown on demand, only up to the clusters the metadata
/// references, which lie within the file or just past it. 16 MiB for a 1 TiB file of
/// 64 KiB clusters, where one UInt64 per cluster took 128 MiB.
struct RefcountArray: Sendable {
    private(set) var small: [UInt8]
    private var large: [Int: UInt64] = [:]
    let max: UInt64

    init(clusters: Int, order: UInt32) {
        small = [UInt8](repeating: 0, count: clusters)
        max = Qcow2Refcounts.maxValue(order: order)
    }

    /// Clusters covered (references past it count 0).
    var count: Int { small.count }

    /// The count of cluster `i` (0 past the end).
    subscript(i: Int) -> UInt64 {
        if i >= small.count { return 0 }
        let v = small[i]
        return v == 255 ? large[i, default: 255] : UInt64(v)
    }

    /// Adds one reference to every cluster of `[offset, offset+length)`; returns how many
    /// clusters were already at the width's maximum (each is a corruption) and how many lie
    /// at or past cluster `limit` (not counted).
    mutating func add(offset: UInt64, length: UInt64, clusterBits: UInt32, limit: Int) -> (overflows: Int, pastLimit: Int) {
        if length == 0 { return (0, 0) }
        let first = offset >> UInt64(clusterBits)
        // A range from a size field may reach past 2^64 or far past the file: such a range
        // is one problem and counts no cluster (a 2^56-byte bitmap directory once made check
        // step through every cluster of it, one problem each, for minutes).
        let (end, wrapped) = offset.addingReportingOverflow(length - 1)
        let last = end >> UInt64(clusterBits)
        if wrapped || last >= UInt64(limit) { return (0, 1) }
        if first == last && first < UInt64(small.count) {
            let i = Int(first), v = small[i]
            if v < 254 && UInt64(v) < max { small[i] = v + 1; return (0, 0) }
        }
        var overflows = 0
        var k = first
        while k <= last {
            let i = Int(k)
            if i >= small.count { small += [UInt8](repeating: 0, count: i + 1 - small.count) }
            let v = self[i]
            if v == max { overflows += 1 } else if v + 1 >= 255 { small[i] = 255; large[i] = v + 1 } else { small[i] = UInt8(v + 1) }
            k += 1
        }
        return (overflows, 0)
    }
}

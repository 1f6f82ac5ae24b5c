import BlockIO
import BlockInspect

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

extension RefcountArray {
    /// An array for `clusters` clusters whose counts saturate at the largest refcount of
    /// `order` (QCOW2's refcount_order).
    init(clusters: Int, order: UInt32) {
        self.init(clusters: clusters, max: Qcow2Refcounts.maxValue(order: order))
    }
}

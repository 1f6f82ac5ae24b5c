/// An in-memory refcount array for `check` and the structure walk: one byte per cluster,
/// with counts of 255 and more kept in a side table (they are rare: a cluster shared by
/// hundreds of snapshots). Grown on demand, only up to the clusters the metadata
/// references, which lie within the file or just past it. 16 MiB for a 1 TiB file of
/// 64 KiB clusters, where one UInt64 per cluster took 128 MiB.
package struct RefcountArray: Sendable {
    private(set) package var small: [UInt8]
    private var large: [Int: UInt64] = [:]
    package let max: UInt64

    package init(clusters: Int, max: UInt64) {
        small = [UInt8](repeating: 0, count: clusters)
        self.max = max
    }

    /// Clusters covered (references past it count 0).
    package var count: Int { small.count }

    /// The count of cluster `i` (0 past the end).
    package subscript(i: Int) -> UInt64 {
        if i >= small.count { return 0 }
        let v = small[i]
        return v == 255 ? large[i, default: 255] : UInt64(v)
    }

    /// Adds one reference to every cluster of `[offset, offset+length)`; returns how many
    /// clusters were already at the width's maximum (each is a corruption) and how many lie
    /// at or past cluster `limit` (not counted).
    package mutating func add(offset: UInt64, length: UInt64, clusterBits: UInt32, limit: Int) -> (overflows: Int, pastLimit: Int) {
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

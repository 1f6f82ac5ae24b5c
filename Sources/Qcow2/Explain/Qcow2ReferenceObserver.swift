import BlockIO
import BlockInspect

/// Who holds a reference the walk counts: the view whose tables are walked, and where in
/// them. Set by ``Qcow2ReferenceWalk`` for its ``Qcow2ReferenceWalk/observer``.
struct Qcow2Referrer: Sendable {
    /// The snapshot (index into the snapshot table) whose tables are walked; nil: the active image.
    var snapshot: Int?
    /// The L1 index of the L2 table being counted or walked; nil outside L1/L2 tables.
    var l1Index: Int?
    /// The entry of that L2 table being counted; nil for the table itself.
    var l2Index: Int?
    /// Whether that L2 entry reads as zeroes although it holds a host cluster.
    var zero = false

    /// The guest offset the entry maps, given the L2 entries per table and the cluster size
    /// (nil outside an L2 entry).
    func guestOffset(l2Entries: UInt64, clusterBits: UInt32) -> UInt64? {
        guard let l1Index, let l2Index else { return nil }
        return (UInt64(l1Index) * l2Entries + UInt64(l2Index)) << UInt64(clusterBits)
    }
}

/// What `explain` learns from the one reference walk `check` runs: each reference as it is
/// counted, each stored refcount that differs, and a say over whether an L2 table's entries
/// count at all (a table whose content is not an L2 table is one finding, not thousands of
/// references to random clusters). Called on the walking thread only.
protocol Qcow2ReferenceObserver: AnyObject {
    /// `length` bytes at `offset` were counted as `kind` for `referrer` (length 0: a data
    /// entry into the external data file, which counts nothing here).
    func counted(offset: UInt64, length: UInt64, kind: HostRegionKind, by referrer: Qcow2Referrer)
    /// Whether the entries of the L2 table `words` at `offset` are counted.
    func countsL2(_ words: [UInt64], at offset: UInt64, by referrer: Qcow2Referrer) -> Bool
    /// Cluster `cluster`'s stored refcount differs from the references found.
    func mismatched(cluster: Int, stored: UInt64, expected: UInt64)
}

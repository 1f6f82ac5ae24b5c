import BlockCore

/// Where `m` in Hex takes a guest offset in the host file: the data's host offset for any
/// cluster kind, through what the inspectors already expose.
enum HostLocation {
    /// The host offset for guest `offset` and a sentence saying what is there: the data
    /// for an allocated cluster, the compressed bytes for a compressed one, the L2 entry
    /// for a zero or unallocated QCOW2 cluster (it has no data), the same offset in a RAW
    /// file's hole. Nil when the format has no host location for it (a VHDX block that is
    /// not present).
    static func of(guest offset: UInt64, _ insp: any LayoutInspector) -> (host: UInt64, note: String)? {
        if let h = insp.mapGuest(offset).host { return (h, "guest \(hex(offset)) → data at host \(hex(h))") }
        if let e = insp as? ExtentInspector, e.disk.format == .raw {
            // RAW maps every guest byte to the same host offset; a hole reads as zeroes.
            return (offset, "raw: guest \(hex(offset)) is host \(hex(offset)) (a hole in the file: reads as zeroes)")
        }
        guard let q = insp as? any ClusterTableInspector else { return nil }
        guard let e = q.l2Entry(forGuest: offset) else { return nil }
        let kind = q.type(of: e)
        if kind == .compressed {
            let c = q.compressedExtent(e)
            return (c.offset, "guest \(hex(offset)) is in a compressed cluster: its \(c.length) compressed bytes start at host \(hex(c.offset))")
        }
        let cluster = offset / q.clusterSize
        let per = UInt64(max(1, q.l2Entries))
        let l1i = Int(cluster / per), l2i = cluster % per
        guard l1i < q.l1.count else { return nil }
        let entry = q.l2TableOffset(q.l1[l1i]) + l2i * (q.extendedL2 ? 16 : 8)
        let isZero = kind == .zeroPlain || kind == .zeroAlloc
        if !isZero, kind == .normal, e.hostOffset != 0 { return (e.hostOffset + offset % q.clusterSize, "guest \(hex(offset)) → host \(hex(e.hostOffset + offset % q.clusterSize))") }
        return (entry, "guest \(hex(offset)) is \(isZero ? "a zero cluster" : "unallocated") (no data on the host): showing its entry L2[\(l2i)] at host \(hex(entry))")
    }
}

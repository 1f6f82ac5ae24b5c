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
        guard let q = insp as? Qcow2Inspector else { return nil }
        let l = q.layout
        guard let e = l.l2Entry(forGuest: offset) else { return nil }
        if e.compressed {
            let c = l.compressedExtent(e)
            return (c.offset, "guest \(hex(offset)) is in a compressed cluster: its \(c.length) compressed bytes start at host \(hex(c.offset))")
        }
        let cluster = offset / l.clusterSize
        let per = UInt64(l.l2Entries)
        let l1i = Int(cluster / per), l2i = cluster % per
        guard l1i < l.l1.count else { return nil }
        let entry = Qcow2Layout.l2Offset(l.l1[l1i]) + l2i * (l.extendedL2 ? 16 : 8)
        if !e.zero, l.dataOffset(e) != 0 { return (l.dataOffset(e) + offset % l.clusterSize, "guest \(hex(offset)) → host \(hex(l.dataOffset(e) + offset % l.clusterSize))") }
        return (entry, "guest \(hex(offset)) is \(e.zero ? "a zero cluster" : "unallocated") (no data on the host): showing its entry L2[\(l2i)] at host \(hex(entry))")
    }
}

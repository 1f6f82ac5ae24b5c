import BlockIO
import BlockInspect

extension Qcow2Inspection {
    /// L1 as the directory, the L2 table under L1 entry `i` as leaf `i`; nil for the
    /// allocation role and for a leaf whose L1 entry is empty or whose table is unreadable.
    public func table(_ ref: InspectTableRef) -> InspectTable? {
        switch ref.role {
        case .directory: return l1Table()
        case .leaf: return l2InspectTable(ref.index)
        case .allocation: return nil
        }
    }

    /// The L1 row and the L2 row that map guest `offset` (the L2 row even when the L1 entry is
    /// empty: its index is where the entry would be).
    public func path(toGuest offset: UInt64) -> [InspectLink] {
        let per = UInt64(max(1, l2Entries))
        let cluster = offset / clusterSize
        let i = Int(cluster / per)
        return [InspectLink(.directory, i), InspectLink(.leaf(i), Int(cluster % per))]
    }

    private func l1Table() -> InspectTable {
        let span = clusterSize * UInt64(l2Entries)
        let entries = l1
        if entries.isEmpty, let why = tablesUnreadable {
            return InspectTable(ref: .directory, name: "L1", heading: "L1 table at \(hex(l1TableOffset)): UNREADABLE", count: 0,
                                hostOffset: l1TableOffset, guestSpan: span, childName: "L2", childSpan: clusterSize, widths: [],
                                error: why, errorNotes: ["No guest range can be mapped: none is shown as unallocated."]) { _ in
                InspectEntry(index: 0, state: .invalid, tone: .error, columns: [])
            }
        }
        let used = entries.reduce(0) { $0 + (l2TableOffset($1) != 0 ? 1 : 0) }
        return InspectTable(ref: .directory, name: "L1",
                            heading: "L1 table at \(hex(l1TableOffset)): \(entries.count) entries, \(used) with L2 tables; each covers \(formatBytes(Double(span)))",
                            count: entries.count, hostOffset: l1TableOffset, guestSpan: span, childName: "L2", childSpan: clusterSize,
                            widths: [10, 22, 28, 8]) { [unowned self] i in l1Entry(i, span) }
    }

    /// L1 entry `i`: the guest range it covers, its L2 table, COPIED, the table's refcount.
    private func l1Entry(_ i: Int, _ span: UInt64) -> InspectEntry {
        let e = i < l1.count ? l1[i] : 0
        let off = l2TableOffset(e)
        let guest = UInt64(i) * span
        let name = "L1[\(i)]", g = "guest \(hex(guest))"
        if off == 0 {
            return InspectEntry(index: i, raw: e, state: .absent, tone: .free, guestOffset: guest, guestLength: span, columns: [name, g, "unallocated"])
        }
        if let err = l2ReadError(l1Index: i) {
            return InspectEntry(index: i, raw: e, state: .invalid, tone: .error, guestOffset: guest, guestLength: span, hostOffset: off,
                                childError: err, columns: [name, g, "L2 table at \(hex(off)) UNREADABLE: \(err)"])
        }
        let rc = refcount(ofClusterAt: off).map { "\($0)" } ?? "?"
        return InspectEntry(index: i, raw: e, state: .table, tone: .subtable, guestOffset: guest, guestLength: span, hostOffset: off,
                            child: .leaf(i), columns: [name, g, "L2 table at \(hex(off))", e & Qcow2Entry.copied != 0 ? "COPIED" : "", "refcount \(rc)"])
    }

    private func l2InspectTable(_ i: Int) -> InspectTable? {
        guard i < l1.count, let t = l2Table(l1Index: i) else { return nil }
        let off = l2TableOffset(l1[i])
        return InspectTable(ref: .leaf(i), name: "L2",
                            heading: "L2 table of L1[\(i)] at \(hex(off)): \(t.count) entries, cluster \(formatBytes(Double(clusterSize)))\(extendedL2 ? ", extended L2" : "")",
                            count: t.count, hostOffset: off, guestSpan: clusterSize, widths: [10, 22, 24, 20],
                            compactWidths: [8, 18, 12, 12]) { [unowned self] j in
            l2Entry(i, j, j < t.count ? t[j] : Qcow2L2Entry(entry: 0, bitmap: 0))
        }
    }

    /// L2 entry `j` of the table under L1 entry `i`: host offset, flags, the target's
    /// refcount, and the subcluster bitmaps of an extended L2 entry.
    private func l2Entry(_ i: Int, _ j: Int, _ e: Qcow2L2Entry) -> InspectEntry {
        let cs = clusterSize
        let guest = (UInt64(i) * UInt64(l2Entries) + UInt64(j)) * cs
        var flags: [String] = []
        if e.entry & Qcow2Entry.copied != 0 { flags.append("COPIED") }
        let tone: InspectTone
        let state: InspectEntryState
        var hostText = ""
        var hostOffset: UInt64?
        var rc = ""
        switch type(of: e) {
        case .compressed:
            flags.append("compressed"); tone = .compressed; state = .compressed
            let c = compressedExtent(e)
            hostText = "\(hex(c.offset)) (\(c.length) B)"
            hostOffset = c.offset
            rc = refcount(ofClusterAt: c.offset).map { "refcount \($0)" } ?? ""
        case .zeroAlloc, .zeroPlain:
            flags.append("zero"); tone = .zero; state = .zero
        case .unallocatedAlloc, .unallocatedPlain:
            // "backing" only where the backing chain holds data (qemu-img map's depth >= 1).
            tone = unallocatedState(guest, cs).tone; state = .absent
            flags.append(tone == .backing ? "backing" : hasBacking ? "unallocated (zeroes)" : "unallocated")
        case .invalid:
            flags.append("invalid bitmap"); tone = .error; state = .invalid
        case .normal:
            tone = .data; state = .present
        }
        if !e.isCompressed && e.hostOffset != 0 {
            hostText = hex(e.hostOffset)
            hostOffset = e.hostOffset
            rc = refcount(ofClusterAt: e.hostOffset).map { "refcount \($0)" } ?? "refcount ?"
        }
        if extendedL2 {
            let b = e.bitmap
            rc += "  alloc \(Qcow2Inspection.bits(UInt32(b & 0xffff_ffff)))  zero \(Qcow2Inspection.bits(UInt32(b >> 32)))"
        }
        return InspectEntry(index: j, raw: e.entry, state: state, tone: tone, guestOffset: guest, guestLength: cs, hostOffset: hostOffset,
                            columns: ["L2[\(j)]", "guest \(hex(guest))", hostText, flags.joined(separator: " "), rc])
    }

    /// A 32-bit subcluster bitmap, subcluster 0 first: `█` set, `·` clear.
    static func bits(_ v: UInt32) -> String {
        String((0..<32).map { v & (1 << UInt32($0)) != 0 ? "█" : "·" })
    }

    /// The data's host offset for a data cluster; the compressed bytes for a compressed one;
    /// for a zero or unallocated cluster (it has no data) its L2 entry.
    public func hostLocation(guest offset: UInt64) -> (host: UInt64, note: String)? {
        if let h = mapGuest(offset).host { return (h, "guest \(hex(offset)) → data at host \(hex(h))") }
        guard let e = l2Entry(forGuest: offset) else { return nil }
        let kind = type(of: e)
        if kind == .compressed {
            let c = compressedExtent(e)
            return (c.offset, "guest \(hex(offset)) is in a compressed cluster: its \(c.length) compressed bytes start at host \(hex(c.offset))")
        }
        let cluster = offset / clusterSize
        let per = UInt64(max(1, l2Entries))
        let l1i = Int(cluster / per), l2i = cluster % per
        guard l1i < l1.count else { return nil }
        let entry = l2TableOffset(l1[l1i]) + l2i * (extendedL2 ? 16 : 8)
        let isZero = kind == .zeroPlain || kind == .zeroAlloc
        return (entry, "guest \(hex(offset)) is \(isZero ? "a zero cluster" : "unallocated") (no data on the host): showing its entry L2[\(l2i)] at host \(hex(entry))")
    }
}

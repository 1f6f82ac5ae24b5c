import BlockCore

/// L1/L2 (QCOW2): the L1 table; Enter opens an L2 table with each entry's host offset,
/// COPIED/compressed/zero flags, subcluster bitmaps (extended L2) and the target's refcount.
public final class L1L2View: TUIView {
    /// "L1/L2".
    public let title = "L1/L2"
    /// Footer keys.
    public let keys: [(String, String)] = [("↑↓", "select"), ("Enter", "open L2 / hex"), ("Esc", "back")]
    /// "find".
    public let searchHint: String? = "find"
    /// Guest offsets (an L1/L2 path is a guest address).
    public let gotoSpace: AddressSpace? = .guest
    private var l1Cursor = ListCursor()
    private var l2Cursor = ListCursor()
    /// The open L2 table's L1 index, if one is open.
    public private(set) var openL1: Int?
    private var visible = 20

    /// Creates the view.
    public init() {}

    /// The L1 rows: index, guest range, L2 offset, flags, refcount.
    func l1Rows(_ q: any ClusterTableInspector) -> [(String, Role)] {
        q.l1.indices.map { l1Row(q, $0) }
    }

    /// The row of L1 entry `i`.
    func l1Row(_ q: any ClusterTableInspector, _ i: Int) -> (String, Role) {
        let l = q
        let span = l.clusterSize * UInt64(l.l2Entries)
        let e = l.l1[i]
        do {
            let off = l.l2TableOffset(e)
            let guest = "guest \(hex(UInt64(i) * span))".padded(22)
            if off == 0 { return ("L1[\(i)]".padded(10) + guest + "unallocated", .free) }
            if let err = l.l2ReadError(l1Index: i) { return ("L1[\(i)]".padded(10) + guest + "L2 table at \(hex(off)) UNREADABLE: \(err)", .error) }
            let rc = l.refcount(ofClusterAt: off).map { "\($0)" } ?? "?"
            return ("L1[\(i)]".padded(10) + guest + "L2 table at \(hex(off))".padded(28) + (e >> 63 != 0 ? "COPIED  " : "        ") + "refcount \(rc)", .l2)
        }
    }

    /// The rows of the L2 table under L1 entry `i`.
    func l2Rows(_ q: any ClusterTableInspector, _ i: Int) -> [(String, Role)] {
        let l = q
        guard i < l.l1.count, let t = l.l2Table(l1Index: i) else { return [] }
        return t.indices.map { l2Row(q, i, $0) }
    }

    /// The row of entry `j` of the L2 table under L1 entry `i`.
    /// `compact` narrows the columns (for screens under 90 columns).
    func l2Row(_ q: any ClusterTableInspector, _ i: Int, _ j: Int, compact: Bool = false) -> (String, Role) {
        let l = q
        guard i < l.l1.count, let t = l.l2Table(l1Index: i), j < t.count else { return ("", .normal) }
        let base = UInt64(i) * UInt64(l.l2Entries) * l.clusterSize
        let e = t[j]
        do {
            let w = compact ? (index: 8, guest: 18, host: 12, flags: 12) : (index: 10, guest: 22, host: 24, flags: 20)
            let guest = "guest \(hex(base + UInt64(j) * l.clusterSize))".padded(w.guest)
            var flags: [String] = []
            if e.entry & Qcow2Entry.copied != 0 { flags.append("COPIED") }
            let role: Role
            var host = ""
            var rc = ""
            switch l.type(of: e) {
            case .compressed:
                flags.append("compressed"); role = .compressed
                let c = l.compressedExtent(e)
                host = "\(hex(c.offset)) (\(c.length) B)"
                rc = l.refcount(ofClusterAt: c.offset).map { "refcount \($0)" } ?? ""
            case .zeroAlloc, .zeroPlain:
                flags.append("zero"); role = .zero
            case .unallocatedAlloc, .unallocatedPlain:
                // "backing" only where the backing chain holds data (qemu-img map's depth >= 1).
                role = l.unallocatedState(base + UInt64(j) * l.clusterSize, l.clusterSize).role
                flags.append(role == .backing ? "backing" : l.hasBacking ? "unallocated (zeroes)" : "unallocated")
            case .invalid:
                flags.append("invalid bitmap"); role = .error
            case .normal:
                role = .data
            }
            if !e.isCompressed && e.hostOffset != 0 {
                host = hex(e.hostOffset)
                rc = l.refcount(ofClusterAt: e.hostOffset).map { "refcount \($0)" } ?? "refcount ?"
            }
            var line = "L2[\(j)]".padded(w.index) + guest + host.padded(w.host) + flags.joined(separator: " ").padded(w.flags) + rc
            if l.extendedL2 {
                let b = e.bitmap
                line += "  alloc \(bits(UInt32(b & 0xffff_ffff)))  zero \(bits(UInt32(b >> 32)))"
            }
            return (line, role)
        }
    }

    /// Draws the L1 list or the open L2 table.
    public func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        guard let q = app.image.inspector as? any ClusterTableInspector else {
            s.centred(area, ["not a QCOW2 image", "L1/L2 tables exist only in QCOW2 images; this is \(app.image.format.rawValue)."]); return
        }
        let l = q
        visible = max(1, area.height - 2)
        if let i = openL1 {
            let count = l.l2Table(l1Index: i)?.count ?? 0
            s.put(area.x, area.y, "L2 table of L1[\(i)] at \(hex(l.l2TableOffset(l.l1[i]))): \(count) entries, cluster \(formatBytes(Double(l.clusterSize)))\(l.extendedL2 ? ", extended L2" : "")   (Esc: back)", CellStyle(.heading), maxWidth: area.width)
            // Narrower columns below 90 columns: the refcount stays on the row.
            let compact = area.width < 90
            visible = s.listRows(area.x, area.y + 2, width: area.width, maxY: area.maxY, count: count, cursor: &l2Cursor) { l2Row(q, i, $0, compact: compact) }
        } else if l.l1.isEmpty, let why = l.tablesUnreadable {
            s.put(area.x, area.y, "L1 table at \(hex(l.l1TableOffset)): UNREADABLE", CellStyle(.error), maxWidth: area.width)
            s.put(area.x, area.y + 2, why, CellStyle(.error), maxWidth: area.width)
            s.put(area.x, area.y + 3, "No guest range can be mapped: none is shown as unallocated.", CellStyle(.dim), maxWidth: area.width)
        } else {
            let used = l.l1.reduce(0) { $0 + (l.l2TableOffset($1) != 0 ? 1 : 0) }
            s.put(area.x, area.y, "L1 table at \(hex(l.l1TableOffset)): \(l.l1.count) entries, \(used) with L2 tables; each covers \(formatBytes(Double(l.clusterSize * UInt64(l.l2Entries))))", CellStyle(.heading), maxWidth: area.width)
            visible = s.listRows(area.x, area.y + 2, width: area.width, maxY: area.maxY, count: l.l1.count, cursor: &l1Cursor) { l1Row(q, $0) }
        }
    }

    /// Selection, Enter to open, Esc to go back.
    public func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        guard let q = app.image.inspector as? any ClusterTableInspector else { return false }
        if let i = openL1 {
            if e == .escape || e == .backspace || e == .left { openL1 = nil; return true }
            if e == .enter {
                let per = UInt64(q.l2Entries)
                app.pendingHex = ((UInt64(i) * per + UInt64(l2Cursor.selected)) * q.clusterSize, false)
                app.requestedView = "hex"
                return true
            }
            return l2Cursor.handle(e, count: q.l2Entries, visible: visible)
        }
        if e == .enter || e == .right {
            let i = l1Cursor.selected
            if i < q.l1.count, let err = q.l2ReadError(l1Index: i) { app.sayInView("L1[\(i)]: the L2 table is unreadable: \(err)", .error) }
            else if i < q.l1.count, q.l2TableOffset(q.l1[i]) != 0 { openL1 = i; l2Cursor = ListCursor() }
            else { app.sayInView("L1[\(i)] has no L2 table: that guest range is unallocated", .dim) }
            return true
        }
        return l1Cursor.handle(e, count: q.l1.count, visible: visible)
    }

    /// Selects the L1 and L2 entries that map a guest offset (clamped to the last cluster).
    public func goto(_ offset: UInt64, _ app: AppState) -> Notice {
        guard let q = app.image.inspector as? any ClusterTableInspector else { return Notice("not a QCOW2 image", .error) }
        let size = q.guestSize
        let target = size > 0 ? min(offset, size - 1) : 0
        let cluster = target / q.clusterSize
        let per = UInt64(q.l2Entries)
        l1Cursor.selected = Int(cluster / per)
        l1Cursor.clamp(count: q.l1.count, visible: visible)
        var where_ = "L1[\(cluster / per)]"
        if l1Cursor.selected < q.l1.count, let err = q.l2ReadError(l1Index: l1Cursor.selected) {
            openL1 = nil
            where_ += " (L2 table unreadable: \(err))"
        } else if l1Cursor.selected < q.l1.count, q.l2TableOffset(q.l1[l1Cursor.selected]) != 0 {
            openL1 = l1Cursor.selected
            l2Cursor.selected = Int(cluster % per)
            l2Cursor.clamp(count: Int(per), visible: visible)
            where_ += " L2[\(cluster % per)]"
        } else {
            openL1 = nil
            where_ += " (no L2 table: unallocated)"
        }
        if offset >= size && size > 0 {
            return Notice("\(hex(offset)) is beyond the \(formatBytes(Double(size))) disk: clamped to the last cluster, guest \(hex(cluster * q.clusterSize)), \(where_)", .warning)
        }
        return Notice("at guest \(hex(offset)): \(where_)", .ok)
    }

    /// Finds the next (or previous) row containing `text` (e.g. `compressed`, `zero`,
    /// `0x50000`) in the open L2 table or the L1 table, wrapping around.
    public func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        guard let q = app.image.inspector as? any ClusterTableInspector else { return SearchOutcome("not a QCOW2 image", found: false) }
        let t = text.lowercased()
        if let i = openL1 {
            let rows = l2Rows(q, i)
            guard let hit = scanWrapping(count: rows.count, from: l2Cursor.selected, direction, { rows[$0].0.lowercased().contains(t) }) else {
                return SearchOutcome("'\(text)' not found in this L2 table", found: false)
            }
            l2Cursor.selected = hit.index; l2Cursor.clamp(count: rows.count, visible: visible)
            return SearchOutcome(rows[hit.index].0, found: true, wrapped: hit.wrapped)
        }
        let rows = l1Rows(q)
        guard let hit = scanWrapping(count: rows.count, from: l1Cursor.selected, direction, { rows[$0].0.lowercased().contains(t) }) else {
            return SearchOutcome("'\(text)' not found in the L1 table", found: false)
        }
        l1Cursor.selected = hit.index; l1Cursor.clamp(count: rows.count, visible: visible)
        return SearchOutcome(rows[hit.index].0, found: true, wrapped: hit.wrapped)
    }
}

/// A 32-bit subcluster bitmap, subcluster 0 first: `█` set, `·` clear.
func bits(_ v: UInt32) -> String {
    String((0..<32).map { v & (1 << UInt32($0)) != 0 ? "█" : "·" })
}

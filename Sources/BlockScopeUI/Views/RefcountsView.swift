import BlockCore

/// Refcounts (QCOW2): the refcount table and blocks, a histogram of refcount values, and
/// leaked and over-referenced clusters highlighted.
public final class RefcountsView: TUIView {
    /// "Refcounts".
    public let title = "Refcounts"
    /// Footer keys.
    public let keys: [(String, String)] = [("↑↓", "select cluster"), ("Enter", "hex of cluster")]
    /// "find" (`/leaked` finds the next leaked cluster).
    public let searchHint: String? = "find (leaked)"
    /// Host offsets: each row is a host cluster.
    public let gotoSpace: AddressSpace? = .host
    private var cursor = ListCursor()
    private var visible = 10

    /// Creates the view.
    public init() {}

    private var summaryCache: (version: Int, hist: [(UInt64, Int)], report: CheckReport)?

    /// The row of host cluster `i`: index, offset, use (from the structure walk), stored
    /// refcount (read for this row only) and a note where it differs from the references.
    func clusterRow(_ q: any RefcountInspector, _ i: Int) -> (String, Role) {
        let cs = q.clusterSize
        let stored = q.refcount(ofClusterAt: UInt64(i) * cs)
        guard let u = q.usage else {
            return ("\(String(i).leftPadded(8)) \(hex(UInt64(i) * cs).padded(14)) \("…".padded(16)) refcount \(stored.map { "\($0)" } ?? "?")", .dim)
        }
        let exp = u.expectedRefcount(i) ?? 0
        let kind = u.kind(i)
        var role = kind.role
        var note = ""
        let pending = u.releasePending(i)
        if let st = stored, st > exp {
            // One space and the phrase first: it stays whole on an 80-column screen.
            if st - exp <= pending { role = .warning; note = " \(Explain.releasePending): \(st - exp) reference\(st - exp == 1 ? "" : "s") dropped, refcount still \(st)" }
            else { role = .error; note = "  LEAKED (\(st - exp) extra)" }
        }
        if (stored ?? 0) < exp { role = .error; note = "  OVER-REFERENCED (\(exp) references, refcount \(stored ?? 0))" }
        if kind == .leaked, let first = u.unreadable.first {
            // check counts it as a leak, but the table that may reference it could not be read.
            role = .warning
            note = "  no reference the walk could read (refcount \(stored.map { "\($0)" } ?? "?")); references unknown: \(first.label)"
        }
        if u.copiedFlagWrong(i) { role = .error; note += "  COPIED flag wrong for refcount \(stored.map { "\($0)" } ?? "?")" }
        return ("\(String(i).leftPadded(8)) \(hex(UInt64(i) * cs).padded(14)) \(kind.name.padded(16)) refcount \(stored.map { "\($0)" } ?? "?")\(note)", role)
    }

    /// Histogram of references per cluster and the walk's counts (`check`'s), once per walk.
    private func summary(_ q: any RefcountInspector, _ app: AppState) -> (hist: [(UInt64, Int)], report: CheckReport)? {
        guard let u = q.usage else { return nil }
        if let c = summaryCache, c.version == app.layoutVersion { return (c.hist, c.report) }
        let r = u.report ?? CheckReport()
        var h = u.expectedHistogram().map { ($0.refcount, $0.units) }
        // Up to the image's end as check reports it: the clusters past it (a preallocated
        // tail) hold no references and are not counted.
        if let end = r.imageEndOffset, q.clusterSize > 0, let zero = h.firstIndex(where: { $0.0 == 0 }) {
            let endClusters = Int((end + q.clusterSize - 1) / q.clusterSize)
            h[zero].1 = max(0, h[zero].1 - max(0, u.count - endClusters))
            if h[zero].1 == 0 { h.remove(at: zero) }
        }
        summaryCache = (app.layoutVersion, h, r)
        return (h, r)
    }

    /// The summary line: `check`'s leaks and corruptions (the same walk), and beside them the
    /// releases a flush still has to apply (not leaks).
    static func summaryLine(_ r: CheckReport) -> (String, Role) {
        let pending = r.releasesPending == 0 ? "" : ", \(r.releasesPending) release\(r.releasesPending == 1 ? "" : "s") pending (next flush)"
        if r.leaks + r.corruptions == 0 {
            return (r.releasesPending == 0 ? "clean: every refcount equals the references found" : "0 leaked, 0 corruptions\(pending)", r.releasesPending == 0 ? .ok : .warning)
        }
        return ("\(r.leaks) leaked, \(r.corruptions) corruptions\(pending) (as check counts them; highlighted below)", .error)
    }

    /// Draws the table summary, histogram and per-cluster list.
    public func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        guard let q = app.image.inspector as? any RefcountInspector else {
            s.centred(area, ["not a QCOW2 image", "refcounts exist only in QCOW2 images; this is \(app.image.format.rawValue)."]); return
        }
        let l = q
        var y = area.y
        s.heading(area.x, y, "── Refcount table at \(hex(l.refcountTableOffset)) (\(l.refcountTable.count) entries, \(l.refcountBits)-bit refcounts) ", width: area.width)
        y += 1
        let perBlock = l.clusterSize * 8 / UInt64(l.refcountBits)
        let used = l.refcountTable.enumerated().filter { $0.element & Qcow2Entry.offsetMask != 0 }
        for (i, e) in used.prefix(3) {
            s.put(area.x + 1, y, "[\(i)] block at \(hex(e & Qcow2Entry.offsetMask)) covers clusters \(UInt64(i) * perBlock)…\(UInt64(i + 1) * perBlock - 1)", CellStyle(.refcount), maxWidth: area.width)
            y += 1
        }
        if used.count > 3 { s.put(area.x + 1, y, "… \(used.count - 3) more refcount blocks", CellStyle(.dim)); y += 1 }
        y += 1
        // Histogram of the references found per cluster (the walk's expected refcounts).
        if let sum = summary(q, app) {
            let counted = sum.hist.reduce(0) { $0 + $1.1 }
            let toEnd = sum.report.imageEndOffset != nil ? " to the image end" : ""
            s.heading(area.x, y, "── References found per host cluster, \(counted) clusters\(toEnd) ", width: area.width)
            y += 1
            let peak = max(1, sum.hist.map(\.1).max() ?? 1)
            for (v, n) in sum.hist.prefix(6) {
                s.put(area.x, y, "\(v) ref\(v == 1 ? "" : "s")".leftPadded(12), CellStyle(.dim))
                let bar = max(1, n * max(1, area.width - 30) / peak)
                s.put(area.x + 13, y, String(repeating: "█", count: bar), CellStyle(v == 0 ? .free : .bar))
                s.put(area.x + 14 + bar, y, "\(n)", CellStyle(.normal))
                y += 1
            }
            let line = RefcountsView.summaryLine(sum.report)
            let end = s.put(area.x, y, line.0, CellStyle(line.1), maxWidth: area.width)
            if let st = q.usageStatus { s.put(max(area.x + 60, end + 2), y, st, CellStyle(.dim), maxWidth: max(0, area.x + area.width - max(area.x + 60, end + 2))) }
            if let u = q.usage, let first = u.unreadable.first {
                y += 1
                let more = u.unreadable.count > 1 ? " (and \(u.unreadable.count - 1) more)" : ""
                // Wrapped: the reader's error is as long as it needs to be.
                let lines = TextWrap.lines("UNREADABLE: \(first.label)\(more); references in it are unknown", width: area.width).prefix(3)
                for (k, l) in lines.enumerated() { s.put(area.x, y + k, l, CellStyle(.error), maxWidth: area.width) }
                y += lines.count - 1
            }
        } else {
            s.put(area.x, y, q.usageStatus ?? "", CellStyle(.dim), maxWidth: area.width)
        }
        y += 2
        s.heading(area.x, y, "── Clusters:  index host offset     use              refcount ", width: area.width)
        y += 1
        visible = s.listRows(area.x, y, width: area.width, maxY: area.maxY, count: l.hostClusters, cursor: &cursor) { clusterRow(q, $0) }
    }

    /// Selection and Enter (hex of the cluster).
    public func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        guard let q = app.image.inspector as? any RefcountInspector else { return false }
        if e == .enter {
            app.pendingHex = (UInt64(cursor.selected) * q.clusterSize, true)
            app.requestedView = "hex"
            return true
        }
        return cursor.handle(e, count: q.hostClusters, visible: visible)
    }

    /// Selects the host cluster holding a host offset (clamped to the last cluster).
    public func goto(_ offset: UInt64, _ app: AppState) -> Notice {
        guard let q = app.image.inspector as? any RefcountInspector else { return Notice("not a QCOW2 image", .error) }
        let count = q.hostClusters
        guard count > 0 else { return Notice("no host clusters", .warning) }
        let cs = q.clusterSize
        let i = Int(min(offset / cs, UInt64(count - 1)))
        cursor.selected = i
        cursor.clamp(count: count, visible: visible)
        if offset / cs >= UInt64(count) {
            return Notice("host \(hex(offset)) is beyond the \(formatBytes(Double(q.hostSize))) file: clamped to the last cluster, \(i) at host \(hex(UInt64(i) * cs))", .warning)
        }
        return Notice("host \(hex(offset)) is in cluster \(i)", .ok)
    }

    /// Finds the next (or previous) cluster whose use matches `text`, wrapping around: "leak",
    /// "over", "mismatch" find refcounts that differ from the walk's; otherwise a kind name
    /// ("l2", "data", ...). Searches the use map (one byte per cluster), not rendered rows.
    public func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        guard let q = app.image.inspector as? any RefcountInspector else { return SearchOutcome("not a QCOW2 image", found: false) }
        guard let u = q.usage else { return SearchOutcome(q.usageStatus ?? "the walk is not done", found: false) }
        let t = text.lowercased()
        let mismatch = ["leak", "over", "mismatch", "corrupt"].contains { t.hasPrefix($0) }
        let kinds = Set(HostRegionKind.allCases.filter { $0.name.lowercased().contains(t) })
        guard let hit = scanWrapping(count: u.count, from: cursor.selected, direction, { mismatch ? u.mismatched($0) : kinds.contains(u.kind($0)) }) else {
            return SearchOutcome("no cluster matches '\(text)'", found: false)
        }
        cursor.selected = hit.index; cursor.clamp(count: u.count, visible: visible)
        return SearchOutcome(clusterRow(q, hit.index).0, found: true, wrapped: hit.wrapped)
    }
}

/// What the BAT view needs from a VHDX or VHD image.
public protocol BatInspector: LayoutInspector {
    /// Headers (with sequence numbers and CRC status), region table, metadata items, log state.
    func batSections() -> [InfoSection]
    /// Number of BAT entries.
    var batCount: Int { get }
    /// One BAT entry as a row and its role (payload state or sector bitmap).
    func batRow(_ index: Int) -> (String, Role)
}

/// BAT (VHDX and VHD): entries by state, sector-bitmap blocks, headers, region table,
/// metadata items and log state, from a ``BatInspector``.
public final class BatView: TUIView {
    /// "BAT".
    public let title = "BAT"
    /// Footer keys.
    public let keys: [(String, String)] = [("↑↓", "select entry"), ("Enter", "hex of block")]
    /// "find state".
    public let searchHint: String? = "find state"
    private var cursor = ListCursor()
    private var visible = 10

    /// Creates the view.
    public init() {}

    /// Draws the sections and the entry list.
    public func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        guard let b = app.image.inspector as? BatInspector else {
            s.centred(area, ["not a VHDX or VHD image", "a block allocation table exists only in VHDX and VHD images; this is \(app.image.format.rawValue)."]); return
        }
        var y = area.y
        for sec in b.batSections() where y < area.maxY - 4 {
            s.heading(area.x, y, "── " + sec.title + " ", width: area.width); y += 1
            y = s.rows(area.x + 1, y, sec.rows, labelWidth: 22, width: area.width - 1, maxY: area.maxY - 4)
        }
        s.heading(area.x, y, "── BAT entries (\(b.batCount)) ", width: area.width); y += 1
        visible = s.listRows(area.x, y, width: area.width, maxY: area.maxY, count: b.batCount, cursor: &cursor, squeezeAll: area.width < 100) { b.batRow($0) }
    }

    /// Selection; Enter opens the selected payload block's guest bytes in Hex (Esc comes back).
    public func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        guard let b = app.image.inspector as? BatInspector else { return false }
        if e == .enter {
            // Payload rows name their guest offset ("block 3 guest 0x300000"); bitmap rows do not.
            let row = b.batRow(cursor.selected).0
            if let r = row.range(of: "guest 0x"), let off = UInt64(row[r.upperBound...].prefix { $0.isHexDigit }, radix: 16) {
                app.pendingHex = (off, false)
                app.requestedView = "hex"
            } else {
                app.sayInView("BAT[\(cursor.selected)] is a sector bitmap entry: it maps no guest data", .dim)
            }
            return true
        }
        return cursor.handle(e, count: b.batCount, visible: visible)
    }

    /// Selects BAT entry `index` (the entry a step changed), scrolled into view.
    public func select(entry index: Int, _ app: AppState) {
        guard let b = app.image.inspector as? BatInspector, index < b.batCount else { return }
        cursor.selected = index
        cursor.clamp(count: b.batCount, visible: visible)
    }

    /// Finds the next (or previous) entry whose row contains `text`, wrapping around.
    public func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        guard let b = app.image.inspector as? BatInspector else { return SearchOutcome("not a VHDX or VHD image", found: false) }
        let t = text.lowercased()
        guard let hit = scanWrapping(count: b.batCount, from: cursor.selected, direction, { b.batRow($0).0.lowercased().contains(t) }) else {
            return SearchOutcome("no BAT entry matches '\(text)'", found: false)
        }
        cursor.selected = hit.index; cursor.clamp(count: b.batCount, visible: visible)
        return SearchOutcome(b.batRow(hit.index).0, found: true, wrapped: hit.wrapped)
    }
}

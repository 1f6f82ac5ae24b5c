import BlockCore
import BlockInspect

/// Diagnosis: where every byte of the host file goes and what went wrong, by cause: the
/// report `blockscope explain` prints (the space table with a bar per kind, then one row per
/// finding and the selected finding's paragraph and ranges). Enter jumps from a finding to
/// the place it names: the table entry mapping its guest range, its refcount row, or its
/// host bytes; `e`, `r`, `h` and `m` pick the place. The report is built off the UI thread
/// (``Diagnosis``); the view says "computing…" until it is ready.
package final class DiagnosisView: TUIView {
    /// "Diagnosis".
    package let title = "Diagnosis"
    /// Footer keys.
    package let keys: [(String, String)] = [("↑↓", "finding"), ("Enter", "jump"), ("e/r/h/m", "entry/refcount/hex/map"), ("d", "paragraph"), ("u", "recompute")]
    /// "find class".
    package let searchHint: String? = "find class"
    private var cursor = ListCursor()
    private var visible = 5
    /// Whether `d` gave the selected finding's paragraph the space table's rows.
    package private(set) var wholeParagraph = false

    /// A view with the first finding selected.
    package init() {}

    /// The selected finding's index.
    package var selected: Int { cursor.selected }

    /// Draws the space table, the findings and the selected finding's paragraph; starts the
    /// explanation the first time it is drawn.
    package func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        let d = app.diagnosis
        d.start(layoutVersion: app.live.metadataVersion)
        guard let report = d.report else {
            if let err = d.error {
                s.centred(area, ["no diagnosis for this image:"] + TextWrap.lines(err, width: max(10, area.width - 2)), .error)
            } else {
                let pct = d.progress.map { " \(Int($0 * 100))%" } ?? ""
                s.centred(area, ["computing… \(pct)", "(the walk `blockscope explain` runs; the other views stay live)"])
            }
            return
        }
        let w = area.width
        var y = area.y
        let maxY = area.maxY
        // The selected finding's paragraph and ranges go at the bottom; the list and the
        // space table share what is left, the table giving up its smallest kinds first.
        let findings = report.findings
        cursor.clamp(count: findings.count, visible: visible)
        var detail: [(String, Role)] = []
        if let f = findings.indices.contains(cursor.selected) ? findings[cursor.selected] : nil {
            let jump = DiagnosisJump.preferred(f).map { "Enter: \($0.words)" } ?? "no range to jump to"
            detail += TextWrap.lines("[\(f.findingClass.rawValue)] \(jump)", width: w).map { ($0, .heading) }
            detail += TextWrap.lines(f.text, width: w).map { ($0, .normal) }
            if !f.host.isEmpty { detail += TextWrap.lines("host: " + DiagnosisView.ranges(f.host), width: w).map { ($0, .dim) } }
            if !f.guest.isEmpty { detail += TextWrap.lines("guest: " + DiagnosisView.ranges(f.guest), width: w).map { ($0, .dim) } }
        }
        let kinds = report.space.filter { $0.bytes > 0 }
        // Rows under the heading: the space table (every kind and the total, folded when
        // the screen is short, hidden while `d` shows the whole paragraph), the findings'
        // heading and list, and the paragraph in what is left (at least three rows).
        let height = maxY - y - 1
        let listRows = findings.isEmpty ? 1 : min(findings.count, max(1, height / 5))
        let spaceRows = wholeParagraph && !findings.isEmpty ? 0 : min(kinds.count + 1, max(2, height - (findings.isEmpty ? 1 : 4 + listRows)))

        let staleNote = d.layoutVersion != app.live.metadataVersion ? " (the image changed since: u recomputes)" : ""
        let busy = d.progress.map { " (recomputing \(Int($0 * 100))%)" } ?? ""
        let head = "\(report.format) file of \(formatBytes(Double(report.fileSize))), \(formatBytes(Double(report.allocatedOnDisk))) on disk" + staleNote + busy
        for line in TextWrap.lines(head, width: w).prefix(2) { s.put(area.x, y, line, CellStyle(.heading), maxWidth: w); y += 1 }
        for line in DiagnosisView.spaceLines(report, width: w, rows: spaceRows) where y < maxY && spaceRows > 0 {
            s.put(area.x, y, line.text, CellStyle(line.role), maxWidth: w)
            if let bar = line.bar { s.put(area.x + line.text.count, y, bar, CellStyle(.bar), maxWidth: max(0, w - line.text.count)) }
            y += 1
        }
        guard y < maxY else { return }
        if findings.isEmpty {
            s.put(area.x, y, "No findings: the structure is consistent.", CellStyle(.ok), maxWidth: w)
            let said = d.warnings.flatMap { TextWrap.lines($0, width: w) }
            for (i, line) in said.prefix(max(0, maxY - y - 1)).enumerated() { s.put(area.x, y + 1 + i, line, CellStyle(.warning), maxWidth: w) }
            return
        }
        s.heading(area.x, y, "\(findings.count) finding\(findings.count == 1 ? "" : "s") (most harmful first)", width: w); y += 1
        let listEnd = min(maxY, y + listRows)
        visible = s.listRows(area.x, y, width: w, maxY: listEnd, count: findings.count, cursor: &cursor) { i in
            (DiagnosisView.row(findings[i], width: w), DiagnosisView.role(findings[i].findingClass))
        }
        y = listEnd
        let room = max(0, maxY - y)
        var shown = Array(detail.prefix(room))
        if detail.count > room && room > 0 {
            shown[room - 1] = (wholeParagraph ? "… (the rest needs a taller screen)" : "… d: the whole paragraph", .dim)
        }
        for (text, role) in shown {
            s.put(area.x, y, text, CellStyle(role), maxWidth: w); y += 1
        }
    }

    /// One finding as a list row: class, clusters, the first host and guest range (the guest
    /// range left to the paragraph below when the row would not fit `width`).
    static func row(_ f: ExplainFinding, width: Int = .max) -> String {
        var out = f.findingClass.rawValue.padded(23) + " " + "\(f.clusters) cluster\(f.clusters == 1 ? "" : "s")".leftPadded(12)
        if let h = f.host.first { out += "  host " + span(h) + (f.host.count > 1 ? " +\(f.host.count - 1)" : "") }
        if let g = f.guest.first {
            let guest = "  guest " + span(g) + (f.guest.count > 1 ? " +\(f.guest.count - 1)" : "")
            if out.count + guest.count <= width { out += guest }
        }
        return out
    }

    /// How a finding's row is coloured: damage that loses or risks guest data as an error,
    /// space that can be given back as a warning.
    static func role(_ c: ExplainFindingClass) -> Role {
        switch c {
        case .leakedCluster, .strandedRefcountBlock, .refcountTooHigh, .orphanedL2Table: return .warning
        default: return .error
        }
    }

    /// `0x50000+64 KiB`.
    static func span(_ r: ExplainRange) -> String { "\(hex(r.offset))+\(formatBytes(Double(r.length)))" }

    /// The first ranges as `0xa-0xb`, then how many more.
    static func ranges(_ rs: [ExplainRange]) -> String {
        let shown = rs.prefix(4).map { "\(hex($0.offset))-\(hex($0.offset + $0.length - 1))" }.joined(separator: ", ")
        return rs.count > 4 ? shown + " (+\(rs.count - 4) more)" : shown
    }

    /// The space table in at most `rows` lines: each kind with bytes (as `explain` lists them,
    /// kinds of zero bytes left out), its share of the file and a bar, then the total. When the
    /// lines do not fit, the smallest kinds fold into one "N more kinds" line.
    static func spaceLines(_ r: ExplainReport, width: Int, rows: Int) -> [(text: String, role: Role, bar: String?)] {
        var kinds = r.space.filter { $0.bytes > 0 }
        var folded: (count: Int, bytes: UInt64)?
        if kinds.count + 1 > rows {
            let keep = Set(kinds.sorted { $0.bytes > $1.bytes }.prefix(max(0, rows - 2)).map(\.kind))
            let dropped = kinds.filter { !keep.contains($0.kind) }
            folded = (dropped.count, dropped.reduce(0) { $0 + $1.bytes })
            kinds = kinds.filter { keep.contains($0.kind) }
        }
        let nameW = max(8, (kinds.map { $0.kind.rawValue.count } + [folded.map { "\($0.count) more kinds".count } ?? 0]).max() ?? 8)
        let barW = max(0, width - nameW - 22)
        func line(_ name: String, _ bytes: UInt64, _ role: Role) -> (String, Role, String?) {
            let share = r.fileSize == 0 ? 0 : Double(bytes) / Double(r.fileSize)
            let text = name.padded(nameW) + "  " + formatBytes(Double(bytes)).leftPadded(10) + "  " + percent(share).leftPadded(6) + "  "
            let cells = min(barW, Int((share * Double(barW)).rounded(.up)))
            return (text, role, cells > 0 ? String(repeating: "█", count: cells) : nil)
        }
        var out = kinds.map { line($0.kind.rawValue, $0.bytes, role($0.kind)) }
        if let f = folded { out.append(line("\(f.count) more kinds", f.bytes, .dim)) }
        if rows > out.count {
            out.append(("total".padded(nameW) + "  " + formatBytes(Double(r.spaceTotal)).leftPadded(10) + "  " + percent(r.fileSize == 0 ? 0 : Double(r.spaceTotal) / Double(r.fileSize)).leftPadded(6), .dim, nil))
        }
        return Array(out.prefix(max(1, rows)))
    }

    private static func role(_ k: ExplainSpaceKind) -> Role {
        switch k {
        case .leaked, .unused, .unknown: return .warning
        default: return k.isMetadata ? .dim : .normal
        }
    }

    private static func percent(_ v: Double) -> String {
        let tenths = Int((v * 1000).rounded())
        return "\(tenths / 10).\(tenths % 10)%"
    }

    /// Selection, Enter and the jump keys, `u` to explain the image anew.
    package func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        let d = app.diagnosis
        if e == .char("d") {
            wholeParagraph.toggle()
            return true
        }
        if e == .char("u") {
            d.restart(layoutVersion: app.live.metadataVersion)
            app.sayInView("explaining the image anew", .dim)
            return true
        }
        guard let report = d.report, !report.findings.isEmpty else { return false }
        let f = report.findings[max(0, min(cursor.selected, report.findings.count - 1))]
        switch e {
        case .enter:
            guard let j = DiagnosisJump.preferred(f) else { app.sayInView("this finding names no range", .dim); return true }
            jump(j, app)
        case .char("e"):
            guard let g = f.guest.first else { app.sayInView("[\(f.findingClass.rawValue)] names no guest range: no table entry to show", .dim); return true }
            guard app.image.inspector?.table(.directory) != nil else { app.sayInView("this image has no table of entries", .dim); return true }
            jump(.entry(guest: g.offset), app)
        case .char("r"):
            guard let h = f.host.first else { app.sayInView("this finding names no host range", .dim); return true }
            jump(.refcount(host: h.offset), app)
        case .char("h"):
            guard let h = f.host.first else { app.sayInView("this finding names no host range", .dim); return true }
            jump(.hex(host: h.offset), app)
        case .char("m"):
            guard let h = f.host.first else { app.sayInView("this finding names no host range", .dim); return true }
            jump(.map(host: h.offset), app)
        default:
            return cursor.handle(e, count: report.findings.count, visible: visible)
        }
        return true
    }

    /// Opens the view a jump names at its place (the app moves it there: ``AppState/pendingGoto``,
    /// ``AppState/pendingHex``); Esc comes back here.
    func jump(_ j: DiagnosisJump, _ app: AppState) {
        switch j {
        case let .entry(g): app.requestedView = "l1"; app.pendingGoto = (g, .guest)
        case let .refcount(h): app.requestedView = "refcounts"; app.pendingGoto = (h, .host)
        case let .hex(h): app.requestedView = "hex"; app.pendingHex = (h, true)
        case let .map(h): app.requestedView = "map"; app.pendingGoto = (h, .host)
        }
    }

    /// Selects the next (or previous) finding whose class or paragraph contains `text`.
    package func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        guard let fs = app.diagnosis.report?.findings, !fs.isEmpty else { return SearchOutcome("no findings", found: false) }
        let t = text.lowercased()
        guard let hit = scanWrapping(count: fs.count, from: cursor.selected, direction, {
            fs[$0].findingClass.rawValue.contains(t) || fs[$0].text.lowercased().contains(t)
        }) else { return SearchOutcome("no finding matches '\(text)'", found: false) }
        cursor.selected = hit.index
        cursor.clamp(count: fs.count, visible: visible)
        return SearchOutcome(DiagnosisView.row(fs[hit.index]), found: true, wrapped: hit.wrapped)
    }
}

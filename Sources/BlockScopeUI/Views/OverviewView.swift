import Foundation
import BlockCore

/// Overview: format, sizes, header fields, feature bits, extensions, backing chain,
/// snapshots, dirty/corrupt state and warnings, in one or two columns.
public final class OverviewView: TUIView {
    /// "Overview".
    public let title = "Overview"
    /// Footer keys.
    public let keys: [(String, String)] = [("↑↓", "scroll"), ("/", "find")]
    private var scroll = 0
    private var lastSections: [InfoSection] = []
    private var cacheKey: (version: Int, time: UInt64) = (-1, 0)

    /// Creates the view.
    public init() {}

    /// The sections shown: the image, qemu-img info's fields, then the inspector's.
    public func sections(_ app: AppState) -> [InfoSection] {
        let img = app.image
        var main: [(String, String, Role)] = [
            ("file", img.path, .normal),
            ("format", img.format.rawValue, .heading),
            ("virtual size", "\(formatBytes(Double(img.guestSize))) (\(img.guestSize) bytes)", .normal),
        ]
        if let d = img.disk {
            if let p = try? d.physicalSize() { main.append(("disk size", formatBytes(Double(p)), .normal)) }
            main.append(("mode", d.isWritable ? "read-write (--write)" : "read-only", d.isWritable ? .warning : .ok))
            let t = d.topology
            main.append(("block sizes", "logical \(t.logicalBlockSize), physical \(t.physicalBlockSize), optimal \(t.optimalIoSize)", .dim))
        } else if let i = img.inspector {
            main.append(("host file size", formatBytes(Double(i.hostSize)), .normal))
        }
        if let e = img.openError { main.append(("I/O", "not available: \(e)", .warning)) }
        for w in img.disk?.warnings ?? [] { main.append(("warning", w, .warning)) }
        var out = [InfoSection("Image", main)]
        out += img.inspector?.overviewSections() ?? []
        if let info = img.info() {
            var rows: [(String, String, Role)] = []
            flatten(info, prefix: "", into: &rows)
            // The inspector shows the format's own fields and snapshots; keep qemu-img's other keys here.
            let skipOwn = img.inspector is Qcow2Inspector
            let shown = rows.filter {
                !["filename", "format", "virtual-size"].contains($0.0) && !(skipOwn && ($0.0.hasPrefix("blockscope.") || $0.0.hasPrefix("snapshots[")))
            }
            if !shown.isEmpty { out.append(InfoSection("qemu-img info fields", shown)) }
        }
        return out
    }

    private func flatten(_ v: JSONValue, prefix: String, into rows: inout [(String, String, Role)]) {
        switch v {
        case let .object(kv):
            for (k, x) in kv { flatten(x, prefix: prefix.isEmpty ? k : prefix + "." + k, into: &rows) }
        case let .array(a):
            if a.isEmpty { rows.append((prefix, "[]", .dim)) }
            if a.allSatisfy({ if case .object = $0 { return false }; return true }) {
                rows.append((prefix, a.map { $0.render(pretty: false).replacingOccurrences(of: "\"", with: "") }.joined(separator: ", "), .normal))
            } else {
                for (i, x) in a.prefix(8).enumerated() { flatten(x, prefix: "\(prefix)[\(i)]", into: &rows) }
            }
        case let .bool(b): rows.append((prefix, b ? "true" : "false", prefix.contains("corrupt") && b ? .error : .normal))
        default: rows.append((prefix, v.render(pretty: false).replacingOccurrences(of: "\"", with: ""), .normal))
        }
    }

    /// Draws the sections in columns of at least 70 characters.
    public func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        // info() and the inspector's sections are not free: rebuild once a second or after a reload.
        let now = monotonicNanos()
        if cacheKey.version != app.layoutVersion || now - cacheKey.time > 1_000_000_000 {
            lastSections = sections(app)
            cacheKey = (app.layoutVersion, now)
        }
        let columns = area.width >= 150 ? 2 : 1
        let colWidth = (area.width - (columns - 1) * 2) / columns
        // Lay sections out into columns, then draw with the scroll offset.
        var lines: [[(String, String, Role, Bool)]] = Array(repeating: [], count: columns)
        let total = lastSections.reduce(0) { $0 + $1.rows.count + 2 }
        var col = 0
        for sec in lastSections {
            if columns > 1 && col == 0 && lines[0].count >= total / 2 { col = 1 }
            lines[col].append((sec.title, "", .heading, true))
            for r in sec.rows { lines[col].append((r.0, r.1, r.2, false)) }
            lines[col].append(("", "", .normal, false))
        }
        let maxLines = lines.map(\.count).max() ?? 0
        scroll = max(0, min(scroll, maxLines - area.height))
        for c in 0..<columns {
            let x = area.x + c * (colWidth + 2)
            let labelWidth = min(34, max(12, (lines[c].filter { !$0.3 }.map(\.0.count).max() ?? 12)))
            for (i, l) in lines[c].dropFirst(scroll).prefix(area.height).enumerated() {
                let y = area.y + i
                if l.3 {
                    s.heading(x, y, "── " + l.0 + " ", width: colWidth)
                } else if !l.0.isEmpty {
                    s.rows(x + 1, y, [(l.0, l.1, l.2)], labelWidth: labelWidth, width: colWidth - 1, maxY: y + 1)
                }
            }
        }
    }

    /// Scrolls.
    public func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        switch e {
        case .up, .char("k"): scroll -= 1
        case .down, .char("j"): scroll += 1
        case .pageUp: scroll -= 10
        case .pageDown: scroll += 10
        case .home: scroll = 0
        case let .wheel(up, _, _): scroll += up ? -3 : 3
        default: return false
        }
        scroll = max(0, scroll)
        return true
    }

    /// Finds a row whose label or value contains `text`.
    public func search(_ text: String, _ app: AppState) -> String {
        let t = text.lowercased()
        for sec in sections(app) {
            for r in sec.rows where r.0.lowercased().contains(t) || r.1.lowercased().contains(t) {
                return "\(sec.title): \(r.0) = \(r.1)"
            }
        }
        return "'\(text)' not found"
    }
}

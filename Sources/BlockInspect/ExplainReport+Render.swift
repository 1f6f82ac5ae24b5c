import BlockIO

extension ExplainReport {
    /// The report as issue 22's JSON: `file_size`, `space` (every kind of the format, in
    /// bytes), `findings` (`class`, `host` and `guest` as `[offset, length]` pairs,
    /// `looks_like` or null, `clusters`, `text`) and `reclaim`; then `format`, `unit` and
    /// `allocated_on_disk`.
    public func json() -> JSONValue {
        func ranges(_ rs: [ExplainRange]) -> JSONValue { .array(rs.map { .array([.size($0.offset), .size($0.length)]) }) }
        let findings: [JSONValue] = findings.map { f in
            .object([
                ("class", .string(f.findingClass.rawValue)),
                ("host", ranges(f.host)),
                ("guest", ranges(f.guest)),
                ("looks_like", f.looksLike.map { .string($0.rawValue) } ?? .null),
                ("clusters", .size(f.clusters)),
                ("text", .string(f.text)),
            ])
        }
        return .object([
            ("file_size", .size(fileSize)),
            ("space", .object(space.map { ($0.kind.rawValue, .size($0.bytes)) })),
            ("findings", .array(findings)),
            ("reclaim", .object(reclaim.map { ($0.key, $0.value) })),
            ("format", .string(format)),
            ("unit", .size(unit)),
            ("allocated_on_disk", .size(allocatedOnDisk)),
        ])
    }

    /// The human report: the space table (kind, bytes, share of the file, a bar of `barWidth`
    /// cells), what each remedy gives back, then one paragraph per finding with its host and
    /// guest ranges. `size` formats a byte count (the CLI passes the UI's one formatter).
    public func text(barWidth: Int = 30, size: (UInt64) -> String) -> String {
        var out = "\(format) file of \(size(fileSize)) (\(fileSize) bytes), \(size(allocatedOnDisk)) on disk\n\n"
        let width = max(12, space.map { $0.kind.rawValue.count }.max() ?? 0)
        for (kind, bytes) in space where bytes > 0 {
            let share = fileSize == 0 ? 0 : Double(bytes) / Double(fileSize)
            let cells = Int((share * Double(barWidth)).rounded(.up))
            var row = kind.rawValue.padding(width) + "  " + size(bytes).leftPadding(11) + "  "
            row += percent(share).leftPadding(7) + "  " + String(repeating: "#", count: min(barWidth, cells))
            out += row + "\n"
        }
        out += "total".padding(width) + "  " + size(spaceTotal).leftPadding(11) + "\n"
        if !reclaim.isEmpty {
            out += "\nWhat each remedy gives back:\n"
            for (key, value) in reclaim {
                switch value {
                case let .int(v): out += "  " + key.padding(width + 8) + (v < 0 ? "-" + size(UInt64(-v)) + " (the file grows)" : size(UInt64(v))) + "\n"
                case let .object(kv):
                    for (name, v) in kv { if case let .int(b) = v { out += "  " + (key + " " + name).padding(width + 8) + size(UInt64(max(0, b))) + "\n" } }
                default: break
                }
            }
        }
        if findings.isEmpty {
            out += "\nNo findings: the structure is consistent.\n"
        } else {
            out += "\n\(findings.count) finding\(findings.count == 1 ? "" : "s"):\n"
            for f in findings {
                out += "\n[\(f.findingClass.rawValue)] " + f.text + "\n"
                if !f.host.isEmpty { out += "  host:  " + rangesText(f.host) + "\n" }
                if !f.guest.isEmpty { out += "  guest: " + rangesText(f.guest) + "\n" }
            }
        }
        return out
    }
}

/// The first ranges (``ExplainRange/text``), then how many more.
private func rangesText(_ rs: [ExplainRange]) -> String {
    let shown = rs.prefix(6).map(\.text).joined(separator: ", ")
    return rs.count > 6 ? shown + " (+\(rs.count - 6) more)" : shown
}

private func percent(_ v: Double) -> String {
    let tenths = Int((v * 1000).rounded())
    return "\(tenths / 10).\(tenths % 10)%"
}

extension String {
    fileprivate func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
    fileprivate func leftPadding(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

import BlockCore

/// Hex: guest offset → mapping → host offset → hex dump, with the structure under the
/// cursor decoded (a header field, an L1/L2 entry, a refcount block, a BAT entry).
public final class HexView: TUIView {
    /// "Hex".
    public let title = "Hex"
    /// Footer keys.
    public let keys: [(String, String)] = [("←→↑↓", "move"), ("PgUp/PgDn", "page"), ("m", "guest/host"), ("g", "goto"), ("/", "find text")]
    /// The cursor offset (guest or host, by ``hostMode``).
    public private(set) var offset: UInt64 = 0
    /// Whether the dump shows host file bytes instead of guest bytes.
    public private(set) var hostMode = false
    private var top: UInt64 = 0
    private var visibleRows = 16

    /// Creates the view.
    public init() {}

    /// Opens the view at an offset.
    public func show(_ off: UInt64, host: Bool) {
        hostMode = host
        offset = off
        top = off & ~15
    }

    /// Draws the mapping lines and the dump.
    public func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        let insp = app.image.inspector
        let limit = hostMode ? (insp?.hostSize ?? 0) : app.image.guestSize
        if limit > 0 && offset >= limit { offset = limit - 1 }
        var y = area.y
        if hostMode {
            s.put(area.x, y, "host \(hex(offset))", CellStyle(.heading)); y += 1
        } else {
            let m = insp?.mapGuest(offset)
            s.put(area.x, y, "guest \(hex(offset))", CellStyle(.heading))
            s.put(area.x + 24, y, "→ " + (m?.text ?? "no mapping available"), CellStyle(m?.host != nil ? .data : .dim), maxWidth: area.width - 24)
            y += 1
        }
        let hostOff: UInt64? = hostMode ? offset : insp?.mapGuest(offset).host
        if let h = hostOff, let insp {
            s.put(area.x, y, "decoded", CellStyle(.dim))
            s.put(area.x + 24, y, insp.describeHost(h), CellStyle(.normal), maxWidth: area.width - 24)
        }
        y += 2
        visibleRows = max(1, area.maxY - y)
        if offset < top { top = offset & ~15 }
        if offset >= top + UInt64(visibleRows * 16) { top = (offset & ~15) - UInt64((visibleRows - 1) * 16) }
        let count = visibleRows * 16
        let bytes: [UInt8]?
        if hostMode { bytes = insp?.readHost(at: top, count: count) } else { bytes = app.image.readGuest(at: top, count: count) }
        guard let bytes else {
            s.put(area.x, y, "guest data here cannot be read yet (compressed, or no I/O for this format)", CellStyle(.warning)); return
        }
        let written = hostMode ? app.live.writtenHost : app.live.writtenGuest
        for row in 0..<visibleRows {
            let base = top + UInt64(row * 16)
            let lo = row * 16
            if lo >= bytes.count { break }
            s.put(area.x, y + row, String(base, radix: 16).leftPadded(12), CellStyle(.dim))
            var x = area.x + 14
            var ascii = ""
            for i in 0..<16 {
                guard lo + i < bytes.count else { break }
                let b = bytes[lo + i]
                let off = base + UInt64(i)
                var role: Role = b == 0 ? .free : .normal
                if written.intersects(off, length: 1) { role = .written }
                let st = off == offset ? CellStyle(.selected, [.bold]) : CellStyle(role)
                let h = String(b, radix: 16)
                s.put(x, y + row, h.count == 1 ? "0" + h : h, st)
                x += i == 7 ? 4 : 3
                ascii.append(b >= 32 && b < 127 ? Character(Unicode.Scalar(b)) : ".")
            }
            s.put(area.x + 14 + 16 * 3 + 2, y + row, "|" + ascii + "|", CellStyle(.dim))
        }
    }

    /// Cursor keys, pages, guest/host switch.
    public func handle(_ e: InputEvent, _ app: AppState) -> Bool {
        let page = UInt64(visibleRows * 16)
        switch e {
        case .left, .char("h"): offset = offset > 0 ? offset - 1 : 0
        case .right, .char("l"): offset += 1
        case .up, .char("k"): offset = offset >= 16 ? offset - 16 : 0
        case .down, .char("j"): offset += 16
        case .pageUp: offset = offset >= page ? offset - page : 0
        case .pageDown: offset += page
        case .home: offset = 0
        case let .wheel(up, _, _): offset = up ? (offset >= 48 ? offset - 48 : 0) : offset + 48
        case .char("m"):
            if !hostMode, let h = app.image.inspector?.mapGuest(offset).host { offset = h } else if !hostMode { offset = 0 }
            hostMode.toggle()
            top = offset & ~15
        default: return false
        }
        return true
    }

    /// Moves the cursor to a guest offset.
    public func goto(_ off: UInt64, _ app: AppState) -> Bool {
        show(off, host: false)
        return true
    }

    /// Finds text (or `0x`-prefixed hex bytes) in the next 64 MiB after the cursor.
    public func search(_ text: String, _ app: AppState) -> String {
        var needle = Array(text.utf8)
        if text.hasPrefix("0x"), text.count > 2, text.count % 2 == 0 {
            let h = Array(text.dropFirst(2))
            needle = stride(from: 0, to: h.count, by: 2).compactMap { UInt8(String(h[$0...$0 + 1]), radix: 16) }
        }
        guard !needle.isEmpty else { return "nothing to find" }
        var pos = offset + 1
        let end = min(offset + (64 << 20), hostMode ? (app.image.inspector?.hostSize ?? 0) : app.image.guestSize)
        while pos < end {
            let n = Int(min(1 << 20, end - pos))
            let chunk = hostMode ? (app.image.inspector?.readHost(at: pos, count: n + needle.count) ?? []) : (app.image.readGuest(at: pos, count: n + needle.count) ?? [])
            if chunk.count >= needle.count {
                for i in 0...(chunk.count - needle.count) where chunk[i] == needle[0] && Array(chunk[i..<(i + needle.count)]) == needle {
                    offset = pos + UInt64(i)
                    return "found at \(hex(offset))"
                }
            }
            pos += UInt64(n)
        }
        return "'\(text)' not found in the next 64 MiB"
    }
}

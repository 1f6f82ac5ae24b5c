import Foundation
import BlockCore
import BlockInspect

/// Hex: guest offset → mapping → host offset → hex dump, with the structure under the
/// cursor decoded (a header field, an L1/L2 entry, a refcount block, a BAT entry).
package final class HexView: TUIView {
    /// "Hex".
    package let title = "Hex"
    /// Footer keys.
    package let keys: [(String, String)] = [("←→↑↓", "move"), ("PgUp/PgDn", "page"), ("m", "guest/host")]
    /// "find text".
    package let searchHint: String? = "find text"
    /// The cursor offset (guest or host, by ``hostMode``).
    package private(set) var offset: UInt64 = 0
    /// Whether the dump shows host file bytes instead of guest bytes.
    package private(set) var hostMode = false
    private var top: UInt64 = 0
    /// The guest offset `m` jumped from, for `m` back.
    private var guestOrigin: UInt64?
    private var visibleRows = 16

    /// Creates the view.
    package init() {}

    /// Opens the view at an offset.
    package func show(_ off: UInt64, host: Bool) {
        hostMode = host
        guestOrigin = nil
        offset = off
        top = off & ~15
    }

    /// Draws the mapping lines and the dump. The mapping and decoded texts wrap (up to three
    /// lines each) in a narrow terminal; the dump's offset column is as wide as the largest
    /// offset shown (at least 8 digits), and its gaps shrink so the ASCII column stays whole
    /// at 80 columns.
    package func draw(_ s: inout ScreenModel, _ area: Rect, _ app: AppState) {
        let insp = app.image.inspector
        let limit = hostMode ? (insp?.hostSize ?? 0) : app.image.guestSize
        if limit > 0 && offset >= limit { offset = limit - 1 }
        var y = area.y
        // Label and text lines: the texts at column 24 when they fit there, else right after
        // the longer label, wrapped when still too long.
        var rows: [(label: String, text: String, style: CellStyle)] = []
        if hostMode {
            rows.append(("host \(hex(offset))", "", CellStyle(.heading)))
        } else {
            let m = insp?.mapGuest(offset)
            rows.append(("guest \(hex(offset))", "→ " + (m?.text ?? "no mapping available"), CellStyle(m?.host != nil ? .data : .dim)))
        }
        let hostOff: UInt64? = hostMode ? offset : insp?.mapGuest(offset).host
        if let h = hostOff, let insp { rows.append(("decoded", insp.describeHost(h), CellStyle(.normal))) }
        let labelWidth = rows.map(\.label.count).max() ?? 0
        let col = labelWidth + 2 <= 24 && rows.allSatisfy({ 24 + $0.text.count <= area.width }) ? 24 : labelWidth + 2
        for (i, r) in rows.enumerated() {
            s.put(area.x, y, r.label, i == 0 ? CellStyle(.heading) : CellStyle(.dim))
            if r.text.isEmpty { y += 1; continue }
            for l in TextWrap.lines(r.text, width: area.width - col).prefix(3) {
                s.put(area.x + col, y, l, r.style, maxWidth: area.width - col); y += 1
            }
        }
        y += rows.count == 1 ? 2 : 1
        visibleRows = max(1, area.maxY - y)
        if offset < top { top = offset & ~15 }
        if offset >= top + UInt64(visibleRows * 16) { top = (offset & ~15) - UInt64((visibleRows - 1) * 16) }
        let count = visibleRows * 16
        let bytes: [UInt8]?
        if hostMode { bytes = insp?.readHost(at: top, count: count) } else { bytes = app.image.readGuest(at: top, count: count) }
        guard let bytes else {
            s.put(area.x, y, "guest data here cannot be read yet (compressed, or no I/O for this format)", CellStyle(.warning), maxWidth: area.width); return
        }
        let written = hostMode ? app.live.writtenHost : app.live.writtenGuest
        let layout = HexLayout(lastOffset: top + UInt64(count), width: area.width)
        for row in 0..<visibleRows {
            let base = top + UInt64(row * 16)
            let lo = row * 16
            if lo >= bytes.count { break }
            s.put(area.x, y + row, String(base, radix: 16).leftPadded(layout.offsetDigits), CellStyle(.dim))
            var x = area.x + layout.hexColumn
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
            s.put(area.x + layout.asciiColumn, y + row, layout.bars ? "|" + ascii + "|" : ascii, CellStyle(.dim))
        }
    }

    /// Cursor keys, pages, guest/host switch.
    package func handle(_ e: InputEvent, _ app: AppState) -> Bool {
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
            if hostMode {
                // Back to the guest offset `m` came from (a host offset means nothing in guest space).
                hostMode = false
                if let g = guestOrigin { offset = g }
                guestOrigin = nil
                app.sayInView("guest bytes at \(hex(offset))", .ok)
            } else if let insp = app.image.inspector, let loc = insp.hostLocation(guest: offset) {
                guestOrigin = offset
                offset = loc.host
                hostMode = true
                app.sayInView(loc.note, .ok)
            } else {
                app.sayInView("guest \(hex(offset)) has no host location: \(app.image.inspector?.mapGuest(offset).text ?? "no layout")", .warning)
            }
            top = offset & ~15
        default: return false
        }
        return true
    }

    /// Guest or host offsets, as `m` last switched.
    package var gotoSpace: AddressSpace? { hostMode ? .host : .guest }

    /// The size of the space the dump shows (guest size, or host file size in host mode).
    private func limit(_ app: AppState) -> UInt64 {
        hostMode ? (app.image.inspector?.hostSize ?? 0) : app.image.guestSize
    }

    /// Moves the cursor to an offset in the current space, clamped to its last byte.
    package func goto(_ off: UInt64, _ app: AppState) -> Notice {
        let space = hostMode ? "host" : "guest"
        let end = limit(app)
        if end > 0 && off >= end {
            show(end - 1, host: hostMode)
            return Notice("\(hex(off)) is beyond the \(formatBytes(Double(end))) \(hostMode ? "host file" : "disk"): clamped to the last byte, \(space) \(hex(end - 1))", .warning)
        }
        show(off, host: hostMode)
        return Notice("at \(space) \(hex(off))", .ok)
    }

    /// Reads up to `count` bytes of the current space at `pos` (empty past the end).
    private func bytes(_ app: AppState, _ pos: UInt64, _ count: Int) -> [UInt8] {
        hostMode ? (app.image.inspector?.readHost(at: pos, count: count) ?? []) : (app.image.readGuest(at: pos, count: count) ?? [])
    }

    /// The most a search reads before giving up (a wrapped search of a small disk reads it all).
    static let searchBudget: UInt64 = 256 << 20

    /// Finds text (or `0x`-prefixed hex bytes) after the cursor (before it, backward),
    /// wrapping around the end of the space; reads at most 256 MiB.
    package func search(_ text: String, _ direction: SearchDirection, _ app: AppState) -> SearchOutcome {
        var needle = Array(text.utf8)
        if text.hasPrefix("0x"), text.count > 2, text.count % 2 == 0 {
            let h = Array(text.dropFirst(2))
            needle = stride(from: 0, to: h.count, by: 2).compactMap { UInt8(String(h[$0...$0 + 1]), radix: 16) }
        }
        guard !needle.isEmpty else { return SearchOutcome("nothing to find", found: false) }
        let end = limit(app)
        guard end > 0 else { return SearchOutcome("nothing to search", found: false) }
        let n = UInt64(needle.count)
        let chunk: UInt64 = 1 << 20
        var budget = Self.searchBudget
        // Each pass covers [lo, hi) of match start positions, in the search's direction.
        let passes: [(UInt64, UInt64, Bool)] = direction == .forward
            ? [(offset + 1, end, false), (0, min(offset + 1, end), true)]
            : [(0, offset, false), (offset, end, true)]
        for (lo, hi, wrapped) in passes where lo < hi {
            var done = false
            var pos = direction == .forward ? lo : hi
            while !done && budget > 0 {
                let start = direction == .forward ? pos : (pos > lo + chunk ? pos - chunk : lo)
                let stop = direction == .forward ? min(hi, pos + chunk) : pos
                let b = bytes(app, start, Int(stop - start + n - 1))
                budget = budget > stop - start ? budget - (stop - start) : 0
                if b.count >= needle.count,
                   let i = HexView.find(needle, in: b, starts: min(Int(stop - start), b.count - needle.count + 1), last: direction == .backward) {
                    offset = start + UInt64(i)
                    return SearchOutcome("found at \(hostMode ? "host" : "guest") \(hex(offset))", found: true, wrapped: wrapped)
                }
                if direction == .forward { pos = stop; done = pos >= hi } else { pos = start; done = pos <= lo }
            }
        }
        return SearchOutcome(budget == 0 ? "'\(text)' not found in the \(formatBytes(Double(Self.searchBudget))) searched" : "'\(text)' not found", found: false)
    }

    /// The first (or, with `last`, the last) position below `limit` where `needle` starts in
    /// `hay` (`memchr` finds candidates forward; backward scans byte by byte).
    static func find(_ needle: [UInt8], in hay: [UInt8], starts limit: Int, last: Bool) -> Int? {
        guard limit > 0, !needle.isEmpty else { return nil }
        return hay.withUnsafeBytes { h -> Int? in
            needle.withUnsafeBytes { n -> Int? in
                guard let hb = h.baseAddress, let nb = n.baseAddress else { return nil }
                let first = n[0]
                if last {
                    var i = limit - 1
                    while i >= 0 {
                        if h[i] == first && memcmp(hb + i, nb, n.count) == 0 { return i }
                        i -= 1
                    }
                    return nil
                }
                var i = 0
                while i < limit, let p = memchr(hb + i, Int32(first), limit - i) {
                    let j = UnsafeRawPointer(p) - hb
                    if memcmp(hb + j, nb, n.count) == 0 { return j }
                    i = j + 1
                }
                return nil
            }
        }
    }
}

/// Where the hex dump's columns go: the offset (right-aligned, `offsetDigits` wide), 16 bytes
/// as "xx " with one more space after the 8th (48 columns), then the ASCII text between bars.
/// Gaps of two columns when they fit in the width, else one, then the bars are dropped.
struct HexLayout {
    /// Digits of the offset column: those of the largest offset shown, at least 8.
    let offsetDigits: Int
    /// Column of the first byte and of the ASCII text, from the view's left edge.
    let hexColumn: Int, asciiColumn: Int
    /// Whether the ASCII text is drawn between `|` bars.
    let bars: Bool

    /// The layout for offsets up to `lastOffset` in `width` columns.
    init(lastOffset: UInt64, width: Int) {
        offsetDigits = max(8, String(lastOffset, radix: 16).count)
        let hex = 16 * 3 + 1 - 1          // "xx " x16, the extra space after the 8th, no trailing space
        let wide = offsetDigits + 2 + hex + 2 + 18
        let gap = wide <= width ? 2 : 1
        hexColumn = offsetDigits + gap
        asciiColumn = hexColumn + hex + gap
        bars = asciiColumn + 18 <= width
    }
}

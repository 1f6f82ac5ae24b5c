import BlockCore
import BlockEngine

/// The In-flight view's live filter (`/`, htop-style): words separated by spaces, all of
/// which a request must match.
///
/// - `r` / `read`, `w` / `write` (writes, zeroes and discards), `f` / `fsync`, `zero`, `discard`
/// - `qN`: queue N
/// - `A-B`: guest range overlapping `[A, B)` (`0x100000-0x200000`, `1M-2M`); `A`: contains offset A
/// - `>D`: waiting longer than D (`>1ms`, `>500us`, `>2s`)
/// - `id=ID`: the request with that id (`id=0x100000003`, as `req 0x100000003` reads; the
///   Virtqueue view's Enter sets it)
package struct InFlightFilter: Sendable, Equatable {
    /// The text as typed.
    package private(set) var text = ""
    private var ops: Set<GuestOp>?
    private var queue: Int?
    private var range: (UInt64, UInt64)?
    private var olderThanNs: UInt64?
    private var id: UInt64?
    /// Words that were not understood (the view says so).
    package private(set) var unknown: [String] = []

    /// No filter: everything matches.
    package init() {}

    /// Parses `text` (unknown words are listed in ``unknown`` and ignored).
    package init(_ text: String) {
        self.text = text
        for w in text.lowercased().split(separator: " ").map(String.init) {
            switch w {
            case "r", "read", "reads": ops = (ops ?? []).union([.read])
            case "w", "write", "writes": ops = (ops ?? []).union([.write, .zero, .discard])
            case "f", "fsync", "flush": ops = (ops ?? []).union([.fsync])
            case "zero": ops = (ops ?? []).union([.zero])
            case "discard", "trim": ops = (ops ?? []).union([.discard])
            default:
                if w.hasPrefix("q"), let n = Int(w.dropFirst()) { queue = n; continue }
                if w.hasPrefix("id="), let v = w.hasPrefix("id=0x") ? UInt64(w.dropFirst(5), radix: 16) : UInt64(w.dropFirst(3)) { id = v; continue }
                if w.hasPrefix(">"), let ns = InFlightFilter.duration(String(w.dropFirst())) { olderThanNs = ns; continue }
                let parts = w.split(separator: "-", maxSplits: 1).map(String.init)
                if parts.count == 2, let a = CommandScript.parseSize(parts[0]), let b = CommandScript.parseSize(parts[1]), b > a {
                    range = (a, b); continue
                }
                if parts.count == 1, let a = CommandScript.parseSize(w) { range = (a, a + 1); continue }
                unknown.append(w)
            }
        }
    }

    /// A duration like `1ms`, `500us`, `2s`, `100ns` in ns.
    static func duration(_ s: String) -> UInt64? {
        for (suffix, scale) in [("ns", 1.0), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)] where s.hasSuffix(suffix) {
            if let v = Double(s.dropLast(suffix.count)), v >= 0 { return UInt64(v * scale) }
        }
        return nil
    }

    /// Whether the filter has any condition.
    package var isActive: Bool { ops != nil || queue != nil || range != nil || olderThanNs != nil || id != nil }

    /// Whether request `r` passes (its age measured at `now`).
    package func matches(_ r: OutstandingRequest, now: UInt64) -> Bool {
        if let ops, !ops.contains(r.op) { return false }
        if let queue, r.queue != queue { return false }
        if let id, r.userData != id { return false }
        if let (a, b) = range {
            if r.op == .fsync { return false }
            if !(r.offset < b && a < r.offset + max(r.length, 1)) { return false }
        }
        if let t = olderThanNs, now <= r.acceptedNs || now - r.acceptedNs <= t { return false }
        return true
    }

    /// Two filters are equal when they were typed the same.
    package static func == (a: InFlightFilter, b: InFlightFilter) -> Bool { a.text == b.text }
}

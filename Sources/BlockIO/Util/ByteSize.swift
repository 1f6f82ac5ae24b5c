#if canImport(Glibc)
import Glibc
#endif

/// Parses a byte size as every blockscope input takes it: a decimal number with an
/// optional k/M/G/T/P suffix (powers of 1024, `KiB`/`kb` forms accepted) or `0x` hex.
/// Returns nil when malformed or when the value overflows 64 bits.
public func parseByteSize(_ s: String) -> UInt64? {
    var t = Substring(s.lowercased())
    if t.hasPrefix("0x") { return UInt64(t.dropFirst(2), radix: 16) }
    var mult: UInt64 = 1
    if t.hasSuffix("ib") { t = t.dropLast(2) } else if t.hasSuffix("b") && t.count > 1 && !t.dropLast().allSatisfy({ $0.isNumber }) { t = t.dropLast() }
    if let last = t.last {
        switch last {
        case "k": mult = 1 << 10
        case "m": mult = 1 << 20
        case "g": mult = 1 << 30
        case "t": mult = 1 << 40
        case "p": mult = 1 << 50
        default: break
        }
        if mult != 1 { t = t.dropLast() }
    }
    guard !t.isEmpty, t.allSatisfy({ $0.isNumber }), let v = UInt64(t) else { return nil }
    let (r, o) = v.multipliedReportingOverflow(by: mult)
    return o ? nil : r
}

/// How ``formatBytes(_:style:)`` writes a byte count; each style is what a reader compares
/// the output with.
public enum ByteSizeStyle: Sendable {
    /// blockscope's views: "512 B", "2.00 MiB", "16.0 MiB" (two decimals below 10, one above).
    case view
    /// qemu-img's human `info`: three significant digits and a space, "10 GiB", "1.5 MiB".
    case qemu
    /// fio's reports: no space, one decimal below 100 and none above, "4.0KiB", "273MiB".
    case fio
}

/// A byte count with a binary unit (B, KiB, ... PiB; fio's style stops at TiB). The one size
/// formatter of blockscope: the views, `info` and the fio-shaped reports call it with their
/// style.
public func formatBytes(_ v: Double, style: ByteSizeStyle = .view) -> String {
    let units = style == .fio ? ["B", "KiB", "MiB", "GiB", "TiB"] : ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var x = v, i = 0
    while x >= 1024 && i < units.count - 1 { x /= 1024; i += 1 }
    switch style {
    case .view:
        return i == 0 ? "\(Int(x)) B" : fixedDecimals(x, x < 10 ? 2 : 1) + " " + units[i]
    case .qemu:
        return i == 0 ? "\(Int64(v)) B" : cFormat("%.3g", x) + " " + units[i]
    case .fio:
        return (x >= 100 || i == 0 ? cFormat("%.0f", x) : cFormat("%.1f", x)) + units[i]
    }
}

/// `v` with `digits` decimals, rounded half away from zero (no Foundation formatting).
package func fixedDecimals(_ v: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let n = Int64((v * scale).rounded())
    let ip = n / Int64(scale), fp = abs(n % Int64(scale))
    if digits == 0 { return "\(ip)" }
    var f = String(fp)
    while f.count < digits { f = "0" + f }
    return "\(n < 0 && ip == 0 ? "-" : "")\(ip).\(f)"
}

/// One double through C's printf conversion `format` (`%.3g`, `%.1f`), as `String(format:)`
/// writes it, without Foundation.
func cFormat(_ format: String, _ v: Double) -> String {
    var buf = [CChar](repeating: 0, count: 64)
    _ = withVaList([v]) { args in vsnprintf(&buf, buf.count, format, args) }
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

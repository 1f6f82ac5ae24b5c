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

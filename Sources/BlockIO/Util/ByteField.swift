/// Little- and big-endian field stores, tags and UTF-16 text on byte arrays, for building
/// on-disk structures. Reading fields is ``ByteReader``'s (one bounds rule: it throws).
///
/// Offsets are byte offsets into an array the caller sized for the structure it builds.
package enum ByteField {
    /// Stores `v` little-endian in `width` bytes at `o`.
    @inlinable public static func putLE(_ b: inout [UInt8], _ o: Int, _ v: UInt64, width: Int) {
        for i in 0..<width { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }
    /// Stores `v` big-endian in `width` bytes at `o`.
    @inlinable public static func putBE(_ b: inout [UInt8], _ o: Int, _ v: UInt64, width: Int) {
        for i in 0..<width { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(width - 1 - i))) }
    }
    /// Whether `b[o..<o+tag.count]` holds the ASCII `tag`.
    @inlinable public static func hasTag(_ b: [UInt8], _ o: Int, _ tag: String) -> Bool {
        let t = Array(tag.utf8)
        return b.count >= o + t.count && Array(b[o..<(o + t.count)]) == t
    }
    /// Decodes UTF-16 (LE or BE) code units from `b`, stopping at the first NUL.
    public static func utf16(_ b: ArraySlice<UInt8>, bigEndian: Bool) -> String {
        var units: [UInt16] = []
        var i = b.startIndex
        while i + 1 < b.endIndex {
            let u = bigEndian ? UInt16(b[i]) << 8 | UInt16(b[i + 1]) : UInt16(b[i]) | UInt16(b[i + 1]) << 8
            if u == 0 { break }
            units.append(u)
            i += 2
        }
        return String(decoding: units, as: UTF16.self)
    }
    /// Encodes `s` as UTF-16 code units in the given byte order (no terminator).
    public static func encodeUTF16(_ s: String, bigEndian: Bool) -> [UInt8] {
        var out: [UInt8] = []
        for u in s.utf16 {
            if bigEndian { out += [UInt8(u >> 8), UInt8(u & 0xff)] } else { out += [UInt8(u & 0xff), UInt8(u >> 8)] }
        }
        return out
    }
}

/// Little- and big-endian field access on byte arrays, for on-disk structures.
///
/// Offsets are byte offsets into the array; callers check bounds (every parser reads a
/// fixed-size structure first). Used by the VHDX (little-endian) and VHD (big-endian) code.
package enum ByteField {
    /// Reads a little-endian `UInt16` at `o`.
    @inlinable public static func le16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    /// Reads a little-endian `UInt32` at `o`.
    @inlinable public static func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }
    /// Reads a little-endian `UInt64` at `o`.
    @inlinable public static func le64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(le32(b, o)) | UInt64(le32(b, o + 4)) << 32 }
    /// Reads a big-endian `UInt16` at `o`.
    @inlinable public static func be16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }
    /// Reads a big-endian `UInt32` at `o`.
    @inlinable public static func be32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
    /// Reads a big-endian `UInt64` at `o`.
    @inlinable public static func be64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(be32(b, o)) << 32 | UInt64(be32(b, o + 4)) }

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

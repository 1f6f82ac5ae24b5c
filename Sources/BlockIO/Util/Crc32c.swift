/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as VHDX checksums use.
///
/// Not zlib's CRC-32: the polynomial differs. Table-driven, eight bytes per step over
/// contiguous storage (slicing-by-8: eight 256-entry tables), one byte per step otherwise.
/// Eight bytes a step matters most under the fuzz targets' coverage instrumentation, where
/// each loop step costs a callback: a VHDX open checksums 136 KiB of headers and region
/// tables, and that was a third of `vhdx-write`'s time at one byte a step (docs/FUZZING.md).
public enum Crc32c {
    /// Table k (entries k*256 ..< (k+1)*256) advances a byte through k further zero bytes.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let prev = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (prev >> 8) ^ t[Int(prev & 0xff)]
            }
        }
        return t
    }()

    /// Continues `crc` (not complemented) over `bytes`.
    package static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = crc
        let n = bytes.count
        var i = 0
        tables.withUnsafeBufferPointer { t in
            while i + 8 <= n {
                let v = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let lo = UInt32(truncatingIfNeeded: v) ^ crc
                let hi = UInt32(truncatingIfNeeded: v >> 32)
                crc = t[7 * 256 + Int(lo & 0xff)] ^ t[6 * 256 + Int((lo >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xff)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xff)] ^ t[2 * 256 + Int((hi >> 8) & 0xff)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xff)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                crc = t[Int((crc ^ UInt32(bytes[i])) & 0xff)] ^ (crc >> 8)
                i += 1
            }
        }
        return crc
    }

    /// The CRC-32C of `bytes` (initial value 0xFFFFFFFF, final complement).
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        if let crc = bytes.withContiguousStorageIfAvailable({ update(0xFFFF_FFFF, UnsafeRawBufferPointer($0)) }) {
            return ~crc
        }
        var crc: UInt32 = 0xFFFF_FFFF
        tables.withUnsafeBufferPointer { t in
            for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xff)] ^ (crc >> 8) }
        }
        return ~crc
    }

    /// The CRC-32C of `bytes` with the 4-byte field at `fieldOffset` taken as zero.
    public static func checksum(_ bytes: [UInt8], zeroingFieldAt fieldOffset: Int) -> UInt32 {
        guard fieldOffset >= 0, fieldOffset + 4 <= bytes.count else {
            var copy = bytes
            for i in 0..<4 { copy[fieldOffset + i] = 0 }   // traps, as an index past the end does
            return checksum(copy)
        }
        let zeroes: UInt32 = 0
        return bytes.withUnsafeBytes { b in
            var crc = update(0xFFFF_FFFF, UnsafeRawBufferPointer(rebasing: b[0..<fieldOffset]))
            crc = withUnsafeBytes(of: zeroes) { update(crc, $0) }
            return ~update(crc, UnsafeRawBufferPointer(rebasing: b[(fieldOffset + 4)...]))
        }
    }

    /// Stores the CRC-32C of `bytes` (with the field zeroed) little-endian at `fieldOffset`.
    public static func seal(_ bytes: inout [UInt8], fieldOffset: Int) {
        for i in 0..<4 { bytes[fieldOffset + i] = 0 }
        let c = checksum(bytes)
        ByteField.putLE(&bytes, fieldOffset, UInt64(c), width: 4)
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as VHDX checksums use.
///
/// Not zlib's CRC-32: the polynomial differs. Table-driven, one byte per step.
public enum Crc32c {
    private static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The CRC-32C of `bytes` (initial value 0xFFFFFFFF, final complement).
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xff)] ^ (crc >> 8) }
        }
        return ~crc
    }

    /// The CRC-32C of `bytes` with the 4-byte field at `fieldOffset` taken as zero.
    public static func checksum(_ bytes: [UInt8], zeroingFieldAt fieldOffset: Int) -> UInt32 {
        var copy = bytes
        for i in 0..<4 { copy[fieldOffset + i] = 0 }
        return checksum(copy)
    }

    /// Stores the CRC-32C of `bytes` (with the field zeroed) little-endian at `fieldOffset`.
    public static func seal(_ bytes: inout [UInt8], fieldOffset: Int) {
        for i in 0..<4 { bytes[fieldOffset + i] = 0 }
        let c = checksum(bytes)
        ByteField.putLE(&bytes, fieldOffset, UInt64(c), width: 4)
    }
}

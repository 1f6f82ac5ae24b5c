import BlockCore

/// Helpers that change a qemu-img-made VHDX the way the fuzz targets do: read both headers'
/// sequence numbers, find the current header, and store a field in it with a fresh CRC-32C.

/// The sequence numbers of both VHDX headers (at 64 KiB and 128 KiB), as stored.
func vhdxSequenceNumbers(_ path: String) throws -> [UInt64] {
    let f = try SystemFile(path: path, writable: false)
    defer { f.close() }
    return try [0x10000, 0x20000].map { (o: UInt64) throws -> UInt64 in
        try f.readBytes(at: o + 8, count: 8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
}

/// The offset of the current VHDX header (the one with the larger sequence number).
func currentVhdxHeaderOffset(_ path: String) throws -> UInt64 {
    let seqs = try vhdxSequenceNumbers(path)
    return seqs[0] > seqs[1] ? 0x10000 : 0x20000
}

/// Stores `value` (little-endian u64) at byte `field` of the current VHDX header (8: the
/// sequence number, 72: LogOffset) and recomputes the header's CRC-32C.
func setCurrentVhdxHeaderField(_ path: String, field: Int, _ value: UInt64) throws {
    let offset = try currentVhdxHeaderOffset(path)
    let f = try SystemFile(path: path, writable: true)
    defer { f.close() }
    var h = try f.readBytes(at: offset, count: 4096)
    for i in 0..<8 { h[field + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    let crc = Crc32c.checksum(h, zeroingFieldAt: 4)
    for i in 0..<4 { h[4 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
    try f.writeBytes(h, at: offset)
}

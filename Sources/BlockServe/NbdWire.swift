import BlockIO

/// Reads big-endian integers and strings from untrusted bytes in order: a cursor over a
/// ``ByteReader`` (the one bounds-checked reader), where a read past the end returns nil,
/// which the parser turns into the protocol's error.
package struct NbdByteReader {
    private let reader: ByteReader
    /// Index of the next unread byte.
    package private(set) var position = 0

    /// Starts reading `bytes` at index 0.
    package init(_ bytes: [UInt8]) { reader = ByteReader(bytes, what: "nbd message") }

    /// The bytes being read.
    package var bytes: [UInt8] { reader.bytes }

    /// Bytes left to read.
    package var remaining: Int { reader.count - position }

    /// Reads `n` bytes as a big-endian unsigned integer (n ≤ 8), or nil when too few remain.
    package mutating func integer(_ n: Int) -> UInt64? {
        guard n >= 1, n <= 8, let v = try? reader.be(position, width: n) else { return nil }
        position += n
        return v
    }

    /// Reads a u16.
    package mutating func u16() -> UInt16? { integer(2).map { UInt16(truncatingIfNeeded: $0) } }
    /// Reads a u32.
    package mutating func u32() -> UInt32? { integer(4).map { UInt32(truncatingIfNeeded: $0) } }
    /// Reads a u64.
    package mutating func u64() -> UInt64? { integer(8) }

    /// Reads `n` bytes as UTF-8 (invalid sequences repaired), or nil when fewer remain.
    package mutating func string(_ n: Int) -> String? {
        guard n >= 0, let b = try? reader.slice(position, n) else { return nil }
        position += n
        return String(decoding: b, as: UTF8.self)
    }
}

/// Appends big-endian integers to a byte array.
package struct NbdByteWriter {
    /// The bytes written so far.
    package var bytes: [UInt8] = []

    /// Starts an empty buffer with room for `capacity` bytes.
    package init(capacity: Int = 32) { bytes.reserveCapacity(capacity) }

    /// Appends the low `n` bytes of `v`, most significant first.
    package mutating func integer(_ v: UInt64, _ n: Int) {
        for i in stride(from: n - 1, through: 0, by: -1) { bytes.append(UInt8(truncatingIfNeeded: v >> (UInt64(i) * 8))) }
    }
    /// Appends a u16.
    package mutating func u16(_ v: UInt16) { integer(UInt64(v), 2) }
    /// Appends a u32.
    package mutating func u32(_ v: UInt32) { integer(UInt64(v), 4) }
    /// Appends a u64.
    package mutating func u64(_ v: UInt64) { integer(v, 8) }
    /// Appends raw bytes.
    package mutating func append(_ b: [UInt8]) { bytes += b }
}

/// Stores big-endian integers straight into memory (reply headers on the hot path).
package enum NbdStore {
    /// Writes `v` big-endian at `p + at`; the caller guarantees 2 bytes of room.
    @inline(__always) public static func u16(_ p: UnsafeMutableRawPointer, _ at: Int, _ v: UInt16) {
        p.storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt16.self)
    }
    /// Writes `v` big-endian at `p + at`; the caller guarantees 4 bytes of room.
    @inline(__always) public static func u32(_ p: UnsafeMutableRawPointer, _ at: Int, _ v: UInt32) {
        p.storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt32.self)
    }
    /// Writes `v` big-endian at `p + at`; the caller guarantees 8 bytes of room.
    @inline(__always) public static func u64(_ p: UnsafeMutableRawPointer, _ at: Int, _ v: UInt64) {
        p.storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt64.self)
    }
}

/// Fixed-offset field reads over the bytes of one on-disk structure, in either byte order,
/// with one bounds rule: a field that does not lie wholly inside the bytes throws
/// `invalidFormat` naming the structure, the field's offset and width, and the structure's
/// length. A parser reads a header or table into an array, wraps it once, and reads fields by
/// their byte offsets as the specification lists them.
public struct ByteReader: Sendable {
    /// The structure's bytes.
    public let bytes: [UInt8]
    /// What the bytes are, for errors ("qcow2 header", "qcow2 snapshot 3").
    public let what: String
    /// The image the bytes came from, for errors.
    public let path: String?

    /// Wraps `bytes`, which hold the structure `what` of the image at `path`.
    public init(_ bytes: [UInt8], what: String, path: String? = nil) {
        self.bytes = bytes
        self.what = what
        self.path = path
    }

    /// The number of bytes.
    public var count: Int { bytes.count }

    @inline(__always)
    private func check(_ at: Int, _ width: Int) throws(BlockError) {
        if at < 0 || width > bytes.count || at > bytes.count - width {
            throw BlockError(.invalidFormat, "\(what): the \(width)-byte field at byte \(at) lies past its end (\(bytes.count) bytes)", path: path, operation: "open")
        }
    }

    @inline(__always)
    private func load(_ at: Int, _ width: Int, bigEndian: Bool) throws(BlockError) -> UInt64 {
        try check(at, width)
        var v: UInt64 = 0
        if bigEndian {
            for i in 0..<width { v = v << 8 | UInt64(bytes[at + i]) }
        } else {
            for i in (0..<width).reversed() { v = v << 8 | UInt64(bytes[at + i]) }
        }
        return v
    }

    /// The byte at `at`.
    public func u8(_ at: Int) throws(BlockError) -> UInt8 { try check(at, 1); return bytes[at] }
    /// A big-endian `UInt16` at byte `at`.
    public func be16(_ at: Int) throws(BlockError) -> UInt16 { UInt16(truncatingIfNeeded: try load(at, 2, bigEndian: true)) }
    /// A big-endian `UInt32` at byte `at`.
    public func be32(_ at: Int) throws(BlockError) -> UInt32 { UInt32(truncatingIfNeeded: try load(at, 4, bigEndian: true)) }
    /// A big-endian `UInt64` at byte `at`.
    public func be64(_ at: Int) throws(BlockError) -> UInt64 { try load(at, 8, bigEndian: true) }
    /// A little-endian `UInt16` at byte `at`.
    public func le16(_ at: Int) throws(BlockError) -> UInt16 { UInt16(truncatingIfNeeded: try load(at, 2, bigEndian: false)) }
    /// A little-endian `UInt32` at byte `at`.
    public func le32(_ at: Int) throws(BlockError) -> UInt32 { UInt32(truncatingIfNeeded: try load(at, 4, bigEndian: false)) }
    /// A little-endian `UInt64` at byte `at`.
    public func le64(_ at: Int) throws(BlockError) -> UInt64 { try load(at, 8, bigEndian: false) }
    /// A big-endian unsigned integer of `width` bytes (1...8) at byte `at`.
    public func be(_ at: Int, width: Int) throws(BlockError) -> UInt64 {
        precondition(width >= 1 && width <= 8, "ByteReader.be: width \(width) is not 1...8")
        return try load(at, width, bigEndian: true)
    }
    /// `count` bytes from `at`.
    public func slice(_ at: Int, _ count: Int) throws(BlockError) -> ArraySlice<UInt8> {
        try check(at, count)
        return bytes[at..<(at + count)]
    }
}

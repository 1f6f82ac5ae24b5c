import BlockIO
import BlockMap
import BlockInspect

#if canImport(Glibc)
import Glibc
#endif

/// A GUID as VHDX stores it: 16 bytes, the first three fields little-endian ("mixed endian").
public struct VhdxGuid: Hashable, Sendable, CustomStringConvertible {
    /// The 16 bytes in file order.
    public var bytes: [UInt8]

    /// The all-zero GUID.
    public static let zero = VhdxGuid(bytes: [UInt8](repeating: 0, count: 16))

    /// Wraps 16 bytes in file order.
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Reads 16 bytes at `o` of `b`.
    public init(_ b: [UInt8], at o: Int) { bytes = Array(b[o..<(o + 16)]) }

    /// Parses the textual form `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX` into file order.
    public init(_ text: String) {
        let hexDigits = text.filter { $0 != "-" }
        var raw: [UInt8] = []
        var i = hexDigits.startIndex
        while i < hexDigits.endIndex {
            let j = hexDigits.index(i, offsetBy: 2)
            raw.append(UInt8(hexDigits[i..<j], radix: 16) ?? 0)
            i = j
        }
        bytes = [raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6]] + raw[8..<16]
    }

    /// A random (version 4) GUID.
    public static func random() -> VhdxGuid {
        VhdxGuid(bytes: randomGuidBytes())
    }

    /// Whether every byte is zero.
    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    /// The textual form, upper case.
    public var description: String {
        let order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
        var s = ""
        for i in order {
            if i < 0 { s += "-"; continue }
            let h = String(bytes[i], radix: 16, uppercase: true)
            s += h.count == 1 ? "0" + h : h
        }
        return s
    }
}

/// VHDX layout constants from MS-VHDX.
public enum VhdxLayout {
    /// File type identifier offset (`vhdxfile`).
    public static let identifierOffset: UInt64 = 0
    /// The two header copies.
    public static let headerOffsets: [UInt64] = [64 * 1024, 128 * 1024]
    /// The two region table copies.
    public static let regionTableOffsets: [UInt64] = [192 * 1024, 256 * 1024]
    /// Bytes a header occupies for its checksum.
    public static let headerSize = 4096
    /// Bytes a region table occupies for its checksum.
    public static let regionTableSize = 64 * 1024
    /// One megabyte: the BAT's unit and the alignment of blocks and regions.
    public static let mb: UInt64 = 1 << 20
    /// BAT region GUID.
    public static let batGuid = VhdxGuid("2DC27766-F623-4200-9D64-115E9BFD4A08")
    /// Metadata region GUID.
    public static let metadataGuid = VhdxGuid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
}

/// One of the two VHDX headers (`head`, 4 KiB, CRC-32C over the 4 KiB).
public struct VhdxHeader: Sendable, Equatable {
    /// Sequence number: the valid header with the larger one is current.
    public var sequenceNumber: UInt64
    /// Changed on the first write to the file in a session.
    public var fileWriteGuid: VhdxGuid
    /// Changed on the first guest-visible write in a session.
    public var dataWriteGuid: VhdxGuid
    /// Non-zero while the log may hold entries to replay.
    public var logGuid: VhdxGuid
    /// Log format version (must be 0).
    public var logVersion: UInt16
    /// Header version (must be 1).
    public var version: UInt16
    /// Log length in bytes (a multiple of 1 MiB).
    public var logLength: UInt32
    /// Log offset in bytes (a multiple of 1 MiB).
    public var logOffset: UInt64

    /// Parses and validates a 4 KiB header; nil when the signature or checksum is wrong.
    public static func parse(_ b: [UInt8]) -> VhdxHeader? {
        do {
            guard b.count >= VhdxLayout.headerSize, ByteField.hasTag(b, 0, "head") else { return nil }
            let r = ByteReader(b, what: "vhdx header")
            let stored = try r.le32(4)
            guard Crc32c.checksum(Array(b[0..<VhdxLayout.headerSize]), zeroingFieldAt: 4) == stored else { return nil }
            return VhdxHeader(sequenceNumber: try r.le64(8), fileWriteGuid: VhdxGuid(b, at: 16),
                              dataWriteGuid: VhdxGuid(b, at: 32), logGuid: VhdxGuid(b, at: 48),
                              logVersion: try r.le16(64), version: try r.le16(66),
                              logLength: try r.le32(68), logOffset: try r.le64(72))
        } catch {
            return nil   // a field past the end: not a valid structure
        }
    }

    /// The 4 KiB on-disk form with its checksum.
    public func encode() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: VhdxLayout.headerSize)
        b[0..<4] = ArraySlice("head".utf8)
        ByteField.putLE(&b, 8, sequenceNumber, width: 8)
        b[16..<32] = ArraySlice(fileWriteGuid.bytes)
        b[32..<48] = ArraySlice(dataWriteGuid.bytes)
        b[48..<64] = ArraySlice(logGuid.bytes)
        ByteField.putLE(&b, 64, UInt64(logVersion), width: 2)
        ByteField.putLE(&b, 66, UInt64(version), width: 2)
        ByteField.putLE(&b, 68, UInt64(logLength), width: 4)
        ByteField.putLE(&b, 72, logOffset, width: 8)
        Crc32c.seal(&b, fieldOffset: 4)
        return b
    }

    /// Reads both headers and returns the current one (largest sequence number among valid ones)
    /// and its slot index (0 or 1).
    ///
    /// Throws `invalidFormat` naming both offsets when neither header is valid.
    public static func readCurrent(_ file: SystemFile) throws(BlockError) -> (header: VhdxHeader, slot: Int) {
        var best: (VhdxHeader, Int)?
        for (i, off) in VhdxLayout.headerOffsets.enumerated() {
            let b = try file.readBytes(at: off, count: VhdxLayout.headerSize)
            if let h = parse(b), best == nil || h.sequenceNumber > best!.0.sequenceNumber { best = (h, i) }
        }
        guard let best else {
            throw BlockError(.invalidFormat, "vhdx: neither header (at 0x10000 and 0x20000) has a valid signature and CRC-32C checksum", path: file.path, hostOffset: VhdxLayout.headerOffsets[0], operation: "open")
        }
        if best.0.version != 1 {
            throw BlockError(.unsupportedFeature, "vhdx: header version \(best.0.version) (only version 1 is defined)", path: file.path, hostOffset: VhdxLayout.headerOffsets[best.1], operation: "open")
        }
        return best
    }
}

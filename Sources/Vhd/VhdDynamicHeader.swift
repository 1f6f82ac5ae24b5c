import BlockIO
import BlockMap
import BlockInspect

/// One parent locator entry of a differencing VHD's dynamic header.
public struct VhdParentLocator: Sendable, Equatable {
    /// Platform code: `W2ru` (relative, UTF-16LE), `W2ku` (absolute, UTF-16LE), `Mac `, `MacX`.
    public var platformCode: UInt32
    /// Space reserved for the data, as stored (sectors per the specification; some tools store bytes).
    public var dataSpace: UInt32
    /// Length of the data in bytes.
    public var dataLength: UInt32
    /// File offset of the data.
    public var dataOffset: UInt64

    /// `W2ru`.
    public static let relative: UInt32 = 0x5732_7275
    /// `W2ku`.
    public static let absolute: UInt32 = 0x5732_6B75
}

/// The 1024-byte dynamic disk header (`cxsparse`, big-endian).
public struct VhdDynamicHeader: Sendable, Equatable {
    /// File offset of the BAT.
    public var tableOffset: UInt64
    /// BAT entries.
    public var maxTableEntries: UInt32
    /// Block size in bytes (2 MiB by default; a power of two, at least 512).
    public var blockSize: UInt32
    /// Parent's unique id (differencing).
    public var parentUniqueId: [UInt8]
    /// Parent's modification time (differencing).
    public var parentTimestamp: UInt32
    /// Parent's file name, UTF-16BE.
    public var parentName: String
    /// Parent locators (up to 8; empty slots dropped).
    public var locators: [VhdParentLocator]

    /// Parses and validates a header read at `offset`.
    public static func parse(_ b: [UInt8], path: String, at offset: UInt64) throws(BlockError) -> VhdDynamicHeader {
        guard b.count >= 1024, ByteField.hasTag(b, 0, "cxsparse") else {
            throw BlockError(.invalidFormat, "vpc: no 'cxsparse' dynamic header at \(hex(offset))", path: path, hostOffset: offset, operation: "open")
        }
        let r = ByteReader(b, what: "vpc dynamic header", path: path)
        let stored = try r.be32(36)
        if VhdChecksum.compute(Array(b[0..<1024]), field: 36) != stored {
            throw BlockError(.corruptImage, "vpc: dynamic header checksum mismatch (stored \(hex(UInt64(stored))))", path: path, hostOffset: offset, operation: "open")
        }
        var locs: [VhdParentLocator] = []
        for i in 0..<8 {
            let o = 576 + i * 24
            let code = try r.be32(o)
            if code == 0 { continue }
            locs.append(VhdParentLocator(platformCode: code, dataSpace: try r.be32(o + 4), dataLength: try r.be32(o + 8), dataOffset: try r.be64(o + 16)))
        }
        let h = VhdDynamicHeader(tableOffset: try r.be64(16), maxTableEntries: try r.be32(28), blockSize: try r.be32(32),
                                 parentUniqueId: Array(b[40..<56]), parentTimestamp: try r.be32(56),
                                 parentName: ByteField.utf16(b[64..<576], bigEndian: true), locators: locs)
        let bs = h.blockSize
        if bs < 512 || bs > (256 << 20) || bs & (bs - 1) != 0 {
            throw BlockError(.corruptImage, "vpc: block size \(bs) is invalid (a power of two from 512 bytes to 256 MiB)", path: path, hostOffset: offset + 32, operation: "open")
        }
        return h
    }

    /// The 1024-byte on-disk form with its checksum.
    public func encode() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 1024)
        b[0..<8] = ArraySlice("cxsparse".utf8)
        ByteField.putBE(&b, 8, UInt64.max, width: 8)
        ByteField.putBE(&b, 16, tableOffset, width: 8)
        ByteField.putBE(&b, 24, 0x0001_0000, width: 4)
        ByteField.putBE(&b, 28, UInt64(maxTableEntries), width: 4)
        ByteField.putBE(&b, 32, UInt64(blockSize), width: 4)
        b[40..<56] = ArraySlice(parentUniqueId)
        ByteField.putBE(&b, 56, UInt64(parentTimestamp), width: 4)
        let name = ByteField.encodeUTF16(parentName, bigEndian: true).prefix(512)
        b[64..<(64 + name.count)] = name
        for (i, l) in locators.prefix(8).enumerated() {
            let o = 576 + i * 24
            ByteField.putBE(&b, o, UInt64(l.platformCode), width: 4)
            ByteField.putBE(&b, o + 4, UInt64(l.dataSpace), width: 4)
            ByteField.putBE(&b, o + 8, UInt64(l.dataLength), width: 4)
            ByteField.putBE(&b, o + 16, l.dataOffset, width: 8)
        }
        ByteField.putBE(&b, 36, UInt64(VhdChecksum.compute(b, field: 36)), width: 4)
        return b
    }

    /// Bytes of a block's sector bitmap: one bit per 512-byte sector, padded to 512 bytes.
    public var bitmapSize: UInt64 { ((UInt64(blockSize) / 512 / 8) + 511) / 512 * 512 }
}

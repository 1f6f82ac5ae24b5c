import BlockIO
import BlockMap
import BlockInspect

/// The VHD disk types (footer field `disk type`).
public enum VhdDiskType: UInt32, Sendable {
    /// Data at the same offsets, footer at the end.
    case fixed = 2
    /// Blocks allocated on demand through a BAT.
    case dynamic = 3
    /// Dynamic, with unwritten sectors read from a parent.
    case differencing = 4

    /// qemu-img's subformat name.
    public var name: String {
        switch self {
        case .fixed: return "fixed"
        case .dynamic: return "dynamic"
        case .differencing: return "differencing"
        }
    }
}

/// The one's-complement byte-sum checksum VHD footers and dynamic headers use.
public enum VhdChecksum {
    /// The checksum of `b` with the 4-byte field at `field` taken as zero.
    public static func compute(_ b: [UInt8], field: Int) -> UInt32 {
        var sum: UInt32 = 0
        for (i, x) in b.enumerated() where i < field || i >= field + 4 { sum &+= UInt32(x) }
        return ~sum
    }
}

/// The 512-byte VHD footer (`conectix`, big-endian).
public struct VhdFooter: Sendable, Equatable {
    /// Offset of the dynamic header, or all ones for fixed disks.
    public var dataOffset: UInt64
    /// Seconds since 2000-01-01 UTC.
    public var timestamp: UInt32
    /// Creator application, 4 ASCII bytes ("qemu", "qem2", "win ", "vpc ", ...).
    public var creatorApp: [UInt8]
    /// Creator version.
    public var creatorVersion: UInt32
    /// Creator host OS.
    public var creatorOS: UInt32
    /// Size at creation.
    public var originalSize: UInt64
    /// Current size in bytes.
    public var currentSize: UInt64
    /// CHS geometry: cylinders.
    public var cylinders: UInt16
    /// CHS geometry: heads.
    public var heads: UInt8
    /// CHS geometry: sectors per track.
    public var sectorsPerTrack: UInt8
    /// Disk type.
    public var diskType: VhdDiskType
    /// Unique id (16 bytes).
    public var uniqueId: [UInt8]
    /// Saved-state flag.
    public var savedState: UInt8

    /// The creator as text.
    public var creator: String { String(decoding: creatorApp.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self) }

    /// The guest size qemu uses: `current_size` for creators that write it reliably
    /// (`qem2` = force_size, `win `, `d2v `, `tap\0`, `CTXS`) or when the CHS is the maximum
    /// geometry; the CHS product times 512 otherwise (`qemu`, `vpc `, ...).
    public var virtualSize: UInt64 {
        let trusted: [[UInt8]] = [Array("qem2".utf8), Array("win ".utf8), Array("d2v ".utf8), [0x74, 0x61, 0x70, 0], Array("CTXS".utf8)]
        let chs = UInt64(cylinders) * UInt64(heads) * UInt64(sectorsPerTrack)
        if trusted.contains(creatorApp) || chs == 65535 * 16 * 255 || diskType == .fixed && chs == 0 { return currentSize }
        return chs * 512
    }

    /// Parses and validates a footer; nil when the cookie is wrong. Throws on a bad checksum
    /// or unknown disk type.
    public static func parse(_ b: [UInt8], path: String, at offset: UInt64) throws(BlockError) -> VhdFooter? {
        guard b.count >= 512, ByteField.hasTag(b, 0, "conectix") else { return nil }
        let r = ByteReader(b, what: "vpc footer", path: path)
        let stored = try r.be32(64)
        if VhdChecksum.compute(Array(b[0..<512]), field: 64) != stored {
            throw BlockError(.corruptImage, "vpc: footer checksum mismatch (stored \(hex(UInt64(stored))))", path: path, hostOffset: offset, operation: "open")
        }
        guard let type = VhdDiskType(rawValue: try r.be32(60)) else {
            throw BlockError(.unsupportedFeature, "vpc: disk type \(try r.be32(60)) (2 fixed, 3 dynamic, 4 differencing)", path: path, hostOffset: offset, operation: "open")
        }
        return VhdFooter(dataOffset: try r.be64(16), timestamp: try r.be32(24), creatorApp: Array(b[28..<32]),
                         creatorVersion: try r.be32(32), creatorOS: try r.be32(36), originalSize: try r.be64(40),
                         currentSize: try r.be64(48), cylinders: try r.be16(56), heads: b[58], sectorsPerTrack: b[59],
                         diskType: type, uniqueId: Array(b[68..<84]), savedState: b[84])
    }

    /// The 512-byte on-disk form with its checksum.
    public func encode() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        b[0..<8] = ArraySlice("conectix".utf8)
        ByteField.putBE(&b, 8, 2, width: 4)
        ByteField.putBE(&b, 12, 0x0001_0000, width: 4)
        ByteField.putBE(&b, 16, dataOffset, width: 8)
        ByteField.putBE(&b, 24, UInt64(timestamp), width: 4)
        b[28..<32] = ArraySlice(creatorApp)
        ByteField.putBE(&b, 32, UInt64(creatorVersion), width: 4)
        ByteField.putBE(&b, 36, UInt64(creatorOS), width: 4)
        ByteField.putBE(&b, 40, originalSize, width: 8)
        ByteField.putBE(&b, 48, currentSize, width: 8)
        ByteField.putBE(&b, 56, UInt64(cylinders), width: 2)
        b[58] = heads
        b[59] = sectorsPerTrack
        ByteField.putBE(&b, 60, UInt64(diskType.rawValue), width: 4)
        b[68..<84] = ArraySlice(uniqueId)
        b[84] = savedState
        ByteField.putBE(&b, 64, UInt64(VhdChecksum.compute(b, field: 64)), width: 4)
        return b
    }

    /// CHS geometry for `sectors` as the VHD specification computes it (capped at 65535*16*255).
    public static func geometry(sectors: UInt64) -> (cylinders: UInt16, heads: UInt8, sectorsPerTrack: UInt8) {
        let ts = min(sectors, 65535 * 16 * 255)
        var spt: UInt64, heads: UInt64, cth: UInt64
        if ts >= 65535 * 16 * 63 {
            spt = 255; heads = 16; cth = ts / spt
        } else {
            spt = 17; cth = ts / spt
            heads = max(4, (cth + 1023) / 1024)
            if cth >= heads * 1024 || heads > 16 { spt = 31; heads = 16; cth = ts / spt }
            if cth >= heads * 1024 { spt = 63; heads = 16; cth = ts / spt }
        }
        return (UInt16(min(cth / heads, 65535)), UInt8(heads), UInt8(spt))
    }
}

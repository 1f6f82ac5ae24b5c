import BlockIO
import BlockInspect

/// One entry of the feature-name table extension (48 bytes: type, bit, 46-byte name).
public struct Qcow2FeatureName: Sendable, Equatable {
    /// 0 incompatible, 1 compatible, 2 autoclear.
    public var type: UInt8
    /// Bit number within its feature word.
    public var bit: UInt8
    /// The feature's name, e.g. "dirty bit".
    public var name: String
}

/// The bitmaps extension: where the persistent dirty bitmap directory is.
public struct Qcow2BitmapsExtension: Sendable, Equatable {
    /// The largest bitmap directory QEMU accepts, in bytes (QCOW2_MAX_BITMAP_DIRECTORY_SIZE).
    public static let maxDirectorySize: UInt64 = 67_107_840
    /// Number of bitmaps in the directory.
    public var count: UInt32
    /// Bytes of the directory.
    public var directorySize: UInt64
    /// Host offset of the directory.
    public var directoryOffset: UInt64
}

/// The header extensions of a QCOW2 image (type/length/data records after the header).
public struct Qcow2Extensions: Sendable, Equatable {
    /// Extension type magics.
    public enum Magic {
        /// End of the extension area.
        public static let end: UInt32 = 0
        /// Backing file format name.
        public static let backingFormat: UInt32 = 0xe279_2aca
        /// Feature name table.
        public static let featureNames: UInt32 = 0x6803_f857
        /// Bitmaps.
        public static let bitmaps: UInt32 = 0x2385_2875
        /// Full disk encryption header pointer.
        public static let encryption: UInt32 = 0x0537_be77
        /// External data file name.
        public static let dataFile: UInt32 = 0x4441_5441
    }

    /// The backing file's format ("raw", "qcow2", ...), when recorded.
    public var backingFormat: String?
    /// The feature-name table.
    public var featureNames: [Qcow2FeatureName] = []
    /// The bitmaps extension.
    public var bitmaps: Qcow2BitmapsExtension?
    /// The encryption header's host offset and length.
    public var encryption: (offset: UInt64, length: UInt64)?
    /// The external data file's name.
    public var dataFile: String?
    /// Every extension seen, as (type, data length), in file order.
    public var seen: [(type: UInt32, length: UInt32)] = []

    /// Compares the parsed fields.
    public static func == (a: Qcow2Extensions, b: Qcow2Extensions) -> Bool {
        a.backingFormat == b.backingFormat && a.featureNames == b.featureNames && a.bitmaps == b.bitmaps
            && a.encryption?.offset == b.encryption?.offset && a.encryption?.length == b.encryption?.length
            && a.dataFile == b.dataFile && a.seen.map(\.type) == b.seen.map(\.type)
    }

    /// A name for an extension type, for `info`.
    public static func name(of type: UInt32) -> String {
        switch type {
        case Magic.backingFormat: return "backing-format"
        case Magic.featureNames: return "feature-names"
        case Magic.bitmaps: return "bitmaps"
        case Magic.encryption: return "encryption"
        case Magic.dataFile: return "data-file"
        default: return "unknown-" + hex(UInt64(type))
        }
    }

    /// Parses the extensions in `head` (the first cluster) from `header.extensionsStart` up to
    /// the backing file name or the end of the cluster.
    ///
    /// Refuses an extension whose length runs past that end.
    public static func parse(_ head: [UInt8], header: Qcow2Header, path: String) throws(BlockError) -> Qcow2Extensions {
        var ext = Qcow2Extensions()
        var end = min(UInt64(head.count), header.clusterSize)
        if header.backingFileOffset != 0 { end = min(end, header.backingFileOffset) }
        var pos = header.extensionsStart
        let b = ByteReader(head, what: "qcow2 header extensions", path: path)
        while pos + 8 <= end {
            let type = try b.be32(Int(pos))
            let len = UInt64(try b.be32(Int(pos) + 4))
            if type == Magic.end { break }
            let dataStart = pos + 8
            if dataStart + len > end {
                throw BlockError(.invalidFormat, "qcow2: header extension \(hex(UInt64(type))) at \(hex(pos)) has length \(len), past the end of the extension area (\(hex(end)))", path: path, hostOffset: pos, operation: "open")
            }
            let data = Array(head[Int(dataStart)..<Int(dataStart + len)])
            ext.seen.append((type, UInt32(len)))
            let d = ByteReader(data, what: "qcow2 header extension \(hex(UInt64(type)))", path: path)
            switch type {
            case Magic.backingFormat:
                ext.backingFormat = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
            case Magic.dataFile:
                ext.dataFile = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
            case Magic.featureNames:
                var i = 0
                while i + 48 <= data.count {
                    let name = String(decoding: data[(i + 2)..<(i + 48)].prefix { $0 != 0 }, as: UTF8.self)
                    ext.featureNames.append(Qcow2FeatureName(type: data[i], bit: data[i + 1], name: name))
                    i += 48
                }
            case Magic.bitmaps:
                if data.count >= 24 {
                    ext.bitmaps = Qcow2BitmapsExtension(count: try d.be32(0), directorySize: try d.be64(8), directoryOffset: try d.be64(16))
                }
            case Magic.encryption:
                if data.count >= 16 { ext.encryption = (try d.be64(0), try d.be64(8)) }
            default:
                break
            }
            pos = dataStart + ((len + 7) & ~7)
        }
        return ext
    }

    /// The name the feature table gives bit `bit` of word `type`, or a generic description.
    public func featureName(type: UInt8, bit: Int) -> String {
        if let f = featureNames.first(where: { $0.type == type && Int($0.bit) == bit }) { return f.name }
        return "unknown feature bit \(bit)"
    }
}

/// One persistent dirty bitmap from the bitmap directory.
public struct Qcow2Bitmap: Sendable, Equatable {
    /// The bitmap's name.
    public var name: String
    /// log2 of the bytes one bit covers.
    public var granularityBits: UInt8
    /// Flag bits: 0 in use, 1 auto.
    public var flags: UInt32
    /// Host offset of the bitmap table.
    public var tableOffset: UInt64
    /// Entries in the bitmap table.
    public var tableSize: UInt32

    /// qemu-img info's flag names.
    public var flagNames: [String] {
        var f: [String] = []
        if flags & 1 != 0 { f.append("in-use") }
        if flags & 2 != 0 { f.append("auto") }
        return f
    }

    /// Parses the bitmap directory (`bytes` is the whole directory).
    static func parseDirectory(_ bytes: [UInt8], count: UInt32, path: String) throws(BlockError) -> [Qcow2Bitmap] {
        var out: [Qcow2Bitmap] = []
        let b = ByteReader(bytes, what: "qcow2 bitmap directory", path: path)
        var pos = 0
        for i in 0..<Int(count) {
            if pos + 24 > bytes.count { throw BlockError(.corruptImage, "qcow2: bitmap directory entry \(i) runs past the directory", path: path, operation: "open") }
            let nameSize = Int(try b.be16(pos + 18))
            let extra = Int(try b.be32(pos + 20))
            let nameStart = pos + 24 + extra
            if nameStart + nameSize > bytes.count { throw BlockError(.corruptImage, "qcow2: bitmap directory entry \(i) name runs past the directory", path: path, operation: "open") }
            out.append(Qcow2Bitmap(name: String(decoding: bytes[nameStart..<(nameStart + nameSize)], as: UTF8.self),
                                   granularityBits: try b.u8(pos + 17), flags: try b.be32(pos + 12),
                                   tableOffset: try b.be64(pos), tableSize: try b.be32(pos + 8)))
            pos = (nameStart + nameSize + 7) & ~7
        }
        return out
    }
}

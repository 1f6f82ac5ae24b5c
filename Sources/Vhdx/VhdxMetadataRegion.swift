import BlockIO
import BlockMap
import BlockInspect

/// The metadata items of a VHDX file (MS-VHDX 2.6), parsed from the metadata region.
public struct VhdxMetadataItems: Sendable, Equatable {
    /// Payload block size in bytes (1 MiB..256 MiB, a power of two).
    public var blockSize: UInt32
    /// File parameter flag: blocks stay allocated (fixed disks).
    public var leaveBlocksAllocated: Bool
    /// File parameter flag: a differencing disk with a parent.
    public var hasParent: Bool
    /// Guest-visible size in bytes.
    public var virtualSize: UInt64
    /// Logical sector size (512 or 4096).
    public var logicalSectorSize: UInt32
    /// Physical sector size (512 or 4096).
    public var physicalSectorSize: UInt32
    /// The virtual disk id (Page 83 data), if present.
    public var diskId: VhdxGuid?
    /// Parent locator key/value pairs (differencing disks), with the locator type GUID.
    public var parentLocator: [String: String]?

    /// Item GUIDs.
    public static let fileParametersGuid = VhdxGuid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
    /// Virtual disk size item.
    public static let virtualSizeGuid = VhdxGuid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
    /// Page 83 data item.
    public static let page83Guid = VhdxGuid("BECA12AB-B2E6-4523-93EF-C309E000C746")
    /// Logical sector size item.
    public static let logicalSectorGuid = VhdxGuid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
    /// Physical sector size item.
    public static let physicalSectorGuid = VhdxGuid("CDA348C7-445D-4471-9CC9-E9885251C556")
    /// Parent locator item.
    public static let parentLocatorGuid = VhdxGuid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
    /// The VHDX parent locator type.
    public static let vhdxLocatorType = VhdxGuid("B04AEFB7-D19E-4A81-B789-25B8E9445913")

    /// Parses the metadata region at `region` (read through `reader`, which may apply an in-memory log replay) and validates every item.
    ///
    /// Errors name the item and its offset: missing required items, block sizes that are
    /// not a power of two in 1..256 MiB, sector sizes other than 512/4096, sizes above
    /// 64 TiB, and parent locators that do not fit in their item.
    public static func read(path: String, region: VhdxRegionEntry, reader: (UInt64, Int) throws(BlockError) -> [UInt8]) throws(BlockError) -> VhdxMetadataItems {
        let table = try reader(region.fileOffset, 64 * 1024)
        guard ByteField.hasTag(table, 0, "metadata") else {
            throw BlockError(.invalidFormat, "vhdx: metadata table at \(hex(region.fileOffset)) has no 'metadata' signature", path: path, hostOffset: region.fileOffset, operation: "open")
        }
        let t = ByteReader(table, what: "vhdx metadata table", path: path)
        let count = Int(try t.le16(10))
        if count > 2047 {
            throw BlockError(.corruptImage, "vhdx: metadata table has \(count) entries (at most 2047)", path: path, hostOffset: region.fileOffset, operation: "open")
        }
        var items: [VhdxGuid: [UInt8]] = [:]
        for i in 0..<count {
            let o = 32 + i * 32
            let guid = VhdxGuid(table, at: o)
            let off = UInt64(try t.le32(o + 16))
            let len = UInt64(try t.le32(o + 20))
            let flags = try t.le32(o + 24)
            if len == 0 { continue }
            if off < 64 * 1024 || off + len > UInt64(region.length) {
                throw BlockError(.corruptImage, "vhdx: metadata item \(guid) at offset \(hex(off)) (length \(len)) lies outside the metadata region (length \(hex(UInt64(region.length))))", path: path, hostOffset: region.fileOffset + off, operation: "open")
            }
            let known = [fileParametersGuid, virtualSizeGuid, page83Guid, logicalSectorGuid, physicalSectorGuid, parentLocatorGuid]
            if flags & 4 != 0 && !known.contains(guid) {
                throw BlockError(.unsupportedFeature, "vhdx: required metadata item \(guid) is unknown", path: path, hostOffset: region.fileOffset + off, operation: "open")
            }
            items[guid] = try reader(region.fileOffset + off, Int(len))
        }
        func need(_ g: VhdxGuid, _ name: String, _ size: Int) throws(BlockError) -> [UInt8] {
            guard let b = items[g], b.count >= size else {
                throw BlockError(.invalidFormat, "vhdx: required metadata item '\(name)' (\(g)) is missing", path: path, hostOffset: region.fileOffset, operation: "open")
            }
            return b
        }
        let fp = try need(fileParametersGuid, "file parameters", 8)
        let vs = try need(virtualSizeGuid, "virtual disk size", 8)
        let ls = try need(logicalSectorGuid, "logical sector size", 4)
        let ps = try need(physicalSectorGuid, "physical sector size", 4)
        let fpr = ByteReader(fp, what: "vhdx file parameters", path: path), vsr = ByteReader(vs, what: "vhdx virtual disk size", path: path)
        let lsr = ByteReader(ls, what: "vhdx logical sector size", path: path), psr = ByteReader(ps, what: "vhdx physical sector size", path: path)
        var m = VhdxMetadataItems(blockSize: try fpr.le32(0), leaveBlocksAllocated: try fpr.le32(4) & 1 != 0,
                                  hasParent: try fpr.le32(4) & 2 != 0, virtualSize: try vsr.le64(0),
                                  logicalSectorSize: try lsr.le32(0), physicalSectorSize: try psr.le32(0),
                                  diskId: items[page83Guid].flatMap { $0.count >= 16 ? VhdxGuid($0, at: 0) : nil }, parentLocator: nil)
        let bs = m.blockSize
        if bs < (1 << 20) || bs > (256 << 20) || bs & (bs - 1) != 0 {
            throw BlockError(.corruptImage, "vhdx: block size \(bs) is invalid (must be a power of two from 1 MiB to 256 MiB)", path: path, hostOffset: region.fileOffset, operation: "open")
        }
        if m.logicalSectorSize != 512 && m.logicalSectorSize != 4096 {
            throw BlockError(.corruptImage, "vhdx: logical sector size \(m.logicalSectorSize) is invalid (512 or 4096)", path: path, operation: "open")
        }
        if m.physicalSectorSize != 512 && m.physicalSectorSize != 4096 {
            throw BlockError(.corruptImage, "vhdx: physical sector size \(m.physicalSectorSize) is invalid (512 or 4096)", path: path, operation: "open")
        }
        if m.virtualSize == 0 || m.virtualSize > (64 << 40) || m.virtualSize % UInt64(m.logicalSectorSize) != 0 {
            throw BlockError(.corruptImage, "vhdx: virtual disk size \(m.virtualSize) is invalid (a multiple of the logical sector size, at most 64 TiB)", path: path, operation: "open")
        }
        if m.hasParent {
            let pl = try need(parentLocatorGuid, "parent locator", 20)
            m.parentLocator = try parseParentLocator(pl, path: path)
        }
        return m
    }

    /// Parses a parent locator item: a type GUID, then `count` key/value entries of UTF-16LE text.
    public static func parseParentLocator(_ b: [UInt8], path: String) throws(BlockError) -> [String: String] {
        let type = VhdxGuid(b, at: 0)
        if type != vhdxLocatorType {
            throw BlockError(.unsupportedFeature, "vhdx: parent locator type \(type) is not the VHDX locator", path: path, operation: "open")
        }
        let r = ByteReader(b, what: "vhdx parent locator", path: path)
        let count = Int(try r.le16(18))
        var out: [String: String] = [:]
        for i in 0..<count {
            let o = 20 + i * 12
            guard o + 12 <= b.count else {
                throw BlockError(.corruptImage, "vhdx: parent locator entry \(i) lies past the end of the item", path: path, operation: "open")
            }
            let ko = Int(try r.le32(o)), vo = Int(try r.le32(o + 4))
            let kl = Int(try r.le16(o + 8)), vl = Int(try r.le16(o + 10))
            guard ko + kl <= b.count, vo + vl <= b.count else {
                throw BlockError(.corruptImage, "vhdx: parent locator entry \(i) points past the end of the item", path: path, operation: "open")
            }
            out[ByteField.utf16(b[ko..<(ko + kl)], bigEndian: false)] = ByteField.utf16(b[vo..<(vo + vl)], bigEndian: false)
        }
        return out
    }

    /// Encodes a parent locator item from key/value pairs (keys sorted for stable output).
    public static func encodeParentLocator(_ kv: [String: String]) -> [UInt8] {
        let keys = kv.keys.sorted()
        var head = vhdxLocatorType.bytes + [0, 0]
        head += [UInt8(keys.count & 0xff), UInt8(keys.count >> 8)]
        var strings: [UInt8] = []
        let base = 20 + keys.count * 12
        var entries: [UInt8] = []
        for k in keys {
            let kb = ByteField.encodeUTF16(k, bigEndian: false), vb = ByteField.encodeUTF16(kv[k]!, bigEndian: false)
            var e = [UInt8](repeating: 0, count: 12)
            ByteField.putLE(&e, 0, UInt64(base + strings.count), width: 4)
            strings += kb
            ByteField.putLE(&e, 4, UInt64(base + strings.count), width: 4)
            strings += vb
            ByteField.putLE(&e, 8, UInt64(kb.count), width: 2)
            ByteField.putLE(&e, 10, UInt64(vb.count), width: 2)
            entries += e
        }
        return head + entries + strings
    }
}

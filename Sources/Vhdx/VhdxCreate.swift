import BlockIO
import BlockMap
import BlockInspect

#if canImport(Glibc)
import Glibc
#endif

/// Options for creating a VHDX image (qemu-img's `-o` names in parentheses).
public struct VhdxCreateOptions: Sendable {
    /// Payload block size in bytes; 0 picks one from the size (`block_size`).
    public var blockSize: UInt64 = 0
    /// Fixed (all blocks preallocated) instead of dynamic (`subformat`).
    public var fixed = false
    /// Log size in bytes, a multiple of 1 MiB (`log_size`).
    public var logSize: UInt64 = 1 << 20
    /// Mark every block ZERO in the BAT (`block_state_zero`, qemu's default on).
    public var blockStateZero = true
    /// Logical sector size, 512 or 4096.
    public var logicalSectorSize: UInt64 = 512
    /// Parent image for a differencing disk (`-b`); its path is stored relative and absolute.
    public var parent: String? = nil
    /// How the parent is opened (BlockCore's `openDisk`); nil refuses a parent.
    public var referenceOpener: ImageOpener? = nil

    /// Default options (dynamic, 1 MiB log, block_state_zero on).
    public init() {}
}

extension VhdxFormat {
    /// Creates a VHDX image at `path` of `size` guest bytes (0 with a parent: the parent's size).
    ///
    /// Layout: identifier, two headers, two region tables, the log at 1 MiB, the metadata
    /// region after it, then the BAT and (fixed) the payload blocks, each 1 MiB aligned.
    /// Differencing disks get a parent locator with `parent_linkage`, `relative_path` and
    /// `absolute_win32_path`, and all payload blocks NOT_PRESENT.
    public static func create(path: String, size: UInt64, options: VhdxCreateOptions = VhdxCreateOptions()) throws(BlockError) {
        var size = size
        var locator: [String: String]? = nil
        let mb = VhdxLayout.mb
        if let parentPath = options.parent {
            var po = OpenOptions(writable: false)
            po.referenceOpener = options.referenceOpener
            let parent = try po.openReference(parentPath, options: po)
            defer { try? parent.close() }
            if size == 0 { size = parent.logicalSize }
            let (abs, rel) = parentPaths(child: path, parent: parentPath)
            var linkage = VhdxGuid.zero.description
            if let p = parent as? VhdxDisk { linkage = p.metadata.currentHeader.dataWriteGuid.description }
            locator = ["parent_linkage": "{\(linkage)}", "relative_path": rel, "absolute_win32_path": abs]
        }
        let bs = options.blockSize == 0 ? (size > (1 << 40) ? 32 * mb : 8 * mb) : options.blockSize
        if bs < mb || bs > 256 * mb || bs & (bs - 1) != 0 {
            throw BlockError(.invalidArgument, "vhdx: block_size \(bs) must be a power of two from 1 MiB to 256 MiB", path: path, operation: "create")
        }
        if options.logSize < mb || options.logSize % mb != 0 || options.logSize > (1 << 32) - mb {
            throw BlockError(.invalidArgument, "vhdx: log_size \(options.logSize) must be a multiple of 1 MiB below 4 GiB", path: path, operation: "create")
        }
        if size == 0 || size > (64 << 40) || size % options.logicalSectorSize != 0 {
            throw BlockError(.invalidArgument, "vhdx: size \(size) must be a non-zero multiple of \(options.logicalSectorSize) up to 64 TiB", path: path, operation: "create")
        }
        let diff = locator != nil
        let g = try VhdxBatGeometry(virtualSize: size, blockSize: bs, logicalSectorSize: options.logicalSectorSize, differencing: diff, path: path)
        let logOffset = mb
        let metaOffset = logOffset + options.logSize
        let batOffset = metaOffset + mb
        let batLength = (g.totalEntries * 8 + mb - 1) / mb * mb
        let dataStart = batOffset + batLength
        let file = try SystemFile(path: path, writable: true, create: true, truncate: true)
        defer { file.close() }

        var ident = [UInt8](repeating: 0, count: 64 * 1024)
        ident[0..<8] = ArraySlice("vhdxfile".utf8)
        let creator = ByteField.encodeUTF16("blockscope", bigEndian: false)
        ident[8..<(8 + creator.count)] = ArraySlice(creator)
        try file.writeBytes(ident, at: 0)
        var h = VhdxHeader(sequenceNumber: 0, fileWriteGuid: .random(), dataWriteGuid: .random(), logGuid: .zero,
                           logVersion: 0, version: 1, logLength: UInt32(options.logSize), logOffset: logOffset)
        try file.writeBytes(h.encode(), at: VhdxLayout.headerOffsets[0])
        h.sequenceNumber = 1
        try file.writeBytes(h.encode(), at: VhdxLayout.headerOffsets[1])
        let regions = VhdxRegionTable(entries: [
            VhdxRegionEntry(guid: VhdxLayout.batGuid, fileOffset: batOffset, length: UInt32(batLength), required: true),
            VhdxRegionEntry(guid: VhdxLayout.metadataGuid, fileOffset: metaOffset, length: UInt32(mb), required: true),
        ]).encode()
        for off in VhdxLayout.regionTableOffsets { try file.writeBytes(regions, at: off) }

        // Metadata region: table, then items from 64 KiB.
        var items: [(VhdxGuid, [UInt8], UInt32)] = []
        var fp = [UInt8](repeating: 0, count: 8)
        ByteField.putLE(&fp, 0, bs, width: 4)
        ByteField.putLE(&fp, 4, (options.fixed ? 1 : 0) | (diff ? 2 : 0), width: 4)
        items.append((VhdxMetadataItems.fileParametersGuid, fp, 4))
        var vs = [UInt8](repeating: 0, count: 8)
        ByteField.putLE(&vs, 0, size, width: 8)
        items.append((VhdxMetadataItems.virtualSizeGuid, vs, 6))
        items.append((VhdxMetadataItems.page83Guid, VhdxGuid.random().bytes, 6))
        var ls = [UInt8](repeating: 0, count: 4)
        ByteField.putLE(&ls, 0, options.logicalSectorSize, width: 4)
        items.append((VhdxMetadataItems.logicalSectorGuid, ls, 6))
        var ps = [UInt8](repeating: 0, count: 4)
        ByteField.putLE(&ps, 0, 4096, width: 4)
        items.append((VhdxMetadataItems.physicalSectorGuid, ps, 6))
        if let locator { items.append((VhdxMetadataItems.parentLocatorGuid, VhdxMetadataItems.encodeParentLocator(locator), 6)) }
        var meta = [UInt8](repeating: 0, count: Int(mb))
        meta[0..<8] = ArraySlice("metadata".utf8)
        ByteField.putLE(&meta, 10, UInt64(items.count), width: 2)
        var itemOff = 64 * 1024
        for (i, it) in items.enumerated() {
            let o = 32 + i * 32
            meta[o..<(o + 16)] = ArraySlice(it.0.bytes)
            ByteField.putLE(&meta, o + 16, UInt64(itemOff), width: 4)
            ByteField.putLE(&meta, o + 20, UInt64(it.1.count), width: 4)
            ByteField.putLE(&meta, o + 24, UInt64(it.2), width: 4)
            meta[itemOff..<(itemOff + it.1.count)] = ArraySlice(it.1)
            itemOff += (it.1.count + 7) / 8 * 8
        }
        try file.writeBytes(meta, at: metaOffset)

        // BAT.
        var bat = [UInt8](repeating: 0, count: Int(batLength))
        var end = dataStart
        for b in 0..<g.dataBlocks {
            let entry: VhdxBatEntry
            if diff {
                entry = VhdxBatEntry(state: .notPresent, fileOffset: 0)
            } else if options.blockStateZero {
                entry = VhdxBatEntry(state: .zero, fileOffset: 0)
            } else if options.fixed {
                entry = VhdxBatEntry(state: .fullyPresent, fileOffset: dataStart + b * bs)
            } else {
                entry = VhdxBatEntry(state: .notPresent, fileOffset: 0)
            }
            ByteField.putLE(&bat, g.payloadIndex(b) * 8, entry.raw, width: 8)
        }
        if options.fixed { end = dataStart + g.dataBlocks * bs }
        try file.writeBytes(bat, at: batOffset)
        try file.truncate(to: end)
        try file.sync(dataOnly: false)
    }
}

import BlockIO
import BlockMap
import BlockInspect

#if canImport(Glibc)
import Glibc
#endif

/// Options for creating a VHD image (qemu-img's `-o` names in parentheses).
public struct VhdCreateOptions: Sendable {
    /// Fixed instead of dynamic (`subformat`).
    public var fixed = false
    /// Keep the exact size and record creator `qem2` instead of rounding up to CHS (`force_size`).
    public var forceSize = false
    /// Block size of dynamic disks (2 MiB, the specification's default).
    public var blockSize: UInt32 = 2 << 20
    /// Parent image for a differencing disk (`-b`).
    public var parent: String? = nil
    /// How the parent is opened (BlockCore's `openDisk`); nil refuses a parent.
    public var referenceOpener: ImageOpener? = nil

    /// Default options (dynamic, CHS-rounded size).
    public init() {}
}

extension VhdFormat {
    /// Creates a VHD at `path`. Without `forceSize` the size is rounded up to a CHS geometry
    /// and the creator is `qemu` (so every reader, qemu included, takes the CHS size); with it
    /// the creator is `qem2` and current_size is exact. Differencing disks (`parent`) store the
    /// parent's name, unique id and `W2ku`/`W2ru` locators after the BAT.
    public static func create(path: String, size: UInt64, options: VhdCreateOptions = VhdCreateOptions()) throws(BlockError) {
        var size = size
        var parentFooter: VhdFooter?
        var parentAbs = "", parentRel = ""
        if let p = options.parent {
            var po = OpenOptions(writable: false, format: nil)
            po.referenceOpener = options.referenceOpener
            let parent = try po.openReference(p, options: po)
            defer { try? parent.close() }
            if size == 0 { size = parent.logicalSize }
            parentFooter = (parent as? VhdDisk)?.footer
            (parentAbs, parentRel) = parentPaths(child: path, parent: p)
            if !parentRel.hasPrefix("..") { parentRel = "./" + parentRel }
        }
        if size == 0 || size > (2040 << 30) {
            throw BlockError(.invalidArgument, "vpc: size \(size) must be between 1 byte and 2040 GiB", path: path, operation: "create")
        }
        let bs = UInt64(options.blockSize)
        if bs < 512 || bs & (bs - 1) != 0 {
            throw BlockError(.invalidArgument, "vpc: block size \(bs) must be a power of two of at least 512", path: path, operation: "create")
        }
        let requested = (size + 511) / 512
        var geo = VhdFooter.geometry(sectors: requested)
        var i: UInt64 = 0
        while requested > UInt64(geo.cylinders) * UInt64(geo.heads) * UInt64(geo.sectorsPerTrack) && i < 1 << 20 {
            i += 1
            geo = VhdFooter.geometry(sectors: requested + i)
        }
        let chsSize = UInt64(geo.cylinders) * UInt64(geo.heads) * UInt64(geo.sectorsPerTrack) * 512
        let current = options.forceSize ? requested * 512 : chsSize
        let stamp = UInt32(truncatingIfNeeded: max(0, Int(time(nil)) - 946_684_800))
        let type: VhdDiskType = options.parent != nil ? .differencing : (options.fixed ? .fixed : .dynamic)
        var footer = VhdFooter(dataOffset: type == .fixed ? UInt64.max : 512, timestamp: stamp,
                               creatorApp: Array((options.forceSize ? "qem2" : "qemu").utf8), creatorVersion: 0x0005_0003,
                               creatorOS: 0x5769_326B, originalSize: current, currentSize: current,
                               cylinders: geo.cylinders, heads: geo.heads, sectorsPerTrack: geo.sectorsPerTrack,
                               diskType: type, uniqueId: randomGuidBytes(), savedState: 0)
        let file = try SystemFile(path: path, writable: true, create: true, truncate: true)
        defer { file.close() }
        if type == .fixed {
            try file.truncate(to: current)
            try file.writeBytes(footer.encode(), at: current)
            try file.sync(dataOnly: false)
            return
        }
        let entries = UInt32((current + bs - 1) / bs)
        let batOffset: UInt64 = 1536
        let batBytes = (UInt64(entries) * 4 + 511) / 512 * 512
        var next = batOffset + batBytes
        var header = VhdDynamicHeader(tableOffset: batOffset, maxTableEntries: entries, blockSize: options.blockSize,
                                      parentUniqueId: parentFooter?.uniqueId ?? [UInt8](repeating: 0, count: 16),
                                      parentTimestamp: parentFooter?.timestamp ?? 0, parentName: "", locators: [])
        var locatorData: [(UInt64, [UInt8])] = []
        if options.parent != nil {
            header.parentName = String(parentAbs.split(separator: "/").last ?? "")
            for (code, text) in [(VhdParentLocator.absolute, parentAbs), (VhdParentLocator.relative, parentRel)] {
                let bytes = ByteField.encodeUTF16(text, bigEndian: false)
                let space = (UInt64(bytes.count) + 511) / 512 * 512
                header.locators.append(VhdParentLocator(platformCode: code, dataSpace: UInt32(space / 512), dataLength: UInt32(bytes.count), dataOffset: next))
                locatorData.append((next, bytes))
                next += space
            }
        }
        footer.dataOffset = 512
        try file.writeBytes(footer.encode(), at: 0)
        try file.writeBytes(header.encode(), at: 512)
        try file.writeBytes([UInt8](repeating: 0xff, count: Int(batBytes)), at: batOffset)
        for (off, bytes) in locatorData { try file.writeBytes(bytes, at: off) }
        try file.writeBytes(footer.encode(), at: next)
        try file.sync(dataOnly: false)
    }
}

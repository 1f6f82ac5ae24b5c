import BlockIO
import BlockInspect
import BlockMap

/// Options for creating a VMDK (qemu-img's `-o` names in parentheses).
public struct VmdkCreateOptions: Sendable {
    /// The layouts `create` makes (`subformat`).
    public enum Subformat: String, Sendable, CaseIterable {
        /// One sparse file with the descriptor embedded (the default).
        case monolithicSparse
        /// A descriptor file and one flat extent (`NAME-flat.vmdk`).
        case monolithicFlat
        /// A descriptor and sparse extents of at most 2 GiB (`NAME-s001.vmdk`, ...).
        case twoGbMaxExtentSparse
        /// A descriptor and flat extents of at most 2 GiB (`NAME-f001.vmdk`, ...).
        case twoGbMaxExtentFlat
        /// One compressed sparse file (empty: grains are only added by a stream writer).
        case streamOptimized
    }
    /// The layout.
    public var subformat: Subformat = .monolithicSparse
    /// `ddb.adapterType` (`adapter_type`: ide, lsilogic, buslogic, legacyESX).
    public var adapterType = "ide"
    /// `ddb.virtualHWVersion` (`hwversion`).
    public var hardwareVersion = "4"
    /// Entry 1 means a zeroed grain (`zeroed_grain`); makes version 2 extents.
    public var zeroedGrain = false
    /// The parent (`-b`), as the child's parentFileNameHint records it (relative to the
    /// child's folder unless absolute). Sparse subformats only.
    public var parent: String? = nil
    /// How the parent is opened to read its CID (the CLI passes BlockCore's `diskOpener`);
    /// without one, a child is refused.
    public var referenceOpener: ImageOpener? = nil

    /// Default options (monolithicSparse, ide).
    public init() {}
}

extension VmdkFormat {
    /// Creates a VMDK at `path` laid out as qemu-img lays it out: 64 KiB grains, 512-entry grain
    /// tables all allocated after a redundant grain directory and the grain directory, the
    /// descriptor embedded at 0x200 (monolithicSparse, streamOptimized) or in `path` itself
    /// with the extents beside it. With a parent, `size` 0 takes the parent's size and the
    /// descriptor records the parent's CID.
    public static func create(path: String, size: UInt64, options: VmdkCreateOptions = VmdkCreateOptions()) throws(BlockError) {
        var size = size
        let sub = options.subformat
        let flat = sub == .monolithicFlat || sub == .twoGbMaxExtentFlat
        let split = sub == .twoGbMaxExtentSparse || sub == .twoGbMaxExtentFlat
        let compress = sub == .streamOptimized
        let dir = path.contains("/") ? String(path[...path.lastIndex(of: "/")!]) : ""
        var parentCID: UInt32 = 0xffff_ffff
        if let p = options.parent {
            if flat { throw BlockError(.invalidArgument, "vmdk: a flat image cannot have a parent", path: path, operation: "create") }
            let pp = p.hasPrefix("/") ? p : dir + p
            var po = OpenOptions(writable: false)
            po.referenceOpener = options.referenceOpener
            let parent = try po.openReference(pp, options: po)
            defer { try? parent.close() }
            guard let pv = parent as? VmdkDisk else {
                throw BlockError(.invalidArgument, "vmdk: parent \(pp) is \(parent.format.rawValue), not vmdk", path: path, operation: "create")
            }
            parentCID = pv.descriptor.cid
            if size == 0 { size = parent.logicalSize }
        }
        if flat && options.zeroedGrain { throw BlockError(.invalidArgument, "vmdk: a flat image cannot have zeroed grains", path: path, operation: "create") }
        size = (size + 511) / 512 * 512
        if size == 0 || size > (UInt64(1) << 41) { throw BlockError(.invalidArgument, "vmdk: size \(size) must be between 512 bytes and 2 TiB", path: path, operation: "create") }
        let adapters = ["ide", "lsilogic", "buslogic", "legacyESX"]
        if !adapters.contains(options.adapterType) {
            throw BlockError(.invalidArgument, "vmdk: adapter_type=\(options.adapterType): expected \(adapters.joined(separator: ", "))", path: path, operation: "create")
        }
        let base = String(path[path.index(path.startIndex, offsetBy: dir.count)...])
        let dot = base.lastIndex(of: ".")
        let prefix = dot.map { String(base[..<$0]) } ?? base
        let postfix = dot.map { String(base[$0...]) } ?? ""
        var lines: [VmdkDescriptor.Extent] = []
        if !split && !flat {
            try writeSparseExtent(path: path, size: size, compress: compress, zeroedGrain: options.zeroedGrain)
            lines.append(VmdkDescriptor.Extent(sectors: size / 512, type: .sparse, file: base))
        } else {
            let main = try SystemFile(path: path, writable: true, create: true, truncate: true)
            main.close()
            var done: UInt64 = 0
            var idx = 1
            while done < size {
                let n = split ? min(size - done, 0x8000_0000) : size
                let name = split ? prefix + "-" + (flat ? "f" : "s") + vmdkExtentNumber(idx) + postfix : prefix + "-flat" + postfix
                if flat {
                    let f = try SystemFile(path: dir + name, writable: true, create: true, truncate: true)
                    try f.truncate(to: n)
                    f.close()
                    lines.append(VmdkDescriptor.Extent(sectors: n / 512, type: .flat, file: name, offset: 0))
                } else {
                    try writeSparseExtent(path: dir + name, size: n, compress: false, zeroedGrain: options.zeroedGrain)
                    lines.append(VmdkDescriptor.Extent(sectors: n / 512, type: .sparse, file: name))
                }
                done += n
                idx += 1
            }
        }
        let heads: UInt64 = options.adapterType == "ide" ? 16 : 255
        let desc = VmdkDescriptor(cid: UInt32.random(in: 1...UInt32.max - 1), parentCID: parentCID, createType: sub.rawValue,
                                  parentFileNameHint: options.parent, extents: lines,
                                  ddb: [("virtualHWVersion", options.hardwareVersion), ("geometry.cylinders", String(size / (63 * heads * 512))),
                                        ("geometry.heads", String(heads)), ("geometry.sectors", "63"), ("adapterType", options.adapterType),
                                        ("toolsVersion", "2147483647")])
        let text = Array(desc.text().utf8)
        let f = try SystemFile(path: path, writable: true)
        defer { f.close() }
        if !split && !flat {
            if text.count > 20 * 512 { throw BlockError(.overflow, "vmdk: descriptor (\(text.count) bytes) exceeds its 20 sectors", path: path, operation: "create") }
            try f.writeBytes(text, at: 0x200)
        } else {
            try f.writeBytes(text, at: 0)
            try f.truncate(to: UInt64(text.count))
        }
        try f.sync(dataOnly: false)
    }

    /// Writes an empty hosted sparse extent of `size` bytes: header, redundant grain
    /// directory and its tables, grain directory and its tables, padded to a whole grain.
    static func writeSparseExtent(path: String, size: UInt64, compress: Bool, zeroedGrain: Bool) throws(BlockError) {
        let grain: UInt64 = 128
        let capacity = size / 512
        let grains = (capacity + grain - 1) / grain
        let gtSectors: UInt64 = 4
        let gtCount = (grains + 511) / 512
        let gdSectors = (gtCount * 4 + 511) / 512
        let rgd: UInt64 = 21
        let gd = rgd + gdSectors + gtSectors * gtCount
        let overHead = (gd + gdSectors + gtSectors * gtCount + grain - 1) / grain * grain
        var flags = VmdkSparseHeader.flagRedundantGD | VmdkSparseHeader.flagNewlineDetect
        if compress { flags |= VmdkSparseHeader.flagCompressed | VmdkSparseHeader.flagMarkers }
        if zeroedGrain { flags |= VmdkSparseHeader.flagZeroedGrain }
        let h = VmdkSparseHeader(version: compress ? 3 : (zeroedGrain ? 2 : 1), flags: flags, capacity: capacity, grainSize: grain,
                                 descriptorOffset: 1, descriptorSize: 20, numGTEsPerGT: 512, rgdOffset: rgd, gdOffset: gd,
                                 overHead: overHead, compressAlgorithm: compress ? VmdkSparseHeader.compressionDeflate : 0)
        let f = try SystemFile(path: path, writable: true, create: true, truncate: true)
        defer { f.close() }
        try f.writeBytes(h.encode(), at: 0)
        try f.truncate(to: overHead * 512)
        for start in [rgd, gd] {
            var b = [UInt8](repeating: 0, count: Int(gdSectors * 512))
            for i in 0..<Int(gtCount) { ByteField.putLE(&b, i * 4, start + gdSectors + UInt64(i) * gtSectors, width: 4) }
            try f.writeBytes(b, at: start * 512)
        }
        try f.sync(dataOnly: false)
    }
}

/// `v` as at least 3 decimal digits (an extent number: 001).
func vmdkExtentNumber(_ v: Int) -> String {
    let d = String(v)
    return String(repeating: "0", count: max(0, 3 - d.count)) + d
}

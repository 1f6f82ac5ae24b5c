import BlockIO
import BlockInspect

extension ImageFormat {
    /// VMware virtual disk (descriptor plus sparse, flat or seSparse extents).
    public static let vmdk = ImageFormat(rawValue: "vmdk")
}

/// VMDK in BlockCore's format registry: a sparse header (`KDMV`) or a text descriptor,
/// ``VmdkDisk``, ``VmdkInspection``.
public struct VmdkModule: ImageFormatModule {
    /// Creates the module value the registry lists.
    public init() {}

    /// ``ImageFormat/vmdk``.
    public var format: ImageFormat { .vmdk }

    /// ``VmdkFormat/probe(_:)``.
    public func probe(_ head: [UInt8]) -> Bool { VmdkFormat.probe(head) }

    /// ``VmdkFormat/open(file:options:warnings:)``.
    public func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        try VmdkFormat.open(file: file, options: options, warnings: warnings)
    }

    /// qemu-img's VMDK options, plus `source=` for a streamOptimized copy.
    public var createHelp: String {
        """
        vmdk options: subformat=monolithicSparse|monolithicFlat|twoGbMaxExtentSparse|twoGbMaxExtentFlat|streamOptimized,
        adapter_type, hwversion, zeroed_grain=on|off; subformat=streamOptimized,source=IMAGE writes IMAGE's
        content as a streamOptimized stream (grain directory at the end, as VMware writes OVAs).
        """
    }

    /// ``VmdkFormat/create(path:size:options:)``, or with `source=IMAGE` a streamOptimized copy
    /// of IMAGE (``VmdkFormat/writeStreamOptimized(path:source:)``); `backing` is the parent.
    public func create(path: String, size: UInt64, options kv: CreateOptionList, backing: String?, opener: @escaping ImageOpener) throws(BlockError) {
        try kv.allowOnly(["subformat", "adapter_type", "hwversion", "zeroed_grain", "source"])
        if let src = kv["source"] {
            if kv["subformat"] != "streamOptimized" { throw BlockError(.invalidArgument, "source= needs subformat=streamOptimized", operation: "create") }
            var so = OpenOptions(writable: false)
            so.referenceOpener = opener
            let source = try opener(src, so)
            defer { try? source.close() }
            try VmdkFormat.writeStreamOptimized(path: path, source: source)
            return
        }
        var o = VmdkCreateOptions()
        let sf = kv["subformat"] ?? "monolithicSparse"
        guard let s = VmdkCreateOptions.Subformat(rawValue: sf) else {
            throw BlockError(.invalidArgument, "subformat=\(sf): expected \(VmdkCreateOptions.Subformat.allCases.map(\.rawValue).joined(separator: ", "))", operation: "create")
        }
        o.subformat = s
        o.adapterType = kv["adapter_type"] ?? "ide"
        o.hardwareVersion = kv["hwversion"] ?? "4"
        o.zeroedGrain = try kv.flag("zeroed_grain", absent: false)
        o.parent = backing
        o.referenceOpener = opener
        try VmdkFormat.create(path: path, size: size, options: o)
    }

    /// ``VmdkInspection`` over the open disk.
    public func inspector(path: String, disk: (any DiskFile)?) throws(BlockError) -> InspectorHandle? {
        try VmdkInspection.make(path: path, disk: disk)
    }
}

import BlockIO
import BlockInspect

extension ImageFormat {
    /// Microsoft VHDX.
    public static let vhdx = ImageFormat(rawValue: "vhdx")
}

/// VHDX in BlockCore's format registry: magic `vhdxfile`, ``VhdxDisk``, ``BatInspection``,
/// the disk's explain report.
public struct VhdxModule: ImageFormatModule {
    /// Creates the module value the registry lists.
    public init() {}

    /// ``ImageFormat/vhdx``.
    public var format: ImageFormat { .vhdx }

    /// `vhdxfile` at offset 0 (the file type identifier).
    public func probe(_ head: [UInt8]) -> Bool {
        head.count >= 8 && head[0..<8].elementsEqual("vhdxfile".utf8)
    }

    /// ``VhdxFormat/open(file:options:warnings:)``.
    public func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        try VhdxFormat.open(file: file, options: options, warnings: warnings)
    }

    /// qemu-img's VHDX options.
    public var createHelp: String { "vhdx options: block_size, subformat=dynamic|fixed, log_size, block_state_zero=on|off." }

    /// ``VhdxFormat/create(path:size:options:)``; `backing` makes a differencing image.
    public func create(path: String, size: UInt64, options kv: CreateOptionList, backing: String?, opener: @escaping ImageOpener) throws(BlockError) {
        try kv.allowOnly(["block_size", "subformat", "log_size", "block_state_zero"])
        var o = VhdxCreateOptions()
        o.blockSize = try kv.size("block_size") ?? 0
        o.logSize = try kv.size("log_size") ?? (1 << 20)
        o.fixed = try kv.subformat(["dynamic", "fixed"], absent: "dynamic") == "fixed"
        o.blockStateZero = try kv.flag("block_state_zero", absent: true)
        o.parent = backing
        o.referenceOpener = opener
        try VhdxFormat.create(path: path, size: size, options: o)
    }

    /// ``BatInspection`` over the open disk.
    public func inspector(path: String, disk: (any DiskFile)?) throws(BlockError) -> InspectorHandle? {
        guard let d = disk as? VhdxDisk else { return nil }
        return BatInspection.make(disk: d)
    }

    /// ``VhdxDisk/explain()`` of the image opened read-only.
    public func explain(path: String, open: (OpenOptions) throws(BlockError) -> any DiskFile,
                        progress: ((Double) -> Bool)?, warn: (String) -> Void) throws(BlockError) -> ExplainReport {
        let disk = try open(OpenOptions(writable: false, format: .vhdx))
        defer { try? disk.close() }
        guard let d = disk as? VhdxDisk else { throw BlockError(.invalidFormat, "not a VHDX image", path: path, operation: "explain") }
        return try d.explain()
    }
}

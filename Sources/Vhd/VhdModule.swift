import BlockIO
import BlockInspect

extension ImageFormat {
    /// Microsoft VHD (qemu-img calls it `vpc`).
    public static let vpc = ImageFormat(rawValue: "vpc")
}

/// VHD in BlockCore's format registry: magic `conectix` at offset 0 (a dynamic disk's footer
/// copy; a fixed VHD has its footer only at the end and probes as RAW, as qemu-img does),
/// ``VhdDisk``, ``BatInspection``, the disk's explain report.
public struct VhdModule: ImageFormatModule {
    /// Creates the module value the registry lists.
    public init() {}

    /// ``ImageFormat/vpc``.
    public var format: ImageFormat { .vpc }

    /// `conectix` at offset 0.
    public func probe(_ head: [UInt8]) -> Bool {
        head.count >= 8 && head[0..<8].elementsEqual("conectix".utf8)
    }

    /// ``VhdFormat/open(file:options:warnings:)``.
    public func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        try VhdFormat.open(file: file, options: options, warnings: warnings)
    }

    /// qemu-img's VHD options.
    public var createHelp: String { "vpc options: subformat=dynamic|fixed, force_size=on|off." }

    /// ``VhdFormat/create(path:size:options:)``; `backing` makes a differencing image.
    public func create(path: String, size: UInt64, options kv: CreateOptionList, backing: String?, opener: @escaping ImageOpener) throws(BlockError) {
        try kv.allowOnly(["subformat", "force_size"])
        var o = VhdCreateOptions()
        o.fixed = try kv.subformat(["dynamic", "fixed"], absent: "dynamic") == "fixed"
        o.forceSize = try kv.flag("force_size", absent: false)
        o.parent = backing
        o.referenceOpener = opener
        try VhdFormat.create(path: path, size: size, options: o)
    }

    /// ``BatInspection`` over the open disk (nil for a fixed VHD, which has no BAT: the
    /// registry's extent inspector draws it).
    public func inspector(path: String, disk: (any DiskFile)?) throws(BlockError) -> InspectorHandle? {
        guard let d = disk as? VhdDisk else { return nil }
        return BatInspection.make(disk: d)
    }

    /// ``VhdDisk/explain()`` of the image opened read-only.
    public func explain(path: String, open: (OpenOptions) throws(BlockError) -> any DiskFile,
                        progress: ((Double) -> Bool)?, warn: (String) -> Void) throws(BlockError) -> ExplainReport {
        let disk = try open(OpenOptions(writable: false, format: .vpc))
        defer { try? disk.close() }
        guard let d = disk as? VhdDisk else { throw BlockError(.invalidFormat, "not a VHD image", path: path, operation: "explain") }
        return try d.explain()
    }
}

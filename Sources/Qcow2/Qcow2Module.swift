import BlockIO
import BlockInspect

extension ImageFormat {
    /// QEMU copy-on-write v2/v3.
    public static let qcow2 = ImageFormat(rawValue: "qcow2")
}

/// QCOW2 in BlockCore's format registry: magic `QFI\xfb`, ``Qcow2Format``, ``Qcow2Inspection``,
/// ``Qcow2Structure``'s explain report (which reads the file itself, so a damaged image is
/// explained too).
public struct Qcow2Module: ImageFormatModule {
    /// Creates the module value the registry lists.
    public init() {}

    /// ``ImageFormat/qcow2``.
    public var format: ImageFormat { .qcow2 }

    /// `QFI\xfb` at offset 0.
    public func probe(_ head: [UInt8]) -> Bool {
        head.count >= 4 && head[0] == 0x51 && head[1] == 0x46 && head[2] == 0x49 && head[3] == 0xfb
    }

    /// ``Qcow2Format/open(file:options:warnings:)``.
    public func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        try Qcow2Format.open(file: file, options: options, warnings: warnings)
    }

    /// qemu-img's options.
    public var createHelp: String {
        "qcow2 options: qemu-img's (cluster_size, refcount_bits, extended_l2, compression_type, lazy_refcounts, compat, backing_file, backing_fmt)."
    }

    /// ``Qcow2Format/create(path:size:options:)``; with `backing` and no size or no
    /// `backing_fmt`, the parent's size and format, as `qemu-img create -b` finds them.
    public func create(path: String, size: UInt64, options: CreateOptionList, backing: String?, opener: @escaping ImageOpener) throws(BlockError) {
        var o = try Qcow2CreateOptions(options.values)
        var qsize = size
        if let backing {
            o.backingFile = backing
            if qsize == 0 || o.backingFormat == nil {
                let parentPath = backing.hasPrefix("/") || !path.contains("/") ? backing
                    : String(path[..<path.lastIndex(of: "/")!]) + "/" + backing
                var po = OpenOptions(writable: false)
                po.referenceOpener = opener
                let parent = try opener(parentPath, po)
                if qsize == 0 { qsize = parent.logicalSize }
                if o.backingFormat == nil { o.backingFormat = parent.format.rawValue }
                try parent.close()
            }
        }
        try Qcow2Format.create(path: path, size: qsize, options: o)
    }

    /// ``Qcow2Inspection``: from the file alone when the image could not be opened.
    public func inspector(path: String, disk: (any DiskFile)?) throws(BlockError) -> InspectorHandle? {
        try Qcow2Inspection.make(path: path, disk: disk)
    }

    /// ``Qcow2Structure/explain(progress:)`` of the file, under a read-only image lock (a
    /// writer beside it is a warning, as QEMU's locks allow); a chain's data is counted through
    /// the open backing files, which a convert flattens.
    public func explain(path: String, open: (OpenOptions) throws(BlockError) -> any DiskFile,
                        progress: ((Double) -> Bool)?, warn: (String) -> Void) throws(BlockError) -> ExplainReport {
        let lock = try ImageLock(path: path, writable: false, shareWrites: false)
        defer { lock.release() }
        if let w = lock.warning { warn(w) }
        let structure = try Qcow2Structure(path: path)
        var report = try structure.explain(progress: progress)
        if structure.backingFile != nil {
            let disk = try open(OpenOptions(writable: false, format: .qcow2))
            defer { try? disk.close() }
            if let inspectable = disk as? any InspectableDisk { try report.measureConvert(through: inspectable) }
        }
        return report
    }

    /// A file named `*.qcow2`.
    public func explainsHeaderless(path: String) -> Bool { path.lowercased().hasSuffix(".qcow2") }
}

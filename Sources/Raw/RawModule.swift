import BlockIO
import BlockInspect

extension ImageFormat {
    /// A raw image: guest bytes at the same host offsets.
    public static let raw = ImageFormat(rawValue: "raw")
}

/// RAW in BlockCore's format registry, listed last: it takes any file no other magic claims.
/// QEMU shares writes on raw images, and only raw files open with `O_DIRECT`. The registry's
/// extent inspector draws it.
public struct RawModule: ImageFormatModule {
    /// Creates the module value the registry lists.
    public init() {}

    /// ``ImageFormat/raw``.
    public var format: ImageFormat { .raw }
    /// true: any content is a raw image.
    public func probe(_ head: [UInt8]) -> Bool { true }
    /// true, as QEMU's raw driver.
    public var sharesWrites: Bool { true }
    /// true: guest offsets are file offsets, so aligned requests stay aligned.
    public var supportsDirect: Bool { true }

    /// ``RawDisk``.
    public func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        try RawDisk(file: file, options: options, warnings: warnings)
    }

    /// RAW takes no options.
    public var createHelp: String { "raw: no options, no backing file." }

    /// A sparse file of `size` bytes.
    public func create(path: String, size: UInt64, options: CreateOptionList, backing: String?, opener: @escaping ImageOpener) throws(BlockError) {
        try options.allowOnly([])
        if backing != nil { throw BlockError(.invalidArgument, "raw images have no backing file", operation: "create") }
        let f = try SystemFile(path: path, writable: true, create: true, truncate: true)
        try f.truncate(to: size)
        f.close()
    }
}

import BlockIO

/// One image format as the rest of blockscope sees it: how it is recognised, opened, created,
/// inspected and explained. Each format's target provides one value of this; BlockCore's
/// registry (`imageFormatModules`) lists them, one line per format, and every command asks the
/// registry instead of switching on formats (docs/adr/0017-format-modules.md).
///
/// Values are stateless and safe from any thread.
public protocol ImageFormatModule: Sendable {
    /// The format, named as qemu-img names it (`--format`, JSON output).
    var format: ImageFormat { get }
    /// Whether the first bytes of a file (up to 512, fewer for a short file) are this format's.
    /// The registry asks in order; the last module (RAW) answers true for anything.
    func probe(_ head: [UInt8]) -> Bool
    /// Whether QEMU shares writes on the format's images (`shareWrites` of ``ImageLock``):
    /// true for RAW only; default false.
    var sharesWrites: Bool { get }
    /// Whether the data file may be opened with `O_DIRECT` (`OpenOptions.direct`); default false.
    var supportsDirect: Bool { get }
    /// Opens the format over `file`, already locked; `warnings` come from the lock. The image's
    /// references (backing files, parents) open through `options.referenceOpener`.
    func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile
    /// The `-o` options `create` takes, one line for `blockscope create --help`.
    var createHelp: String { get }
    /// Creates an image of `size` guest bytes (0 with `backing`: the parent's size) at `path`,
    /// as `qemu-img create` does; `backing` is `-b`, opened through `opener`.
    func create(path: String, size: UInt64, options: CreateOptionList, backing: String?, opener: @escaping ImageOpener) throws(BlockError)
    /// The inspector the TUI draws for the image at `path` (`disk`, the open image, when there
    /// is one); nil lets the registry fall back to the extent inspector. Default nil.
    func inspector(path: String, disk: (any DiskFile)?) throws(BlockError) -> InspectorHandle?
    /// `blockscope explain`: where every byte of the file goes. `open` opens the image (it
    /// prints the open's warnings), `progress` gets the walk's fraction done where the format
    /// reports one and stops it by returning false (the call then throws), `warn` prints one
    /// line. Default: not supported.
    func explain(path: String, open: (OpenOptions) throws(BlockError) -> any DiskFile,
                 progress: ((Double) -> Bool)?, warn: (String) -> Void) throws(BlockError) -> ExplainReport
    /// Whether `explain` takes a file no magic claims as this format, by its name (a QCOW2
    /// whose header was wiped). Default false.
    func explainsHeaderless(path: String) -> Bool
}

extension ImageFormatModule {
    /// false: QEMU refuses to share writes on the format's images.
    public var sharesWrites: Bool { false }
    /// false: the format's files open buffered.
    public var supportsDirect: Bool { false }
    /// nil: the extent inspector fits.
    public func inspector(path: String, disk: (any DiskFile)?) throws(BlockError) -> InspectorHandle? { nil }
    /// Refuses: the format has no explain report.
    public func explain(path: String, open: (OpenOptions) throws(BlockError) -> any DiskFile,
                        progress: ((Double) -> Bool)?, warn: (String) -> Void) throws(BlockError) -> ExplainReport {
        throw BlockError(.unsupportedFeature, "explain is not supported for \(format.rawValue) images", path: path)
    }
    /// false: only the magic names the format.
    public func explainsHeaderless(path: String) -> Bool { false }
}

/// The `-o key=value,...` options of `create`, with the readers every format's parser uses;
/// errors name the option and what was expected.
public struct CreateOptionList: Sendable {
    /// The format being created (for messages).
    public let format: ImageFormat
    /// The options as given.
    public let values: [String: String]

    /// The options for creating a `format` image.
    public init(format: ImageFormat, values: [String: String]) {
        self.format = format
        self.values = values
    }

    /// The value given for `key`, if any.
    public subscript(key: String) -> String? { values[key] }

    /// Refuses any option not in `keys` ("vpc does not support option 'x' (supported: ...)").
    public func allowOnly(_ keys: [String]) throws(BlockError) {
        for k in values.keys.sorted() where !keys.contains(k) {
            throw BlockError(.invalidArgument, "\(format.rawValue) does not support option '\(k)' (supported: \(keys.isEmpty ? "none" : keys.joined(separator: ", ")))", operation: "create")
        }
    }

    /// An on/off option (`on`, `true`, `yes`, `1` / `off`, `false`, `no`, `0`); `absent` when not given.
    public func flag(_ key: String, absent: Bool) throws(BlockError) -> Bool {
        guard let v = values[key] else { return absent }
        switch v.lowercased() {
        case "on", "true", "yes", "1": return true
        case "off", "false", "no", "0": return false
        default: throw BlockError(.invalidArgument, "option \(key)=\(v): expected on or off", operation: "create")
        }
    }

    /// A size option (k/M/G/T suffixes, ``parseByteSize(_:)``); nil when not given.
    public func size(_ key: String) throws(BlockError) -> UInt64? {
        guard let v = values[key] else { return nil }
        guard let n = parseByteSize(v) else { throw BlockError(.invalidArgument, "option \(key)=\(v) is not a size", operation: "create") }
        return n
    }

    /// `subformat=`, one of `allowed` (`absent` when not given).
    public func subformat(_ allowed: [String], absent: String) throws(BlockError) -> String {
        let s = values["subformat"] ?? absent
        if !allowed.contains(s) { throw BlockError(.invalidArgument, "subformat=\(s): expected \(allowed.joined(separator: " or "))", operation: "create") }
        return s
    }
}

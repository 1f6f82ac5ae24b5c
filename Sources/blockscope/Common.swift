import ArgumentParser
import BlockCore
#if canImport(Glibc)
import Glibc
#endif

/// Options every image command shares.
struct ImageOptions: ParsableArguments {
    @Option(name: [.customShort("f"), .long], help: "Image format; probed from the magic when omitted.")
    var format: ImageFormat?

    @Option(help: "I/O engine: auto (io_uring when available), uring, or sync.")
    var engine: EngineKind = .auto

    func openOptions(writable: Bool) -> OpenOptions {
        var o = OpenOptions(writable: writable, format: format, engine: engine)
        o.engine = engine
        return o
    }
}

/// Output styles.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case human, json
}

extension ImageFormat: ExpressibleByArgument {
    /// A registered format's qemu-img name; anything else is refused by the parser.
    public init?(argument: String) {
        guard imageFormatModule(for: ImageFormat(rawValue: argument)) != nil else { return nil }
        self.init(rawValue: argument)
    }

    /// The registered formats, for `--help` and completion.
    public static var allValueStrings: [String] { imageFormatModules.map(\.format.rawValue) }
}
extension EngineKind: ExpressibleByArgument {}

/// Prints `message` on stderr.
func printError(_ message: String) {
    var m = message
    if !m.hasSuffix("\n") { m += "\n" }
    m.withCString { p in _ = Glibc.write(2, p, strlen(p)) }
}

/// Runs `body`, turning a BlockError into one line on stderr and exit status 1.
func reportingErrors<T>(_ body: () throws(BlockError) -> T) throws -> T {
    do {
        return try body()
    } catch let e {
        printError("blockscope: \(e.description)\(cliHint(for: e))")
        throw ExitCode(1)
    }
}

/// What the user can type to get past `error`, in the CLI's words (the block layer and the
/// engine report kinds and offsets; only the command line knows its flags).
func cliHint(for error: BlockError) -> String {
    switch error.kind {
    case .readOnly: return "; give --write to allow it"
    case .locked: return " (without --write, the image opens read-only beside the other user)"
    default: return ""
    }
}

/// Refuses directories among a command's path arguments before anything else runs: one line
/// on stderr ("blockscope: PATH: is a directory, not a disk image") and exit status 1.
/// `files` are (path, what is expected there) for arguments that are not images.
func refuseDirectories(images: [String?], files: [(String?, String)] = []) throws {
    try reportingErrors { () throws(BlockError) in
        for case let p? in images { try refuseDirectory(p) }
        for case let (p?, what) in files { try refuseDirectory(p, what: what) }
    }
}

/// Opens a disk and prints its open warnings on stderr.
func openImage(_ path: String, _ options: OpenOptions) throws(BlockError) -> any DiskFile {
    let disk = try openDisk(path, options: options)
    for w in disk.warnings { printError(w) }
    return disk
}

/// Parses a size argument ("4k", "1M", "0x1000").
struct SizeArgument: ExpressibleByArgument {
    var value: UInt64
    init?(argument: String) {
        guard let v = parseByteSize(argument) else { return nil }
        value = v
    }
}

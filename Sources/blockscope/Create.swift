import ArgumentParser
import BlockCore

/// `blockscope create -f FMT [-o k=v,...] [-b PARENT] IMAGE [SIZE]`: make a new image.
struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create",
        abstract: "Create an image (\(formatNames)), like qemu-img create.",
        discussion: imageFormatModules.map(\.createHelp).joined(separator: "\n") + """

        -b PARENT makes a differencing or overlay image over PARENT (SIZE defaults to the parent's).
        """
    )

    /// The registered formats' names, for the help.
    static var formatNames: String { imageFormatModules.map(\.format.rawValue).joined(separator: ", ") }

    @Option(name: [.customShort("f"), .long], help: "Image format (\(Create.formatNames)).") var format: ImageFormat
    @Option(name: [.customShort("o")], help: "Format options, key=value separated by commas.") var options: [String] = []
    @Option(name: [.customShort("b"), .customLong("backing")], help: "Parent image (a differencing image's parent, an overlay's backing file).") var backing: String?
    @Argument(help: "The image file to create.") var image: String
    @Argument(help: "Guest size (k/M/G/T suffixes); optional with -b.") var size: SizeArgument?

    func run() throws {
        try refuseDirectories(images: [image, backing])
        try reportingErrors { () throws(BlockError) in
            let kv = try parseOptions(options.joined(separator: ","))
            let bytes = size?.value ?? 0
            if bytes == 0 && backing == nil && kv["source"] == nil {
                throw BlockError(.invalidArgument, "a size is needed (give SIZE, or -b PARENT for a differencing image)", path: image, operation: "create")
            }
            guard let module = imageFormatModule(for: format) else {
                throw BlockError(.invalidArgument, "unknown image format '\(format.rawValue)'", path: image, operation: "create")
            }
            try module.create(path: image, size: bytes, options: CreateOptionList(format: format, values: kv), backing: backing, opener: diskOpener)
            let made = try openDisk(image, options: OpenOptions(writable: false, format: format))
            print("Formatting '\(image)', fmt=\(format.rawValue) size=\(made.logicalSize)")
            try made.close()
        }
    }

    private func parseOptions(_ text: String) throws(BlockError) -> [String: String] {
        var out: [String: String] = [:]
        for part in text.split(separator: ",") where !part.isEmpty {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { throw BlockError(.invalidArgument, "option '\(part)' is not key=value", operation: "create") }
            out[String(kv[0])] = String(kv[1])
        }
        return out
    }
}

import ArgumentParser
import BlockCore
import BlockScopeUI

/// `blockscope explain IMAGE`: where every byte of the file goes, what went wrong by cause,
/// and what each remedy gives back (docs/EXPLAIN.md).
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "explain", abstract: "Say where every byte of an image goes and what went wrong, by cause (the formats with a structure report).")

    @Argument(help: "The image file.") var image: String
    @Option(name: [.customShort("f"), .long], help: "Image format; probed from the magic when omitted (a file without a header is explained as the format its name ends with, when that format reads damaged files).")
    var format: ImageFormat?
    @Option(help: "Output style: human or json.") var output: OutputFormat = .human

    func run() throws {
        try refuseDirectories(images: [image])
        let report = try reportingErrors { () throws(BlockError) -> ExplainReport in
            let probe = try SystemFile(path: image, writable: false)
            let size = try probe.size()
            if size == 0 { throw BlockError(.invalidFormat, "file is empty (0 bytes): not a disk image", path: image, operation: "explain") }
            let head = try probe.readBytes(at: 0, count: Int(min(size, 512)))
            probe.close()
            let fmt = format ?? explainFormat(head: head, path: image)
            guard let module = imageFormatModule(for: fmt) else {
                throw BlockError(.invalidArgument, "unknown image format '\(fmt.rawValue)'", path: image, operation: "explain")
            }
            return try module.explain(path: image, open: { o throws(BlockError) in try openImage(image, o) }, warn: printError)
        }
        switch output {
        case .json: print(report.json().render(pretty: true))
        case .human: print(report.text { formatBytes(Double($0)) }, terminator: "")
        }
    }
}

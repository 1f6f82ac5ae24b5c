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
            try explainImage(path: image, format: format, warn: { printError($0) })
        }
        switch output {
        case .json: print(report.json().render(pretty: true))
        case .human: print(report.text { formatBytes(Double($0)) }, terminator: "")
        }
    }
}

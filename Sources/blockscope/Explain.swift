import ArgumentParser
import BlockCore
import BlockScopeUI

/// `blockscope explain IMAGE`: where every byte of the file goes, what went wrong by cause,
/// and what each remedy gives back (docs/EXPLAIN.md).
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "explain", abstract: "Say where every byte of an image goes and what went wrong, by cause (QCOW2, VHDX, VHD).")

    @Argument(help: "The image file.") var image: String
    @Option(name: [.customShort("f"), .long], help: "Image format (qcow2, vhdx, vpc); probed from the magic when omitted (a .qcow2 file without a header is explained as QCOW2).")
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

import ArgumentParser
import BlockCore
import BlockEngine
import Foundation

/// `blockscope run IMAGE SCRIPT`: run a command-language script on an image.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command-language script (write/read/zero/discard/fsync) on an image.")

    @Argument(help: "The image file.") var image: String
    @Argument(help: "A script in blockscope's command language (one command a line).") var script: String
    @OptionGroup var imageOptions: ImageOptions
    @Flag(help: "Open the image for writing (needed by write, zero and discard).") var write = false

    func run() throws {
        try reportingErrors { () throws(BlockError) in
            let text: String
            do { text = try String(contentsOfFile: script, encoding: .utf8) }
            catch { throw BlockError(.notFound, "cannot read script: \(error.localizedDescription)", path: script) }
            let lines = try CommandScript.parse(text, source: script)
            if !write, let w = lines.first(where: { $0.command.isWrite }) {
                throw BlockError(.readOnly, "line \(w.line) modifies the image; give --write to open it for writing", path: script)
            }
            let disk = try openImage(image, imageOptions.openOptions(writable: write))
            let runner = try ScriptRunner(disk: disk, engine: imageOptions.engine)
            try runner.run(lines, source: script)
            try disk.close()
        }
    }
}

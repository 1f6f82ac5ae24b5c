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
            let probe = try SystemFile(path: image, writable: false)
            let size = try probe.size()
            if size == 0 { throw BlockError(.invalidFormat, "file is empty (0 bytes): not a disk image", path: image, operation: "explain") }
            let head = try probe.readBytes(at: 0, count: Int(min(size, 512)))
            probe.close()
            var fmt = format ?? probeFormat(head)
            if format == nil && fmt == .raw && image.lowercased().hasSuffix(".qcow2") { fmt = .qcow2 }
            switch fmt {
            case .qcow2:
                // A read-only user beside a writer gets a warning, as QEMU's locks allow.
                let lock = try ImageLock(path: image, writable: false, shareWrites: false)
                defer { lock.release() }
                if let w = lock.warning { printError(w) }
                let structure = try Qcow2Structure(path: image)
                var report = try structure.explain()
                if structure.backingFile != nil {
                    // A convert flattens the chain: count the data through the backing files.
                    let disk = try openImage(image, OpenOptions(writable: false, format: .qcow2))
                    defer { try? disk.close() }
                    if let inspectable = disk as? any InspectableDisk { try report.measureConvert(through: inspectable) }
                }
                return report
            default:
                let disk = try openImage(image, OpenOptions(writable: false, format: fmt))
                defer { try? disk.close() }
                guard let explainable = disk as? any ExplainableDisk else {
                    throw BlockError(.unsupportedFeature, "explain is not supported for \(disk.format.rawValue) images", path: image)
                }
                return try explainable.explain()
            }
        }
        switch output {
        case .json: print(report.json().render(pretty: true))
        case .human: print(report.text { formatBytes(Double($0)) }, terminator: "")
        }
    }
}

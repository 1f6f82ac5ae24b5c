import ArgumentParser
import BlockCore

/// `blockscope info IMAGE`: what qemu-img info prints, plus blockscope's own keys.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show an image's format, sizes and metadata (qemu-img info's keys).")

    @Argument(help: "The image file.") var image: String
    @OptionGroup var imageOptions: ImageOptions
    @Option(help: "Output style: human or json.") var output: OutputFormat = .human

    func run() throws {
        try refuseDirectories(images: [image])
        try reportingErrors { () throws(BlockError) in
            let disk = try openImage(image, imageOptions.openOptions(writable: false))
            let info = try disk.info()
            switch output {
            case .json: print(info.render(pretty: true))
            case .human: print(renderHumanInfo(info), terminator: "")
            }
            try disk.close()
        }
    }
}

/// Renders info JSON as qemu-img's human form ("image: ...", "file format: ...").
func renderHumanInfo(_ info: JSONValue) -> String {
    var out = ""
    func size(_ v: Int64) -> String { formatBytes(Double(v), style: .qemu) }
    if let f = info["filename"]?.stringValue { out += "image: \(f)\n" }
    if let f = info["format"]?.stringValue { out += "file format: \(f)\n" }
    if let v = info["virtual-size"]?.intValue { out += "virtual size: \(size(v)) (\(v) bytes)\n" }
    if let v = info["actual-size"]?.intValue { out += "disk size: \(size(v))\n" }
    if let v = info["cluster-size"]?.intValue { out += "cluster_size: \(v)\n" }
    if let b = info["backing-filename"]?.stringValue { out += "backing file: \(b)\n" }
    if let b = info["backing-filename-format"]?.stringValue { out += "backing file format: \(b)\n" }
    if let d = info["dirty-flag"]?.boolValue, d { out += "dirty: yes\n" }
    if let snaps = info["snapshots"]?.arrayValue, !snaps.isEmpty {
        out += "Snapshot list:\nID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT\n"
        for s in snaps {
            out += "\(s["id"]?.stringValue ?? "?")         \(s["name"]?.stringValue ?? "?")\n"
        }
    }
    if let fs = info["format-specific"], let data = fs["data"], case let .object(kv) = data {
        out += "Format specific information:\n"
        for (k, v) in kv { out += "    \(k): \(v.render(pretty: false))\n" }
    }
    if let bs = info["blockscope"], case let .object(kv) = bs {
        out += "blockscope:\n"
        for (k, v) in kv { out += "    \(k): \(v.render(pretty: false))\n" }
    }
    return out
}

import ArgumentParser
import BlockCore

/// `blockscope map IMAGE`: allocation extents through the backing chain, like `qemu-img map`.
struct Map: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List an image's extents through its backing chain (qemu-img map's entries).")

    @Argument(help: "The image file.") var image: String
    @OptionGroup var imageOptions: ImageOptions
    @Option(help: "Output style: human or json.") var output: OutputFormat = .human
    @Flag(help: "Add blockscope's per-cluster detail (compressed, subcluster states) that qemu-img does not show.") var detail = false

    func run() throws {
        try reportingErrors { () throws(BlockError) in
            let disk = try openImage(image, imageOptions.openOptions(writable: false))
            guard let inspectable = disk as? any InspectableDisk else {
                throw BlockError(.unsupportedFeature, "map is not supported for \(disk.format.rawValue) images", path: image)
            }
            let extents: [MapExtent]
            if detail, let q = disk as? Qcow2Disk { extents = try q.mapExtents(detail: true) } else { extents = try inspectable.mapExtents() }
            let merged = mergeExtents(extents)
            switch output {
            case .json:
                // qemu-img's layout: one entry per line inside brackets.
                let lines = merged.map { qemuMapLine($0, detail: detail) }
                print("[" + lines.joined(separator: ",\n") + "]")
            case .human:
                print(renderHumanMap(merged, detail: detail), terminator: "")
            }
            try disk.close()
        }
    }
}

/// One entry exactly as `qemu-img map --output=json` prints it (plus `detail` when asked).
func qemuMapLine(_ e: MapExtent, detail: Bool) -> String {
    var s = "{ \"start\": \(e.start), \"length\": \(e.length), \"depth\": \(e.depth), \"present\": \(e.present), \"zero\": \(e.zero), \"data\": \(e.data)"
    if let o = e.offset { s += ", \"offset\": \(o)" }
    if detail, let d = e.detail { s += ", \"detail\": " + JSONValue.string(d).render(pretty: false) }
    return s + "}"
}

/// A table of extents: start, length, depth, flags, host offset (and detail).
func renderHumanMap(_ extents: [MapExtent], detail: Bool) -> String {
    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    var out = pad("Offset", 20) + pad("Length", 20) + pad("Depth", 7) + pad("Kind", 14) + "Host offset" + (detail ? "          Detail" : "") + "\n"
    for e in extents {
        let kind = !e.present && e.zero ? "unallocated" : (e.data ? (e.zero ? "data,zero" : "data") : (e.zero ? "zero" : "-"))
        let host = e.offset.map { hex($0) } ?? "-"
        out += pad(hex(e.start), 20) + pad(hex(e.length), 20) + pad(String(e.depth), 7) + pad(kind, 14)
        out += detail ? pad(host, 21) + (e.detail ?? "") : host
        out += "\n"
    }
    return out
}

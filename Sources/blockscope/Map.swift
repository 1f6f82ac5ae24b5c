import ArgumentParser
import BlockCore
#if canImport(Glibc)
import Glibc
#endif

/// `blockscope map IMAGE`: allocation extents through the backing chain, like `qemu-img map`.
struct Map: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "map", abstract: "List an image's extents through its backing chain (qemu-img map's entries).")

    @Argument(help: "The image file.") var image: String
    @OptionGroup var imageOptions: ImageOptions
    @Option(help: "Output style: human or json.") var output: OutputFormat = .human
    @Flag(help: "Add blockscope's per-cluster detail (compressed, subcluster states) that qemu-img does not show.") var detail = false

    func run() throws {
        try refuseDirectories(images: [image])
        try reportingErrors { () throws(BlockError) in
            let disk = try openImage(image, imageOptions.openOptions(writable: false))
            guard let inspectable = disk as? any InspectableDisk else {
                throw BlockError(.unsupportedFeature, "map is not supported for \(disk.format.rawValue) images", path: image)
            }
            // Streamed: one merged extent at a time into a buffered stdout, whatever the image size.
            var out = BufferedOutput()
            var first = true
            switch output {
            case .json:
                // qemu-img's layout: one entry per line inside brackets.
                out.write("[")
                try inspectable.forEachMapExtent(detail: detail) { e in
                    if !first { out.write(",\n") }
                    first = false
                    out.write(qemuMapLine(e, detail: detail))
                }
                out.write("]\n")
            case .human:
                out.write(humanMapHeader(detail: detail))
                try inspectable.forEachMapExtent(detail: detail) { e in out.write(humanMapLine(e, detail: detail)) }
            }
            out.flush()
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

/// The header line of the human map table.
func humanMapHeader(detail: Bool) -> String {
    padded("Offset", 20) + padded("Length", 20) + padded("Depth", 7) + padded("Kind", 14) + "Host offset" + (detail ? "          Detail" : "") + "\n"
}

/// One row of the human map table: start, length, depth, flags, host offset (and detail).
func humanMapLine(_ e: MapExtent, detail: Bool) -> String {
    let kind = !e.present && e.zero ? "unallocated" : (e.data ? (e.zero ? "data,zero" : "data") : (e.zero ? "zero" : "-"))
    let host = e.offset.map { hex($0) } ?? "-"
    var out = padded(hex(e.start), 20) + padded(hex(e.length), 20) + padded(String(e.depth), 7) + padded(kind, 14)
    out += detail ? padded(host, 21) + (e.detail ?? "") : host
    return out + "\n"
}

private func padded(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

/// Stdout through a 256 KiB buffer (`print` per extent costs a write each at TiB scale).
struct BufferedOutput {
    private var buf: [UInt8] = []

    init() { buf.reserveCapacity(1 << 18) }

    /// Appends `s`, writing the buffer out when it is full.
    mutating func write(_ s: String) {
        buf.append(contentsOf: s.utf8)
        if buf.count >= 1 << 18 { flush() }
    }

    /// Writes everything buffered to stdout (fd 1), retrying short writes.
    mutating func flush() {
        var done = 0
        buf.withUnsafeBytes { p in
            while done < p.count {
                let n = Syscall.retrying { Glibc.write(1, p.baseAddress! + done, p.count - done) }
                if n <= 0 { break }
                done += n
            }
        }
        buf.removeAll(keepingCapacity: true)
    }
}

import ArgumentParser
import BlockCore
import BlockEngine
import Foundation

/// `blockscope bench DIR`: the standard benchmark matrix on temporary images in DIR.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench",
        abstract: "Run the standard benchmark matrix (RAW/QCOW2/VHDX, sync and io_uring) on temporary images, with fio and qemu-img bench when installed.")

    @Argument(help: "A directory for the temporary images (on the disk to measure).") var directory: String
    @Option(help: "Output style: human or json.") var output: OutputFormat = .human
    @Option(help: "4 KiB requests per random workload (others scale from it).") var ios: UInt64 = 100_000
    @Option(help: "Size of each temporary image (k/M/G suffixes).") var size: SizeArgument = SizeArgument(argument: "1G")!
    @Option(help: "Formats to run (comma separated, qemu-img names).") var formats: String = "raw,qcow2,vhdx"
    @Option(help: "Engines to run (comma separated: uring,sync).") var engines: String = "uring,sync"
    @Option(help: "Workloads to run (comma separated names; default: all).") var workloads: String?
    @Flag(help: "Write every byte of each image once before timing (and before qemu-img bench), so writes hit allocated blocks.")
    var prefill = false
    @Option(help: "Options for 'qemu-img create -o' on non-RAW images (e.g. subformat=fixed).") var createOptions: String?
    @Flag(help: "Skip fio and qemu-img bench.") var noPeers = false

    func run() throws {
        try reportingErrors { () throws(BlockError) in
            var rows: [BenchRow] = []
            let workloads = try BenchRunner.select(BenchWorkload.standard(ios: ios), names: workloads)
            let wanted = try parseList(formats, "--formats") { ImageFormat(argument: $0) }
            let wantedEngines = try parseList(engines, "--engines") { e -> EngineKind? in e == "uring" || e == "sync" ? EngineKind(rawValue: e) : nil }
            let plan: [(ImageFormat, EngineKind)] = wanted.flatMap { f -> [(ImageFormat, EngineKind)] in
                (f == .raw ? [EngineKind.uring, .sync] : [.sync, .uring]).filter { wantedEngines.contains($0) }.map { (f, $0) }
            }
            for (format, engine) in plan {
                for w in workloads {
                    let path = directory + "/blockscope-bench-\(format.rawValue)-\(engine.rawValue).img"
                    defer { try? FileManager.default.removeItem(atPath: path) }
                    do throws(BlockError) {
                        try makeImage(path, format: format)
                        var o = OpenOptions(writable: true, format: format, engine: engine)
                        o.direct = true
                        var disk = try openDisk(path, options: o)
                        if prefill {
                            try BenchRunner.prefill(disk: disk)
                            // Reopen, so the timed run starts a fresh session (VHDX: new log GUID, empty log).
                            try disk.close()
                            disk = try openDisk(path, options: o)
                        }
                        var row = try BenchRunner.run(w, disk: disk, engine: engine)
                        row.prefilled = prefill
                        try disk.close()
                        if !noPeers && engine == .uring {
                            if format == .raw { row.fio = PeerTools.fio(w, filename: path, scratchDir: directory) }
                            try makeImage(path, format: format)
                            if prefill {
                                var po = OpenOptions(writable: true, format: format, engine: .uring)
                                po.direct = true
                                let d = try openDisk(path, options: po)
                                try BenchRunner.prefill(disk: d)
                                try d.close()
                            }
                            row.qemuImg = PeerTools.qemuImgBench(w, image: path, format: format)
                        }
                        rows.append(row)
                        if output == .human { printError("bench: \(format.rawValue)/\(engine.rawValue) \(w.name): \(Int(row.iops)) IOPS") }
                    } catch {
                        if error.kind == .unsupportedFeature || format != .raw {
                            printError("bench: skipping \(format.rawValue)/\(engine.rawValue) \(w.name): \(error.description)")
                            break
                        }
                        throw error
                    }
                }
            }
            switch output {
            case .json:
                print(JSONValue.object([("directory", .string(directory)), ("ios", .size(ios)), ("prefill", .bool(prefill)),
                                        ("create_options", createOptions.map { .string($0) } ?? .null),
                                        ("results", .array(rows.map { $0.json }))]).render())
            case .human:
                print(table(rows), terminator: "")
            }
        }
    }

    /// Creates a fresh image: RAW preallocated with fallocate, others with qemu-img create.
    private func makeImage(_ path: String, format: ImageFormat) throws(BlockError) {
        try? FileManager.default.removeItem(atPath: path)
        if format == .raw {
            let f = try SystemFile(path: path, writable: true, create: true, truncate: true)
            if PeerTools.capture("/usr/bin/fallocate", ["-l", "\(size.value)", path])?.0 != 0 { try f.truncate(to: size.value) }
            f.close()
            return
        }
        var args = ["create", "-q", "-f", format.rawValue]
        if let createOptions, !createOptions.isEmpty { args += ["-o", createOptions] }
        args += [path, "\(size.value)"]
        guard let qi = PeerTools.which("qemu-img"), let (st, _) = PeerTools.capture(qi, args), st == 0 else {
            throw BlockError(.unsupportedFeature, "cannot create a \(format.rawValue) image: 'qemu-img \(args.joined(separator: " "))' is missing or failed", path: path)
        }
    }

    /// Splits a comma-separated option into values; an unknown item is one clear error.
    private func parseList<T>(_ text: String, _ option: String, _ parse: (String) -> T?) throws(BlockError) -> [T] {
        var out: [T] = []
        for item in text.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            guard let v = parse(item) else { throw BlockError(.invalidArgument, "bench: \(option): unknown value '\(item)'") }
            out.append(v)
        }
        if out.isEmpty { throw BlockError(.invalidArgument, "bench: \(option) is empty") }
        return out
    }

    private func table(_ rows: [BenchRow]) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        var out = pad("workload", 22) + pad("format", 7) + pad("engine", 7) + pad("IOPS", 10) + pad("MiB/s", 9)
            + pad("p50 us", 9) + pad("p99 us", 9) + pad("fio", 12) + pad("vs fio", 8) + pad("qemu-img", 10) + "vs qemu-img\n"
        for r in rows {
            out += pad(r.workload, 22) + pad(r.format.rawValue, 7) + pad(r.engine.rawValue, 7)
            out += pad(String(format: "%.0f", r.iops), 10) + pad(String(format: "%.1f", r.bytesPerSecond / 1048576), 9)
            out += pad(String(format: "%.1f", Double(r.p50Ns) / 1000), 9) + pad(String(format: "%.1f", Double(r.p99Ns) / 1000), 9)
            if let f = r.fio {
                out += pad(r.workload.contains("fsync") ? String(format: "%.1fus", f / 1000) : String(format: "%.0f", f), 12)
                out += pad(String(format: "%.2fx", r.ratio(f)), 8)
            } else { out += pad("-", 12) + pad("-", 8) }
            if let q = r.qemuImg { out += pad(String(format: "%.0f", q), 10) + String(format: "%.2fx", r.iops / q) } else { out += pad("-", 10) + "-" }
            out += "\n"
        }
        out += "Ratios: blockscope/peer IOPS (for fsync: peer p50 / blockscope p50). qemu-img bench writes sequentially.\n"
        if prefill { out += "Images were prefilled (every byte written once) before each timed run: writes hit allocated blocks.\n" }
        return out
    }
}

import BlockIO
import Foundation

/// Runs the peers blockscope compares itself with — fio and `qemu-img bench` — when installed.
package enum PeerTools {
    /// The full path of `name` on `PATH`, or nil.
    public static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Runs `executable` with `arguments`; returns (status, stdout) or nil when it cannot start.
    public static func capture(_ executable: String, _ arguments: [String]) -> (Int32, String)? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// fio's figure for `w` on the raw file `filename`: IOPS, or the flush p50 in ns for the
    /// fsync workload. Nil when fio is missing or fails.
    public static func fio(_ w: BenchWorkload, filename: String, scratchDir: String) -> Double? {
        guard let fio = which("fio") else { return nil }
        let jobPath = scratchDir + "/peer-\(w.name).fio"
        do { try w.fioJobFile(filename: filename).write(toFile: jobPath, atomically: true, encoding: .utf8) } catch { return nil }
        defer { try? FileManager.default.removeItem(atPath: jobPath) }
        guard let (status, text) = capture(fio, ["--output-format=json", jobPath]), status == 0,
              let start = text.firstIndex(of: "{"),
              let json = try? JSONValue.parse(String(text[start...])),
              let job = json["jobs"]?.arrayValue?.first else { return nil }
        func num(_ v: JSONValue?) -> Double? {
            switch v { case let .double(d)?: return d; case let .int(i)?: return Double(i); default: return nil }
        }
        if w.measuresFsync {
            return num(job["sync"]?["lat_ns"]?["percentile"]?["50.000000"]) ?? num(job["sync"]?["lat_ns"]?["mean"])
        }
        return (num(job["read"]?["iops"]) ?? 0) + (num(job["write"]?["iops"]) ?? 0)
    }

    /// `qemu-img bench` IOPS for a write-only workload (it has no mixed or random mode: its
    /// writes are sequential), or nil when unavailable or not comparable.
    public static func qemuImgBench(_ w: BenchWorkload, image: String, format: ImageFormat) -> Double? {
        guard let qi = which("qemu-img"), w.job.rw == .write || w.job.rw == .randwrite, !w.measuresFsync,
              let n = w.job.numberIos else { return nil }
        let args = ["bench", "-f", format.rawValue, "-t", "none", "-i", "io_uring", "-d", "\(w.job.iodepth)",
                    "-s", "\(w.job.bsMin)", "-w", "-c", "\(n)", image]
        guard let (status, text) = capture(qi, args), status == 0,
              let r = text.range(of: "Run completed in ") else { return nil }
        let secs = Double(text[r.upperBound...].prefix { $0.isNumber || $0 == "." }) ?? 0
        return secs > 0 ? Double(n) / secs : nil
    }
}

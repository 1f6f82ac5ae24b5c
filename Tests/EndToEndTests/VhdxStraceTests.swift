import Testing
import Foundation
import TestSupport

/// strace shows that VHDX and VHD guest data moves through io_uring: the bytes moved by
/// pread/pwrite system calls (metadata) are a small fraction of the data read and written.
@Suite struct VhdxStraceTests {
    static let hasStrace = FileManager.default.isExecutableFile(atPath: "/usr/bin/strace")

    /// Bytes returned by the named syscalls and the number of io_uring_enter calls in a trace.
    func summarize(_ log: String, _ calls: [String]) -> (bytes: Int, enters: Int) {
        var bytes = 0, enters = 0
        for line in log.split(separator: "\n") {
            if line.contains("io_uring_enter(") { enters += 1 }
            guard calls.contains(where: { line.contains(" \($0)(") || line.hasPrefix("\($0)(") }),
                  let eq = line.range(of: "= ", options: .backwards), let n = Int(line[eq.upperBound...].split(separator: " ").first ?? "") else { continue }
            bytes += max(0, n)
        }
        return (bytes, enters)
    }

    @Test(.enabled(if: hasStrace), arguments: [("vhdx", "block_size=1M"), ("vpc", "subformat=dynamic")])
    func dataGoesThroughIoUring(_ format: String, _ opts: String) throws {
        let dir = try TestSupport.makeTempDir("strace"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s.\(format)", trace = dir + "/trace.log", script = dir + "/w.txt"
        try TestSupport.qemuImg(["create", "-q", "-f", format, "-o", opts, img, "48M"])
        try "write 0 40M 0x5c\nfsync\n".write(toFile: script, atomically: true, encoding: .utf8)
        let w = try TestSupport.run("strace", ["-f", "-o", trace, "-e", "trace=pwrite64,pwritev,write,io_uring_enter",
                                               TestSupport.blockscopeBinary, "run", "--write", img, script])
        #expect(w.status == 0, "\(w.stderr)")
        let ws = summarize(String(decoding: try TestSupport.readFile(trace), as: UTF8.self), ["pwrite64", "pwritev"])
        #expect(ws.enters > 0)
        #expect(ws.bytes < (40 << 20) / 20, "pwrite moved \(ws.bytes) bytes of 40 MiB written")
        let r = try TestSupport.run("strace", ["-f", "-o", trace, "-e", "trace=pread64,preadv,read,io_uring_enter",
                                               TestSupport.blockscopeBinary, "cat", img])
        #expect(r.status == 0)
        #expect(r.stdout.count == (try TestSupport.qemuRaw(img, format: format)).count)
        let rs = summarize(String(decoding: try TestSupport.readFile(trace), as: UTF8.self), ["pread64", "preadv"])
        #expect(rs.enters > 0)
        #expect(rs.bytes < (48 << 20) / 20, "pread moved \(rs.bytes) bytes of 48 MiB read")
    }
}

import BlockCore
import Foundation
import Testing
import TestSupport

/// strace shows that QCOW2 guest writes move through io_uring: a random-write job with guest
/// fsyncs makes no fsync/fdatasync system call (flushes are IORING_OP_FSYNC) and the bytes
/// written by pwrite-family calls (metadata, if any) are under a tenth of the data written.
@Suite struct Qcow2WriteStraceTests {
    static let hasStrace = FileManager.default.isExecutableFile(atPath: "/usr/bin/strace")

    /// Proves: about 32 MiB of 4..64 KiB random writes (two queues, fsync every 32 writes) through
    /// `blockscope run --write` on a fresh image and on an image over a raw backing file
    /// (copy on write) issue zero fsync/fdatasync syscalls, use io_uring_enter, and move less
    /// than 3.2 MiB through pwrite/pwritev/pwritev2/write; qemu-img check stays clean.
    @Test(.enabled(if: hasStrace), arguments: ["plain", "backing"])
    func writesAndFlushesGoThroughIoUring(_ kind: String) throws {
        let dir = try TestSupport.makeTempDir("q2w-strace")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s.qcow2", trace = dir + "/trace.log", job = dir + "/w.fio"
        if kind == "backing" {
            try TestSupport.qemuImg(["create", "-q", "-f", "raw", dir + "/base.raw", "48M"])
            try Qcow2WriteOracle.randomFill(dir + "/base.raw", offsetMiB: 0, mib: 48)
            try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", img, "48M"])
        } else {
            try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "48M"])
        }
        try """
        [w]
        rw=randwrite
        bsrange=4k-64k
        blockalign=4k
        iodepth=16
        numjobs=2
        size=40M
        number_ios=480
        fsync=32
        end_fsync=1
        """.write(toFile: job, atomically: true, encoding: .utf8)
        let r = try TestSupport.run("strace", ["-f", "-o", trace, "-e", "trace=pwrite64,pwritev,pwritev2,write,fsync,fdatasync,sync_file_range,io_uring_enter",
                                               TestSupport.blockscopeBinary, "run", "--write", "--output=json", img, job])
        #expect(r.status == 0, "\(r.stderr)")
        // About 32 MiB: 2 x 480 writes of 4..64 KiB (the exact count from the report).
        let jobs = (try? JSONValue.parse(r.stdoutText))?["jobs"]?.arrayValue ?? []
        let written = Int(jobs.reduce(Int64(0)) { $0 + ($1["write"]?["io_bytes"]?.intValue ?? 0) })
        #expect(written > 24 << 20, "the job wrote only \(written) bytes")
        let log = String(decoding: try TestSupport.readFile(trace), as: UTF8.self)
        var bytes = 0, enters = 0
        var syncs: [Substring] = []
        for line in log.split(separator: "\n") {
            if line.contains("io_uring_enter(") { enters += 1; continue }
            if line.contains("fsync(") || line.contains("fdatasync(") || line.contains("sync_file_range(") { syncs.append(line); continue }
            guard ["pwrite64(", "pwritev(", "pwritev2(", "write("].contains(where: { line.contains($0) }),
                  let eq = line.range(of: "= ", options: .backwards),
                  let n = Int(line[eq.upperBound...].split(separator: " ").first ?? "") else { continue }
            bytes += max(0, n)
        }
        #expect(enters > 0, "no io_uring_enter in the trace")
        #expect(syncs.isEmpty, "\(syncs.count) fsync-family syscalls, e.g. \(syncs.prefix(3))")
        #expect(bytes < written / 10, "pwrite/write moved \(bytes) bytes of \(written) written")
        try Qcow2WriteOracle.expectClean(img, kind)
    }
}

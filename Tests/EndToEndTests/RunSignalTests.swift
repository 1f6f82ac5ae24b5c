import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A signal to `blockscope run --write` stops the jobs as fio's Ctrl-C does: requests in flight
/// finish, the partial results print, the image is flushed and closed. Checked with qemu-io
/// (every byte the job reports written reads back as its pattern) and qemu-img check (clean,
/// not even a leak). Before, the signal killed the process with the QCOW2's metadata updates
/// for completed writes still in memory.
@Suite("RunSignal", .serialized) struct RunSignalTests {
    @Test("SIGTERM, SIGINT or SIGHUP mid-job: exit 0, partial results, every reported byte in the image, check clean",
          arguments: [SIGTERM, SIGINT, SIGHUP])
    func signalMidJob(_ sig: Int32) throws {
        let dir = try TestSupport.makeTempDir("run-signal")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/img.qcow2", job = dir + "/w.fio", out = dir + "/out.json", err = dir + "/err.txt"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "4G"])
        // Sequential at depth 1: the bytes written are exactly a prefix of the image.
        try "[w]\nrw=write\nbs=64k\niodepth=1\nsize=4G\nverify=pattern\nverify_pattern=0xab\ndo_verify=0\n"
            .write(toFile: job, atomically: true, encoding: .utf8)
        let child = try BackgroundProcess(TestSupport.blockscopeBinary, ["run", "--write", "--output=json", img, job],
                                          stdoutPath: out, stderrPath: err)
        // Progress, not time: the file has grown past 8 MiB (QCOW2 grows its file ahead of the
        // data, so this says the job is writing, not how much it has written).
        #expect(Progress.wait(child: child) { Progress.fileSize(img) > 8 << 20 }, "the job wrote nothing")
        child.kill(sig)
        let status = child.wait()
        let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        #expect(status == 0, "exit \(status): \(stderr)")
        let name = sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP"
        #expect(stderr.contains("blockscope: \(name): stopping"), "\(stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "no JSON report: \(stderr)")
        let jobs = try #require(json["jobs"] as? [[String: Any]])
        let write = try #require(jobs.first?["write"] as? [String: Any])
        let bytes = try #require((write["io_bytes"] as? NSNumber)?.intValue)
        #expect(bytes > 0 && bytes < 4 << 30, "io_bytes \(bytes): the job did not stop early")
        let read = try TestSupport.qemuIo(img, format: "qcow2", ["read -P 0xab 0 \(bytes)", "read -P 0 \(bytes) 1M"])
        #expect(read.status == 0 && !read.stdoutText.contains("verification failed"), "\(read.stdoutText) \(read.stderr)")
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0 && check.stdoutText.contains("No errors"), "\(check.stdoutText) \(check.stderr)")
    }
}

import Testing
import Foundation
import BlockCore
import TestSupport

/// A `blockscope run --write` killed with SIGKILL in the middle of allocating writes leaves
/// a VHDX whose log (if any) replays to the same content in blockscope and in
/// `qemu-img check -r all`.
@Suite struct VhdxKillTests {
    @Test func killedWriterLeavesAnImageBothToolsReplayAlike() throws {
        let dir = try TestSupport.makeTempDir("kill"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/k.vhdx", script = dir + "/w.txt"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", img, "128M"])
        var lines: [String] = []
        for i in 0..<400 { lines.append("write \(((i * 37) % 128) << 20) 4k 0x\(String(i % 200 + 16, radix: 16))") }
        try lines.joined(separator: "\n").write(toFile: script, atomically: true, encoding: .utf8)
        // Line-buffered: a "wrote ..." line is in the file once its write completed. Kill after
        // 40 of the 400 writes, so the kill lands among allocating writes on any machine.
        let out = dir + "/out.txt"
        let p = try BackgroundProcess("stdbuf", ["-oL", TestSupport.blockscopeBinary, "run", "--write", img, script], stdoutPath: out)
        let progressed = Progress.wait(child: p) { Progress.lineCount(out) >= 40 }
        let exitedEarly = p.hasExited
        p.kill(SIGKILL)
        p.wait()
        #expect(progressed && !exitedEarly, "the writer printed \(Progress.lineCount(out)) lines before the kill (exited: \(exitedEarly))")
        let copy = dir + "/copy.vhdx"
        try FileManager.default.copyItem(atPath: img, toPath: copy)

        let ours = try TestSupport.blockscope(["cat", img])
        #expect(ours.status == 0, "\(ours.stderr)")
        let qc = try TestSupport.qemuImg(["check", "-r", "all", "-f", "vhdx", copy])
        #expect(qc.status == 0, "\(qc.stdoutText) \(qc.stderr)")
        #expect(try TestSupport.qemuRaw(copy, format: "vhdx") == ours.stdout)
        // Replaying on disk (a writable open) gives qemu the same image.
        try "fsync\n".write(toFile: dir + "/f.txt", atomically: true, encoding: .utf8)
        #expect(try TestSupport.blockscope(["run", "--write", img, dir + "/f.txt"]).status == 0)
        #expect(try TestSupport.qemuImg(["check", "-f", "vhdx", img]).status == 0)
        #expect(try TestSupport.qemuImg(["compare", "-f", "vhdx", "-F", "vhdx", img, copy]).status == 0)
    }
}

import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM, SIGINT and SIGHUP to `blockscope tui --write` (alone and with `--serve`) quit as
/// `q` does: exit 0, the terminal restored, a completed write readable by qemu-io, the image
/// clean for qemu-img check and no bigger than qemu-io makes it with the same write.
@Suite("TuiShutdown", .serialized) struct TuiShutdownTests {
    typealias Session = TuiEndToEndTests.Session

    /// The image size qemu-io leaves after the same 1 MiB write on a fresh twin image.
    static func qemuIoSize(_ dir: String, size: String, write: String) throws -> Int {
        let twin = dir + "/twin.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", twin, size])
        let r = try TestSupport.qemuIo(twin, format: "qcow2", [write])
        #expect(r.status == 0, "\(r.stderr)")
        return Progress.fileSize(twin)
    }

    /// Reads the pid a wrapper shell wrote before exec'ing blockscope.
    static func pid(_ path: String) throws -> pid_t {
        var text = ""
        Progress.wait { text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""; return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) != nil }
        guard let p = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw TestFailure("no pid in \(path)") }
        return p
    }

    @Test("a signal after a completed write: exit 0, the terminal restored, the write on disk, the file as small as qemu-io makes it",
          arguments: [SIGTERM, SIGINT, SIGHUP])
    func signalAfterCompletedWrite(_ sig: Int32) throws {
        let dir = try TestSupport.makeTempDir("tui-signal")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/img.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "256M"])
        let s = try Session(command: "cd \(dir) && bash -c 'echo $$ > tui.pid; exec \(TestSupport.blockscopeBinary) tui --write --no-mouse img.qcow2'", width: 80, height: 24)
        try s.wait(for: "8 Compl")
        try s.keys(":")
        try s.keys(literal: "write 1M 1M 0xab")
        try s.keys("Enter")
        try s.wait(for: "wrote 1048576/1048576 bytes at offset 0x100000")
        let pid = try Self.pid(dir + "/tui.pid")
        #expect(kill(pid, sig) == 0)
        let end = try s.wait(for: "TUI-EXIT=")
        let name = sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP"
        #expect(end.contains("TUI-EXIT=0"), "\(end)")
        #expect(end.contains("blockscope: \(name): quit as on q"), "\(end)")
        #expect(end.contains("blockscope: closed img.qcow2 (read-write, data and metadata flushed)"), "\(end)")
        #expect(!end.contains("8 Compl"), "the terminal was not restored:\n\(end)")
        let read = try TestSupport.qemuIo(img, format: "qcow2", ["read -P 0xab 1M 1M"])
        #expect(read.status == 0 && !read.stdoutText.contains("verification failed"), "\(read.stdoutText) \(read.stderr)")
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText) \(check.stderr)")
        // No lock left behind: qemu-io opens the image for writing.
        let w = try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x01 0 4k"])
        #expect(w.status == 0, "\(w.stderr)")
        let reference = try Self.qemuIoSize(dir, size: "256M", write: "write -P 0xab 1M 1M")
        let size = Progress.fileSize(img)
        #expect(size <= reference + 2 * 65536, "the file is \(size) bytes; qemu-io's after the same write: \(reference)")
    }

    @Test("SIGTERM with --serve: an NBD client's completed write survives, the socket goes away, exit 0")
    func sigtermWithServe() throws {
        let dir = try TestSupport.makeTempDir("tui-signal-serve")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/img.qcow2", sock = dir + "/s.sock"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "256M"])
        let s = try Session(command: "cd \(dir) && bash -c 'echo $$ > tui.pid; exec \(TestSupport.blockscopeBinary) tui --write --no-mouse --serve unix:\(sock) img.qcow2'", width: 80, height: 24)
        try s.wait(for: "8 Compl")
        #expect(Progress.wait { FileManager.default.fileExists(atPath: sock) }, "no socket at \(sock)")
        let uri = "nbd+unix:///?socket=\(sock)"
        let w = try TestSupport.run("qemu-io", ["-f", "raw", "-c", "write -P 0xcd 2M 1M", uri])
        #expect(w.status == 0 && w.stdoutText.contains("wrote 1048576/1048576"), "\(w.stdoutText) \(w.stderr)")
        let pid = try Self.pid(dir + "/tui.pid")
        #expect(kill(pid, SIGTERM) == 0)
        let end = try s.wait(for: "TUI-EXIT=")
        #expect(end.contains("TUI-EXIT=0"), "\(end)")
        #expect(end.contains("client 1 (unix socket) disconnected"), "\(end)")
        #expect(!FileManager.default.fileExists(atPath: sock), "the socket file is left behind")
        let read = try TestSupport.qemuIo(img, format: "qcow2", ["read -P 0xcd 2M 1M"])
        #expect(read.status == 0 && !read.stdoutText.contains("verification failed"), "\(read.stdoutText) \(read.stderr)")
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText) \(check.stderr)")
        let reference = try Self.qemuIoSize(dir, size: "256M", write: "write -P 0xcd 2M 1M")
        #expect(Progress.fileSize(img) <= reference + 2 * 65536, "the file is \(Progress.fileSize(img)) bytes; qemu-io's: \(reference)")
    }
}

/// `blockscope --version`, and a directory refused by every subcommand and the bare form
/// with one line naming it.
@Suite("CliBasics") struct CliBasicsTests {
    @Test("--version prints 'blockscope 0.1.0' and exits 0")
    func version() throws {
        let r = try TestSupport.blockscope(["--version"])
        #expect(r.status == 0)
        #expect(r.stdoutText == "blockscope 0.1.0\n", "\(r.stdoutText)")
    }

    @Test("a directory is refused by every subcommand and by `blockscope DIR`, with one line naming it")
    func directoryRefused() throws {
        let dir = try TestSupport.makeTempDir("cli-dir")
        defer { TestSupport.removeTempDir(dir) }
        let d = dir + "/adir", img = dir + "/i.qcow2", script = dir + "/s.script"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: false)
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        try "write 0 4k\n".write(toFile: script, atomically: true, encoding: .utf8)
        let image = "blockscope: \(d): is a directory, not a disk image\n"
        let cases: [([String], String)] = [
            (["info", d], image), (["map", d], image), (["check", d], image), (["cat", d], image),
            (["run", d, script], image), (["run", "--write", d, script], image),
            (["run", img, d], "blockscope: \(d): is a directory, not a job file or script\n"),
            (["serve", d, "--socket", dir + "/x.sock"], image), (["tui", d], image), ([d], image), (["--", d], image),
            (["tui", img, "--script", d], "blockscope: \(d): is a directory, not a script\n"),
            (["create", "-f", "qcow2", d, "1M"], image), (["create", "-f", "qcow2", "-b", d, dir + "/n.qcow2"], image),
            (["replay", dir + "/none.jsonl", d], image),
            (["replay", d, img], "blockscope: \(d): is a directory, not a trace file\n"),
        ]
        for (args, message) in cases {
            let r = try TestSupport.blockscope(args)
            #expect(r.status == 1, "\(args): status \(r.status)")
            #expect(r.stderr == message, "\(args): \(r.stderr)")
            #expect(r.stdoutText.isEmpty, "\(args): \(r.stdoutText)")
        }
        // Nothing was created in the directory or beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: d).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir + "/n.qcow2"))
    }
}

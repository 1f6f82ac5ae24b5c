import Testing
import Foundation
import TestSupport

/// `blockscope serve` against real NBD clients as oracles: nbdinfo (flags, map) equals
/// qemu-nbd's on the same image, qemu-img reads the same bytes through NBD as from the
/// file, writes by qemu-io and fio land as a raw mirror says, and the image stays clean.
@Suite(.serialized) struct NbdServeTests {
    /// An image of a given shape, built with qemu-img/qemu-io in `dir`.
    struct Shape: CustomStringConvertible, Sendable {
        var name: String
        var format: String
        var description: String { name }
    }

    static let shapes: [Shape] = [
        Shape(name: "qcow2 over raw backing, data, zero clusters, holes", format: "qcow2"),
        Shape(name: "qcow2 with subclusters", format: "qcow2"),
        Shape(name: "raw sparse", format: "raw"),
        Shape(name: "vhdx dynamic", format: "vhdx"),
        Shape(name: "vpc dynamic", format: "vpc"),
    ]

    /// Builds `shape` in `dir`; returns the image path.
    static func make(_ shape: Shape, _ dir: String) throws -> String {
        let img = dir + "/img.\(shape.format)"
        switch shape.name {
        case let n where n.hasPrefix("qcow2 over raw"):
            let base = dir + "/base.raw"
            try TestSupport.qemuImg(["create", "-q", "-f", "raw", base, "8M"])
            try TestSupport.qemuIo(base, format: "raw", ["write -P 0x5a 0 3M", "write -P 0x11 6M 64k"])
            try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", img, "12M"])
            try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x77 512k 256k", "write -z 1M 512k", "write -P 0x66 2M 64k",
                                                          "write -z 2M 64k", "discard 6M 64k", "write -P 0x33 9M 1M", "write -z 10M 128k"])
        case let n where n.hasPrefix("qcow2 with sub"):
            try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=128k", img, "8M"])
            try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x21 4k 4k", "write -P 0x22 200k 8k", "write -z 1M 4k", "write -P 1 3M 1M"])
        case "raw sparse":
            try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "16M"])
            try TestSupport.qemuIo(img, format: "raw", ["write -P 0x44 1M 64k", "write -P 0x45 5M 2M", "write -P 0 9M 64k"])
        default:
            try TestSupport.qemuImg(["create", "-q", "-f", shape.format, img, "16M"])
            try TestSupport.qemuIo(img, format: shape.format, ["write -P 0x31 0 64k", "write -P 0x32 4M 2M", "write -P 0x33 15M 1M"])
        }
        return img
    }

    @Test(arguments: shapes)
    func nbdinfoFlagsAndMapEqualQemuNbds(_ shape: Shape) throws {
        let dir = try TestSupport.makeTempDir("nbd-map"); defer { TestSupport.removeTempDir(dir) }
        let img = try Self.make(shape, dir)
        let q = try NbdServerProcess.qemuNbd(img, format: shape.format, dir: dir)
        let qFacts = try nbdinfoFacts(q.uri), qMap = try nbdinfoMap(q.uri)
        q.stop()
        let b = try NbdServerProcess.blockscope(img, dir: dir)
        let bFacts = try nbdinfoFacts(b.uri), bMap = try nbdinfoMap(b.uri)
        #expect(b.stop() == 0)
        // blockscope advertises multi-conn (a flush on any connection covers all); qemu-nbd
        // does only with --shared > 1.
        #expect(bFacts.filter { !$0.hasPrefix("can_multi_conn") } == qFacts.filter { !$0.hasPrefix("can_multi_conn") })
        #expect(bFacts.contains("can_multi_conn: true"))
        #expect(bMap == qMap, "blockscope:\n\(bMap)\nqemu-nbd:\n\(qMap)")
    }

    @Test func writableFlagsEqualQemuNbds() throws {
        let dir = try TestSupport.makeTempDir("nbd-flags"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/w.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "4M"])
        let q = try NbdServerProcess.qemuNbd(img, format: "qcow2", dir: dir, writable: true)
        let qFacts = try nbdinfoFacts(q.uri)
        q.stop()
        let b = try NbdServerProcess.blockscope(img, dir: dir, ["--write"])
        let bFacts = try nbdinfoFacts(b.uri)
        #expect(b.stop() == 0)
        #expect(bFacts.filter { !$0.hasPrefix("can_multi_conn") } == qFacts.filter { !$0.hasPrefix("can_multi_conn") })
    }

    @Test(arguments: shapes)
    func qemuImgConvertThroughNbdEqualsConvertOfTheImage(_ shape: Shape) throws {
        let dir = try TestSupport.makeTempDir("nbd-convert"); defer { TestSupport.removeTempDir(dir) }
        let img = try Self.make(shape, dir)
        let b = try NbdServerProcess.blockscope(img, dir: dir)
        let out = dir + "/via-nbd.raw"
        try TestSupport.qemuImg(["convert", "-f", "raw", "-O", "raw", b.uri, out])
        #expect(b.stop() == 0)
        let expected = try TestSupport.qemuRaw(img, format: shape.format)
        #expect(try TestSupport.readFile(out) == expected)
    }

    @Test(arguments: ["qcow2", "vhdx", "raw"])
    func qemuIoWritesThroughNbdEqualARawMirror(_ format: String) throws {
        let dir = try TestSupport.makeTempDir("nbd-write"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/w.\(format)", mirror = dir + "/mirror.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", format, img, "32M"])
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", mirror, "32M"])
        let b = try NbdServerProcess.blockscope(img, dir: dir, ["--write"])
        let cmds = ["write -P 0xa1 0 64k", "write -P 0xa2 1000 70000", "write -P 0xa3 5M 3M", "write -z 6M 512k",
                    "write -z -u 7M 64k", "discard 20M 1M", "write -P 0xa4 31M 1M", "write -P 0xa5 -f 12M 4k",
                    "aio_write -P 0xa6 16M 64k", "aio_write -P 0xa7 17M 64k", "aio_flush", "flush"]
        try TestSupport.qemuIo(b.uri, format: "raw", cmds)
        try TestSupport.qemuIo(mirror, format: "raw", cmds)
        // The trimmed range reads back as zeroes in both (it was never written).
        #expect(b.stop() == 0)
        let cmp = try TestSupport.qemuImg(["compare", "-f", format, "-F", "raw", img, mirror])
        #expect(cmp.status == 0, "\(cmp.stdoutText) \(cmp.stderr)")
        if format != "raw" {
            let check = try TestSupport.qemuImg(["check", "-f", format, img])
            #expect(check.status == 0, "\(check.stdoutText)")
        }
    }

    @Test(arguments: ["qcow2", "vhdx"])
    func fioNbdEngineVerifiesItsOwnWrites(_ format: String) throws {
        let dir = try TestSupport.makeTempDir("nbd-fio"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/f.\(format)"
        try TestSupport.qemuImg(["create", "-q", "-f", format, img, "64M"])
        let b = try NbdServerProcess.blockscope(img, dir: dir, ["--write"])
        let json = dir + "/fio.json"
        let r = try TestSupport.run("fio", ["--name=verify", "--ioengine=nbd", "--uri=\(b.uri)", "--rw=randwrite", "--bs=4k",
                                            "--iodepth=32", "--size=64M", "--io_size=16M", "--verify=crc32c", "--verify_state_save=0", "--randrepeat=1",
                                            "--output-format=json", "--output=\(json)"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONSerialization.jsonObject(with: TestSupport.readFile(json)) as? [String: Any]
        let job = (report?["jobs"] as? [[String: Any]])?.first
        #expect(job?["error"] as? Int == 0)
        #expect(((job?["write"] as? [String: Any])?["total_ios"] as? Int ?? 0) == 4096)
        #expect(b.stop() == 0)
        let check = try TestSupport.qemuImg(["check", "-f", format, img])
        #expect(check.status == 0, "\(check.stdoutText)")
    }

    @Test func twoFioClientsAtOnceEachVerifyTheirHalf() throws {
        let dir = try TestSupport.makeTempDir("nbd-two"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/t.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        let b = try NbdServerProcess.blockscope(img, dir: dir, ["--write"])
        var clients: [BackgroundProcess] = []
        for i in 0..<2 {
            clients.append(try BackgroundProcess("fio", ["--name=half\(i)", "--ioengine=nbd", "--uri=\(b.uri)", "--rw=randrw", "--bs=4k",
                                                         "--iodepth=16", "--offset=\(i * 32)M", "--size=32M", "--io_size=8M",
                                                         "--verify=crc32c", "--verify_state_save=0", "--output-format=json", "--output=\(dir)/fio\(i).json"],
                                                stderrPath: dir + "/fio\(i).err"))
        }
        for (i, c) in clients.enumerated() {
            #expect(c.wait() == 0, "fio \(i): \((try? String(contentsOfFile: dir + "/fio\(i).err", encoding: .utf8)) ?? "")")
        }
        #expect(b.log.contains("client 1 ") && b.log.contains("client 2 "))
        #expect(b.stop() == 0)
        #expect(try TestSupport.qemuImg(["check", img]).status == 0)
    }
}

/// `tui --serve`: the TUI serves its open image and shows an NBD client's requests as a
/// queue of its own.
@Suite(.serialized) struct NbdTuiServeTests {
    @Test func nbdClientRequestsAppearAsQueueEightInTheTui() throws {
        let dir = try TestSupport.makeTempDir("nbd-tui"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/t.qcow2", sock = dir + "/t.sock"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        let session = "bs-nbd-\(getpid())"
        let cmd = "\(TestSupport.blockscopeBinary) tui \(img) --write --serve unix:\(sock) 2>\(dir)/tui.err"
        let r = try TestSupport.run("tmux", ["new-session", "-d", "-s", session, "-x", "160", "-y", "50", cmd])
        #expect(r.status == 0, "\(r.stderr)")
        defer { _ = try? TestSupport.run("tmux", ["kill-session", "-t", session]) }
        Progress.wait(interval: 0.02) { FileManager.default.fileExists(atPath: sock) }
        try TestSupport.run("tmux", ["send-keys", "-t", session, "7"])
        try TestSupport.qemuIo("nbd+unix:///?socket=\(sock)", format: "raw", ["write -P 0x5c 1M 64k"])
        var screen = ""
        Progress.wait(interval: 0.05) {
            screen = (try? TestSupport.run("tmux", ["capture-pane", "-t", session, "-p"]).stdoutText) ?? ""
            return screen.contains("accepted by queue 8")
        }
        #expect(screen.contains("accepted by queue 8"), "\(screen)")
        try TestSupport.run("tmux", ["send-keys", "-t", session, "q"])
        // The socket goes first (the server stops before the image is flushed and closed);
        // the image's lock is free once the TUI has exited and its tmux session with it.
        Progress.wait(interval: 0.02) { !FileManager.default.fileExists(atPath: sock) }
        #expect(!FileManager.default.fileExists(atPath: sock))
        let exited = Progress.wait(interval: 0.05) { (try? TestSupport.run("tmux", ["has-session", "-t", session]).status) != 0 }
        #expect(exited, "the TUI did not exit after q")
        let raw = try TestSupport.qemuRaw(img, format: "qcow2")
        #expect(raw[1 << 20] == 0x5c)
    }
}

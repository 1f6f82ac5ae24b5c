import Testing
import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Bad clients never take the server down: a client killed mid-job, garbage in the
/// handshake and in transmission, out-of-range and oversized requests each end or fail
/// only that client, with a log line naming it, while another client keeps working; SIGTERM
/// drains, flushes, releases the image and exits 0.
@Suite(.serialized) struct NbdServeFaultTests {
    /// Waits until a `--stats` line shows write IOPS above zero.
    func waitForWrites(_ b: NbdServerProcess) -> Bool {
        Progress.wait(interval: 0.05) {
            b.log.split(separator: "\n").contains { line in
                guard line.contains("stats:"), let r = line.range(of: "write ") else { return false }
                return (Int(line[r.upperBound...].prefix { $0.isNumber }) ?? 0) > 0
            }
        }
    }

    @Test func killedClientAndGarbageLeaveAnotherClientWorking() throws {
        let dir = try TestSupport.makeTempDir("nbd-fault"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/f.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        let b = try NbdServerProcess.blockscope(img, dir: dir, ["--write", "--stats", "--stats-interval", "0.2"])
        // Client 1: a long write job, killed with SIGKILL once its writes are flowing.
        let victim = try BackgroundProcess("fio", ["--name=victim", "--thread", "--ioengine=nbd", "--uri=\(b.uri)", "--rw=randwrite", "--bs=64k",
                                                   "--iodepth=32", "--size=32M", "--time_based", "--runtime=120", "--output=/dev/null"])
        #expect(waitForWrites(b), "no writes seen: \(b.log)")
        // fio's nbd engine connects twice (a probe, then the job): count clients from here.
        let victimClients = b.log.components(separatedBy: " connected").count - 1
        // Client 2: a verifying job on the other half, running through everything below.
        let worker = try BackgroundProcess("fio", ["--name=worker", "--ioengine=nbd", "--uri=\(b.uri)", "--rw=randwrite", "--bs=4k",
                                                   "--iodepth=8", "--offset=32M", "--size=32M", "--io_size=24M", "--verify=crc32c", "--verify_state_save=0",
                                                   "--output-format=json", "--output=\(dir)/worker.json"], stderrPath: dir + "/worker.err")
        victim.kill(SIGKILL)
        victim.wait()
        #expect(b.waitForLog("client \(victimClients) (unix socket) disconnected"), "\(b.log)")

        // Garbage instead of a handshake.
        let g1 = try RawNbdClient(socket: b.socket)
        _ = g1.receive(18)
        g1.send(TestSupport.pseudoRandomBytes(count: 64, seed: 7))
        #expect(g1.serverClosed())
        #expect(b.waitForLog("disconnected: handshake failed: unknown client flags"), "\(b.log)")

        // Garbage after a good handshake.
        let g2 = try RawNbdClient(socket: b.socket)
        _ = try g2.handshake()
        g2.send(TestSupport.pseudoRandomBytes(count: 100, seed: 9))
        #expect(g2.serverClosed())
        #expect(b.waitForLog("disconnected: bad request magic"), "\(b.log)")

        // Bad requests get error replies and the connection stays usable.
        let c = try RawNbdClient(socket: b.socket)
        let size = try c.handshake()
        #expect(size == 64 << 20)
        #expect(c.request(type: 0, handle: 1, offset: size, length: 512) == 22)            // read past the end: EINVAL
        #expect(c.request(type: 0, handle: 2, offset: 0, length: 64 << 20) == 22)          // over the 32 MiB maximum: EINVAL
        #expect(c.request(type: 1, handle: 3, offset: size - 100, length: 512, payload: [UInt8](repeating: 1, count: 512)) == 28) // ENOSPC
        #expect(c.request(type: 99, handle: 4, offset: 0, length: 0) == 22)                // unknown command
        #expect(c.request(type: 0, flags: 0x80, handle: 5, offset: 0, length: 512) == 22)  // unknown flag
        #expect(c.request(type: 7, handle: 6, offset: 0, length: 512) == 22)               // block status without a context
        #expect(c.request(type: 1, flags: 1, handle: 7, offset: 4096, length: 4, payload: [1, 2, 3, 4]) == 0) // FUA write
        #expect(c.request(type: 0, handle: 8, offset: 4096, length: 4, readsData: true) == 0)
        #expect(c.request(type: 3, handle: 9, offset: 0, length: 0) == 0)                  // flush
        c.close()
        // A client vanishing halfway through a write payload.
        let v = try RawNbdClient(socket: b.socket)
        _ = try v.handshake()
        v.send(RawNbdClient.be(0x25609513, 4) + RawNbdClient.be(0, 2) + RawNbdClient.be(1, 2) + RawNbdClient.be(1, 8)
               + RawNbdClient.be(0, 8) + RawNbdClient.be(65536, 4) + [UInt8](repeating: 0xee, count: 1000))
        v.close()
        #expect(b.waitForLog("disconnected: client vanished mid-request"), "\(b.log)")

        #expect(worker.wait() == 0, "\((try? String(contentsOfFile: dir + "/worker.err", encoding: .utf8)) ?? "")")
        let report = try JSONSerialization.jsonObject(with: TestSupport.readFile(dir + "/worker.json")) as? [String: Any]
        #expect((report?["jobs"] as? [[String: Any]])?.first?["error"] as? Int == 0)
        #expect(b.stop() == 0)
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText)")
        // The FUA write at 4096, made after the killed client was drained, survived.
        let raw = try TestSupport.qemuRaw(img, format: "qcow2")
        #expect(Array(raw[4096..<4100]) == [1, 2, 3, 4])
    }

    @Test(arguments: ["qcow2", "vhdx"])
    func aFlushOnOneConnectionMakesAnothersWritesDurable(_ format: String) throws {
        let dir = try TestSupport.makeTempDir("nbd-multiconn"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/m.\(format)"
        try TestSupport.qemuImg(["create", "-q", "-f", format, img, "16M"])
        let b = try NbdServerProcess.blockscope(img, dir: dir, ["--write"])
        let writer = try RawNbdClient(socket: b.socket), flusher = try RawNbdClient(socket: b.socket)
        _ = try writer.handshake()
        _ = try flusher.handshake()
        let data = TestSupport.pseudoRandomBytes(count: 65536, seed: 11)
        #expect(writer.request(type: 1, handle: 1, offset: 5 << 20, length: 65536, payload: data) == 0)
        #expect(flusher.request(type: 3, handle: 2, offset: 0, length: 0) == 0)
        // No clean shutdown: what the other connection's flush made durable must be there.
        b.process.kill(SIGKILL)
        b.process.wait()
        // A VHDX left with a log is replayed by the next read-write open, as after any crash.
        if format == "vhdx" { try TestSupport.qemuIo(img, format: format, ["flush"]) }
        let raw = try TestSupport.qemuRaw(img, format: format)
        #expect(Array(raw[(5 << 20) ..< (5 << 20) + 65536]) == data)
        let check = try TestSupport.qemuImg(["check", "-f", format, img])
        #expect(check.status == 0 || check.status == 3, "\(check.stdoutText)")
    }

    /// The protocol document's error rules and flag rules (doc/proto.md, "Error values" and
    /// "Command flags"), on a client without structured replies (simple replies only).
    @Test func errorsAndFlagsFollowTheProtocolDocument() throws {
        let dir = try TestSupport.makeTempDir("nbd-proto"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/p.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        let b = try NbdServerProcess.blockscope(img, dir: dir, ["--write"])
        let c = try RawNbdClient(socket: b.socket)
        let size = try c.handshake()
        // SEND_DF "MUST [be left] clear if structured replies have not been negotiated".
        #expect(c.transmissionFlags & (1 << 7) == 0, "flags 0x\(String(c.transmissionFlags, radix: 16))")
        #expect(c.transmissionFlags & (1 << 6) != 0)                                          // WRITE_ZEROES still offered
        let four = [UInt8](repeating: 7, count: 4096)
        #expect(c.request(type: 1, flags: 1 << 2, handle: 1, offset: 0, length: 4096, payload: four) == 22) // DF on WRITE
        #expect(c.request(type: 0, flags: 1 << 2, handle: 2, offset: 0, length: 4096) == 22)  // DF without SEND_DF
        #expect(c.request(type: 0, flags: 1 << 3, handle: 3, offset: 0, length: 4096) == 22)  // REQ_ONE on READ
        #expect(c.request(type: 1, flags: 1 << 1, handle: 4, offset: 0, length: 4096, payload: four) == 22) // NO_HOLE on WRITE
        #expect(c.request(type: 0, handle: 5, offset: 0, length: 33 << 20) == 22)              // read over the maximum
        #expect(c.request(type: 4, handle: 6, offset: size - 4096, length: 8192) == 22)        // trim past the end
        #expect(c.request(type: 0, handle: 7, offset: size, length: 1) == 22)                  // read past the end
        #expect(c.request(type: 1, handle: 8, offset: size - 1, length: 2, payload: [1, 2]) == 28) // write past the end: ENOSPC
        #expect(c.request(type: 6, handle: 9, offset: size - 1, length: 2) == 28)              // write-zeroes past the end
        // The connection is still in step: FUA is valid on any command, and data reads back.
        #expect(c.request(type: 1, flags: 1, handle: 10, offset: 8192, length: 4096, payload: four) == 0)
        #expect(c.request(type: 0, flags: 1, handle: 11, offset: 8192, length: 4, readsData: true) == 0)
        c.close()
        // A client with structured replies is offered DF, as by qemu-nbd.
        #expect(try nbdinfoFacts(b.uri).contains("can_df: true"))
        #expect(b.stop() == 0)
    }

    @Test func readOnlyExportRefusesWritesWithEPERM() throws {
        let dir = try TestSupport.makeTempDir("nbd-ro"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/r.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "4M"])
        let b = try NbdServerProcess.blockscope(img, dir: dir)
        let c = try RawNbdClient(socket: b.socket)
        _ = try c.handshake()
        #expect(c.request(type: 1, handle: 1, offset: 0, length: 8, payload: [UInt8](repeating: 9, count: 8)) == 1)
        #expect(c.request(type: 4, handle: 2, offset: 0, length: 4096) == 1)
        #expect(c.request(type: 0, handle: 3, offset: 0, length: 8, readsData: true) == 0)
        #expect(b.stop() == 0)
    }

    @Test func sigtermDrainsInFlightWritesFlushesAndExitsZero() throws {
        let dir = try TestSupport.makeTempDir("nbd-term"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/t.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        let b = try NbdServerProcess.blockscope(img, dir: dir, ["--write", "--stats", "--stats-interval", "0.2"])
        let job = try BackgroundProcess("fio", ["--name=busy", "--thread", "--ioengine=nbd", "--uri=\(b.uri)", "--rw=randwrite", "--bs=16k",
                                                "--iodepth=32", "--size=64M", "--time_based", "--runtime=120", "--output=/dev/null"])
        #expect(waitForWrites(b), "no writes seen: \(b.log)")
        #expect(b.stop() == 0, "\(b.log)")
        job.kill(SIGKILL)
        job.wait()
        #expect(b.log.contains("SIGTERM"))
        #expect(b.log.contains("stopped: image flushed and closed"))
        #expect(!FileManager.default.fileExists(atPath: b.socket))
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText)")
        // The image lock is gone: qemu-io can open it for writing.
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 1 0 4k"])
    }

    @Test func tcpListensOnLoopbackByDefault() throws {
        let dir = try TestSupport.makeTempDir("nbd-tcp"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/t.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "1M"])
        let port = 20000 + Int(getpid() % 20000)
        let p = try BackgroundProcess(TestSupport.blockscopeBinary, ["serve", img, "--port", "\(port)"], stderrPath: dir + "/log")
        defer { p.kill(SIGTERM); p.wait() }
        var log = ""
        Progress.wait(interval: 0.02, child: p) {
            log = (try? String(contentsOfFile: dir + "/log", encoding: .utf8)) ?? ""
            return log.contains("serving")
        }
        #expect(log.contains("nbd://127.0.0.1:\(port)/"), "\(log)")
        let facts = try nbdinfoFacts("nbd://127.0.0.1:\(port)/")
        #expect(facts.contains("export-size: 1048576 (1M)"))
        p.kill(SIGTERM)
        #expect(p.wait() == 0)
    }
}

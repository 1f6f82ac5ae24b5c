import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// A served write with NBD's FUA flag is one request: one id, one completion, counted once,
/// its engine time covering its write and its flush; the flush still runs (under the
/// write's id) before the reply.
@Suite(.serialized) struct ServedTruthFuaTests {
    /// How many connections the server has logged as ended.
    static func disconnects(_ s: ServedApp) -> Int {
        s.log.all.filter { $0.contains(" disconnected: ") }.count
    }

    /// The `(N requests)` of every disconnect line of the server's log, summed.
    static func loggedRequests(_ s: ServedApp) -> Int {
        s.log.all.reduce(0) { n, l in
            guard l.contains(" disconnected: "), let open = l.lastIndex(of: "("), let sp = l[open...].firstIndex(of: " ") else { return n }
            return n + (Int(l[l.index(after: open)..<sp]) ?? 0)
        }
    }

    @Test("python3-nbd: N FUA writes, M plain writes, K flushes are N+M writes, K flushes, N+M+K completed; each FUA write flushes under its own id",
          arguments: ["raw", "qcow2", "vhdx"])
    func fuaWritesAreOneRequest(format: String) throws {
        let f = try TuiFixture("served-fua-\(format)")
        let img = f.dir + "/s.\(format)"
        try TestSupport.qemuImg(["create", "-q", "-f", format, img, "16M"])
        let app = try f.app(img, write: true)
        let served = try ServedApp(app, socket: f.dir + "/s.sock")
        let n = 5, m = 3, k = 2
        let script = f.dir + "/fua.py"
        try """
        import nbd, sys
        h = nbd.NBD()
        h.connect_uri(sys.argv[1])
        assert h.can_fua(), "the export does not advertise FUA"
        for i in range(\(n)):
            h.pwrite(bytes([0xa1]) * 65536, i * 65536, nbd.CMD_FLAG_FUA)
        for i in range(\(m)):
            h.pwrite(bytes([0xb2]) * 65536, (1 << 20) + i * 65536)
        for i in range(\(k)):
            h.flush()
        h.shutdown()
        print("ok", flush=True)
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let py = try TestSupport.run("/usr/bin/python3", [script, served.uri])
        #expect(py.status == 0 && py.stdoutText.contains("ok"), "\(py.stdoutText) \(py.stderr)")
        let total = UInt64(n + m + k)
        pumpUntil(app) { ServedTruthTests.served(app).completed >= total && app.state.inFlightSnapshot.isEmpty && Self.loggedRequests(served) > 0 }
        let q = ServedTruthTests.served(app)
        #expect(Self.loggedRequests(served) == Int(total), "\(served.log.all)")
        #expect(q.completed == total && q.writes == UInt64(n + m) && q.flushes == UInt64(k) && q.errors == 0, "\(q)")
        #expect(q.writeBytes == UInt64(n + m) * 65536, "\(q)")
        #expect(q.engine.count == total && q.endToEnd.count == total, "\(q)")
        let engineP50 = try #require(q.engine.percentile(50)), e2eP50 = try #require(q.endToEnd.percentile(50))
        #expect(engineP50 <= e2eP50, "engine p50 \(engineP50) ns > end-to-end p50 \(e2eP50) ns")
        #expect(q.engine.maxNs <= q.endToEnd.maxNs, "\(q)")

        // The event log: one acceptance and one completion per request; each FUA write's
        // flush runs under its own id (a FUA flush phase, then its fsync SQE), never as a
        // request of its own.
        let log = app.state.live.log
        func id(_ l: String) -> String? { l.hasPrefix("req 0x") ? l.split(separator: ":").first.map(String.init) : nil }
        let fuaIDs = Set(log.filter { $0.contains(": FUA flush: ") }.compactMap(id))
        #expect(fuaIDs.count == n, "\(log.joined(separator: "\n"))")
        #expect(log.filter { $0.contains(": guest write ") && $0.contains(" accepted by queue") }.count == n + m)
        #expect(log.filter { $0.contains(": guest fsync ") && $0.contains(" accepted by queue") }.count == k)
        #expect(log.filter { $0.contains(": guest write completed ok") }.count == n + m)
        #expect(log.filter { $0.contains(": guest fsync completed ok") }.count == k)
        for r in fuaIDs {
            let mine = log.filter { id($0) == r }
            let phase = mine.firstIndex { $0.contains(": FUA flush: ") } ?? -1
            let done = mine.firstIndex { $0.contains(": guest write completed ok") } ?? -1
            #expect(mine.filter { $0.contains(": guest ") && $0.contains(" accepted by queue") }.count == 1, "\(mine)")
            #expect(!mine.contains { $0.contains("guest fsync") }, "\(mine)")
            #expect(phase >= 0 && done > phase, "\(mine)")
            #expect(mine.contains { $0.contains("flush complete: data and metadata are stable") }, "\(mine)")
            // The durable part: the fsync SQE of this request's flush, after its data part.
            let sqe = mine.firstIndex { $0.contains(": SQE fdatasync ") || $0.contains(": SQE fsync ") } ?? -1
            #expect(sqe > phase && sqe < done, "\(mine)")
        }
        // The data, read back by qemu-io through the same export.
        let back = try TestSupport.run("qemu-io", ["-f", "raw", served.uri, "-c", "read -P 0xa1 0 \(n * 64)k", "-c", "read -P 0xb2 1M \(m * 64)k"])
        #expect(back.status == 0 && !back.stdoutText.contains("fail"), "\(back.stdoutText)")
        served.stop()
        app.shutdown()
        if format == "qcow2" {
            let check = try TestSupport.qemuImg(["check", img])
            #expect(check.status == 0, "\(check.stdoutText)")
        }
    }

    @Test("a FUA NO_HOLE write-zeroes of 3 MiB (three 1 MiB engine writes, parts of one request): one write-zeroes counted, one FUA flush, after all three chunks completed")
    func fuaNoHoleZeroesFlushAfterEveryChunk() throws {
        let f = try TuiFixture("served-fua-nohole")
        let img = f.dir + "/s.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "16M"])
        try TestSupport.qemuIo(img, format: "raw", ["write -P 0x66 1M 3M"])
        let app = try f.app(img, write: true)
        let served = try ServedApp(app, socket: f.dir + "/s.sock")
        let script = f.dir + "/z.py"
        try """
        import nbd, sys
        h = nbd.NBD()
        h.connect_uri(sys.argv[1])
        h.zero(3 << 20, 1 << 20, nbd.CMD_FLAG_FUA | nbd.CMD_FLAG_NO_HOLE)
        h.shutdown()
        print("ok", flush=True)
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let py = try TestSupport.run("/usr/bin/python3", [script, served.uri])
        #expect(py.status == 0 && py.stdoutText.contains("ok"), "\(py.stdoutText) \(py.stderr)")
        pumpUntil(app) { Self.loggedRequests(served) > 0 && app.state.inFlightSnapshot.isEmpty }
        pumpUntil(app) { ServedTruthTests.served(app).completed >= 1 }
        let q = ServedTruthTests.served(app)
        #expect(Self.loggedRequests(served) == 1, "\(served.log.all)")
        #expect(q.completed == 1 && q.zeroes == 1 && q.writes == 0 && q.writeBytes == 0 && q.errors == 0, "\(q)")
        let log = app.state.live.log
        let fua = log.filter { $0.contains(": FUA flush: ") }
        #expect(fua.count == 1, "\(log.joined(separator: "\n"))")
        let id = fua.first?.split(separator: ":").first.map(String.init) ?? "none"
        let mine = log.filter { $0.hasPrefix(id + ":") }
        #expect(mine.filter { $0.contains(" accepted by queue") } == ["\(id): guest zero 0x100000+3145728 accepted by queue 8"], "\(mine)")
        let flushAt = mine.firstIndex { $0.contains(": FUA flush: ") } ?? -1
        // The three chunks' CQEs (1 MiB each), all before the flush; the one completion after it.
        let cqes = mine.indices.filter { mine[$0].contains(": CQE user_data ") && mine[$0].contains(": 1048576 bytes") }
        #expect(cqes.count == 3 && cqes.allSatisfy { $0 < flushAt }, "\(mine)")
        let done = mine.indices.filter { mine[$0].contains(": guest zero completed ok") }
        #expect(done.count == 1 && (done.first ?? -1) > flushAt, "\(mine)")
        #expect(!mine.contains { $0.contains(": guest write ") }, "\(mine)")
        #expect(mine.contains { $0.contains("flush complete: data and metadata are stable") }, "\(mine)")
        let back = try TestSupport.run("qemu-io", ["-f", "raw", "-c", "read -P 0 1M 3M", served.uri])
        #expect(back.status == 0 && !back.stdoutText.contains("fail"), "\(back.stdoutText)")
        served.stop()
        app.shutdown()
    }

    @Test("qemu-io's write -z 4M over nbd+unix (one WRITE_ZEROES with NO_HOLE, written as four 1 MiB engine writes) and nbdsh's zero of 3 MiB with NO_HOLE: each one write-zeroes, its length exact",
          arguments: ["raw", "qcow2"])
    func noHoleWriteZeroesIsOneRequest(format: String) throws {
        let f = try TuiFixture("served-nohole-\(format)")
        let img = f.dir + "/s.\(format)"
        try TestSupport.qemuImg(["create", "-q", "-f", format, img, "16M"])
        try TestSupport.qemuIo(img, format: format, ["write -P 0x5a 0 16M"])
        let app = try f.app(img, write: true)
        let served = try ServedApp(app, socket: f.dir + "/s.sock")
        // qemu's NBD client sends NO_HOLE for a write -z without -u (no unmap allowed).
        let r = try TestSupport.run("qemu-io", ["-f", "raw", served.uri, "-c", "write -z 1M 4M"])
        #expect(r.status == 0 && !r.stdoutText.contains("fail"), "\(r.stdoutText) \(r.stderr)")
        // nbdsh is `python3 -m nbd`; the system python3 has libnbd's module.
        let nbdsh = try TestSupport.run("/usr/bin/python3", ["-m", "nbd", "-u", served.uri, "-c", "h.zero(3 << 20, 8 << 20, nbd.CMD_FLAG_NO_HOLE)"])
        #expect(nbdsh.status == 0, "\(nbdsh.stdoutText) \(nbdsh.stderr)")
        // Both clients' "disconnected" lines (with their request counts): waiting for two
        // requests was met by qemu-io's line alone (its write-zeroes and flush) and the
        // count then missed nbdsh's request (3 completed, 2 logged, under load).
        pumpUntil(app) { Self.disconnects(served) >= 2 && app.state.inFlightSnapshot.isEmpty }
        pumpUntil(app) { ServedTruthTests.served(app).completed >= UInt64(Self.loggedRequests(served)) }
        let q = ServedTruthTests.served(app)
        // Every request the clients sent, counted once: two write-zeroes, and qemu-io's flushes.
        #expect(q.completed == UInt64(Self.loggedRequests(served)), "\(q) \(served.log.all)")
        #expect(q.zeroes == 2 && q.writes == 0 && q.writeBytes == 0 && q.discards == 0 && q.errors == 0, "\(q)")
        #expect(q.completed == 2 + q.flushes, "\(q)")
        let log = app.state.live.log
        let accepted = log.filter { $0.contains(": guest zero ") && $0.contains(" accepted by queue") }
        #expect(accepted.count == 2, "\(log.joined(separator: "\n"))")
        #expect(accepted.contains { $0.contains(": guest zero 0x100000+4194304 accepted") }, "\(accepted)")
        #expect(accepted.contains { $0.contains(": guest zero 0x800000+3145728 accepted") }, "\(accepted)")
        #expect(log.filter { $0.contains(": guest zero completed ok") }.count == 2, "\(log.joined(separator: "\n"))")
        #expect(!log.contains { $0.contains(": guest write ") }, "\(log.joined(separator: "\n"))")
        let back = try TestSupport.run("qemu-io", ["-f", "raw", served.uri, "-c", "read -P 0x5a 0 1M", "-c", "read -P 0 1M 4M",
                                                   "-c", "read -P 0x5a 5M 3M", "-c", "read -P 0 8M 3M", "-c", "read -P 0x5a 11M 5M"])
        #expect(back.status == 0 && !back.stdoutText.contains("fail"), "\(back.stdoutText)")
        served.stop()
        app.shutdown()
        if format == "qcow2" {
            let check = try TestSupport.qemuImg(["check", img])
            #expect(check.status == 0, "\(check.stdoutText)")
        }
        // The data, read by qemu-img from the file itself: zeroes where the clients zeroed.
        let cmp = try TestSupport.run("qemu-io", ["-f", format, "-r", img, "-c", "read -P 0 1M 4M", "-c", "read -P 0 8M 3M", "-c", "read -P 0x5a 5M 3M"])
        #expect(cmp.status == 0 && !cmp.stdoutText.contains("fail"), "\(cmp.stdoutText)")
    }

    @Test("qemu-io's writethrough write (FUA) over nbd+unix: the completion count is the server's request count, one write")
    func qemuIoFuaWrite() throws {
        let f = try TuiFixture("served-fua-qemu-io")
        let img = f.dir + "/s.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "16M"])
        let app = try f.app(img, write: true)
        let served = try ServedApp(app, socket: f.dir + "/s.sock")
        let r = try TestSupport.run("qemu-io", ["-f", "raw", "-c", "write -P 0xab 1M 64k", served.uri])
        #expect(r.status == 0 && !r.stdoutText.contains("fail"), "\(r.stdoutText) \(r.stderr)")
        pumpUntil(app) { Self.loggedRequests(served) > 0 && app.state.inFlightSnapshot.isEmpty }
        pumpUntil(app) { ServedTruthTests.served(app).completed >= UInt64(Self.loggedRequests(served)) }
        let q = ServedTruthTests.served(app)
        #expect(q.completed == UInt64(Self.loggedRequests(served)) && q.writes == 1 && q.writeBytes == 65536 && q.errors == 0, "\(q) \(served.log.all)")
        #expect(q.engine.maxNs <= q.endToEnd.maxNs, "\(q)")
        let back = try TestSupport.run("qemu-io", ["-f", "raw", "-c", "read -P 0xab 1M 64k", served.uri])
        #expect(back.status == 0 && !back.stdoutText.contains("fail"), "\(back.stdoutText)")
        served.stop()
        app.shutdown()
    }
}

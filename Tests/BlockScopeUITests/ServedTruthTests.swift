import BlockCore
import BlockServe
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// An NBD server on the app's disk wired as `tui --serve` wires it: clients' events through
/// the app's step gate, their queues in the app's in-flight registry.
final class ServedApp: @unchecked Sendable {
    let server: NbdServer
    let socket: String
    private let done = DispatchSemaphore(value: 0)
    /// The server's log lines.
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ l: String) { lock.lock(); lines.append(l); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
    }
    let log = Lines()

    /// The libnbd/qemu URI of the export.
    var uri: String { "nbd+unix:///?socket=\(socket)" }

    init(_ app: TUIApp, socket: String) throws {
        guard let disk = app.state.image.disk else { throw TestFailure("the image has no I/O") }
        self.socket = socket
        let export = NbdExport(disk: disk, eventSink: app.eventSink, inFlightRegistry: app.inFlightRegistry)
        let lines = log
        server = try NbdServer(export: export, address: .unix(path: socket), log: { lines.append($0) })
        server.queueIDs = 8..<16
        try server.listen()
        Thread { [self] in
            try? server.run(handleSignals: false)
            done.signal()
        }.start()
    }

    /// Stops the server and waits until every client thread has ended.
    func stop() {
        server.stop()
        done.wait()
    }
}

/// Issue 21: a served client's requests are live in the views exactly as a job's: the
/// In-flight view lists what the engine holds for an NBD client (its name and cookie), the
/// counts equal the client's own, and step mode holds a served request like any other.
@Suite(.serialized) struct ServedTruthTests {
    /// The served queues' figures, all connections together.
    static func served(_ app: TUIApp) -> QueueFigures {
        var f = QueueFigures()
        for q in app.state.queueRates.queues where q.name.hasPrefix("nbd ") { f.merge(q.figures) }
        return f
    }

    @Test("fio's nbd engine at QD32: In-flight shows 1...32 held while it runs and 0 after; the completion count is fio's own")
    func fioQD32() throws {
        let f = try TuiFixture("served-fio")
        let img = f.dir + "/s.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "256M"])
        let app = try f.app(img, write: true)
        let served = try ServedApp(app, socket: f.dir + "/s.sock")
        let json = f.dir + "/fio.json"
        let fio = try BackgroundProcess("fio", ["--name=w", "--ioengine=nbd", "--uri=\(served.uri)", "--iodepth=32", "--rw=randwrite",
                                                "--bs=4k", "--size=256M", "--number_ios=20000", "--output-format=json", "--output=\(json)"],
                                        stdoutPath: f.dir + "/fio.out", stderrPath: f.dir + "/fio.err")
        app.selectView(named: "in-flight")
        var most = 0, sawHeld = false, frame = ""
        let ended = Progress.wait(interval: 0.002) {
            app.pump()
            let n = app.state.inFlightSnapshot.count
            most = max(most, n, app.state.inFlightPeak)
            if n > 0 && !sawHeld {
                sawHeld = true
                frame = app.render(width: 80, height: 24).text
                #expect(frame.contains("in flight \(n) (held by the engine now"), "\(frame)")
            }
            return fio.hasExited
        }
        #expect(ended, "fio did not finish")
        #expect(fio.wait() == 0, "fio: \((try? String(contentsOfFile: f.dir + "/fio.err", encoding: .utf8)) ?? "")")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        let job = (report?["jobs"] as? [[String: Any]])?.first
        let fioIos = ((job?["write"] as? [String: Any])?["total_ios"] as? NSNumber)?.uint64Value ?? 0
        #expect(fioIos == 20000, "fio's report: \(String(describing: job?["write"]))")
        // After the client: nothing held, and the count is the client's.
        let settled = Progress.wait { app.pump(); return app.state.inFlightSnapshot.isEmpty && Self.served(app).completed >= fioIos }
        #expect(settled)
        #expect(sawHeld, "no request was ever seen in flight while fio ran at QD32")
        #expect(most <= 32, "\(most) requests in flight (or at the peak between two frames) for a client with iodepth 32")
        #expect(frame.contains("nbd ") && frame.contains(" unix cookie 0x"), "\(frame)")
        let figures = Self.served(app)
        #expect(figures.writes == fioIos && figures.completed == fioIos && figures.errors == 0, "\(figures)")
        #expect(figures.writeBytes == fioIos * 4096)
        #expect(figures.endToEnd.count >= fioIos && figures.engine.count == fioIos)
        #expect(app.state.queueRates.completed == fioIos)
        let inflight = app.render(width: 80, height: 24).text
        #expect(inflight.contains("in flight 0 (held by the engine now)   completed \(fioIos)"), "\(inflight)")
        app.selectView(named: "completions")
        app.handle(.char("w"))
        let c = app.render(width: 80, height: 24).text
        let all = c.split(separator: "\n").first { $0.hasPrefix("all ") }.map(String.init) ?? ""
        #expect(all.split(separator: " ").dropFirst().first.map(String.init) == String(fioIos), "\(c)")
        #expect(c.contains("nbd ") && c.contains("e2e p50") && c.contains("completed \(fioIos) in all"), "\(c)")
        served.stop()
        app.shutdown()
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText)")
    }

    @Test("qemu-io over nbd+unix: reads, writes and flushes counted as qemu-io sent them, bytes as it moved them")
    func qemuIoCounts() throws {
        let f = try TuiFixture("served-qemu-io")
        let img = f.dir + "/s.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "16M"])
        let app = try f.app(img, write: true)
        let served = try ServedApp(app, socket: f.dir + "/s.sock")
        let r = try TestSupport.run("qemu-io", ["-f", "raw", served.uri, "-c", "write -P 0x11 0 64k", "-c", "write -P 0x22 1M 128k",
                                                "-c", "read -P 0x11 0 64k", "-c", "read -P 0x22 1M 128k", "-c", "read -P 0x22 1M 4k", "-c", "flush"])
        #expect(r.status == 0 && !r.stdoutText.contains("fail"), "\(r.stdoutText) \(r.stderr)")
        pumpUntil(app) { Self.served(app).completed >= 6 && app.state.inFlightSnapshot.isEmpty }
        let q = Self.served(app)
        #expect(q.writes == 2 && q.writeBytes == 192 << 10, "\(q)")
        #expect(q.reads == 3 && q.readBytes == (64 + 128 + 4) << 10, "\(q)")
        #expect(q.flushes >= 1 && q.errors == 0, "\(q)")
        #expect(app.state.queueRates.queues.contains { $0.name.hasPrefix("nbd ") && $0.name.hasSuffix(" unix") && $0.clientTagName == "cookie" })
        served.stop()
        app.shutdown()
    }

    @Test("step mode holds a served request: In-flight shows it with its client and libnbd's cookie; c finishes it and the data arrives")
    func stepHoldsAServedRequest() throws {
        let f = try TuiFixture("served-step")
        let img = f.dir + "/s.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        let app = try f.app(img, write: true)
        let served = try ServedApp(app, socket: f.dir + "/s.sock")
        app.handle(.char("s"))
        #expect(app.state.stepMode)
        let script = f.dir + "/w.py"
        try """
        import nbd, sys
        h = nbd.NBD()
        h.connect_uri(sys.argv[1])
        c = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b'\\x5a' * 4096)), 0x30000)
        print("cookie", c, flush=True)
        while not h.aio_command_completed(c):
            h.poll(-1)
        h.shutdown()
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let client = try BackgroundProcess("/usr/bin/python3", [script, served.uri], stdoutPath: f.dir + "/py.out", stderrPath: f.dir + "/py.err")
        var cookie: UInt64?
        #expect(Progress.wait(child: client) {
            let out = (try? String(contentsOfFile: f.dir + "/py.out", encoding: .utf8)) ?? ""
            cookie = out.split(separator: "\n").first { $0.hasPrefix("cookie ") }.flatMap { UInt64($0.dropFirst(7)) }
            return cookie != nil
        }, "libnbd did not queue the write: \((try? String(contentsOfFile: f.dir + "/py.err", encoding: .utf8)) ?? "")")
        pumpUntil(app) { app.state.inFlightSnapshot.count == 1 && app.state.heldEvent != nil }
        let held = try #require(app.state.inFlightSnapshot.first)
        #expect(held.op == .write && held.offset == 0x30000 && held.length == 4096)
        #expect(held.clientTag == cookie && held.client?.hasPrefix("nbd ") == true && held.queue >= 8)
        app.selectView(named: "in-flight")
        let frame = app.render(width: 80, height: 24).text
        #expect(frame.contains("in flight 1 (held by the engine now)") && frame.contains("cookie \(hex(cookie ?? 0))"), "\(frame)")
        #expect(!client.hasExited, "the client got its reply while the gate held its request")
        app.handle(.char("c"))
        // The completion event passed the gate; the gate then holds the queue's next event
        // (its CQ drain), before the queue hands the completion back: still held.
        pumpUntil(app) { app.state.status.text.contains("completed (c)") && app.state.live.completedRequests == 1 }
        app.handle(.char(" "))
        #expect(!app.state.stepMode)
        pumpUntil(app) { Self.served(app).writes == 1 }
        #expect(Progress.wait { client.hasExited })
        #expect(client.wait() == 0, "\((try? String(contentsOfFile: f.dir + "/py.err", encoding: .utf8)) ?? "")")
        pumpUntil(app) { app.state.inFlightSnapshot.isEmpty }
        let back = try TestSupport.run("qemu-io", ["-f", "raw", served.uri, "-c", "read -P 0x5a 0x30000 4k"])
        #expect(back.status == 0 && !back.stdoutText.contains("fail"), "\(back.stdoutText)")
        served.stop()
        app.shutdown()
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText)")
    }
}

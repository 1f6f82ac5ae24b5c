import BlockCore
import BlockServe
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// Every view readable at 80x24, continued: In-flight (held requests, a served client's
/// request, step mode with a held event, long event-log lines, the empty list), Completions
/// (an empty window, a TCP client's queue) and the damaged QCOW2 images of issue 21 (a
/// refcount set too high and one too low; an L2 table past the end of the file). The screen
/// model records every cut text; none may be cut.
@Suite(.serialized) struct Layout80x24LiveTests {
    /// Renders `app` at 80x24 and expects nothing cut; returns the screen.
    @discardableResult
    static func uncut(_ app: TUIApp, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> ScreenModel {
        let s = app.render(width: 80, height: 24)
        #expect(Layout80x24Tests.cuts(s).isEmpty, "\(what): \(Layout80x24Tests.cuts(s))\n\(s.text)", sourceLocation: sourceLocation)
        return s
    }

    /// The screen's rows joined with spaces (words wrapped over rows read as one text), runs
    /// of spaces narrowed to one.
    static func flat(_ s: ScreenModel) -> String {
        s.text.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }.joined(separator: " ")
    }

    @Test("a refcount too high and one too low: L1/L2, an opened L2 table, Refcounts (rows 5 and 6 whole) and the Map fit 80x24; the histogram counts references found up to check's image end")
    func refcountDamagedImageFits() throws {
        let f = try TuiFixture("layout80-rc")
        let img = try TruthfulWordsTests.refcountDamagedImage(f.dir)
        // A preallocated-looking tail: 16 MiB of zeroes past the image's end.
        let size = try #require(FileManager.default.attributesOfItem(atPath: img)[.size] as? UInt64)
        let fh = try FileHandle(forUpdating: URL(fileURLWithPath: img))
        try fh.truncate(atOffset: size + (16 << 20))
        try fh.close()
        let check = try TestSupport.qemuImg(["check", "-U", "--output=json", img])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(check.stdoutText.utf8)) as? [String: Any])
        let end = try #require((json["image-end-offset"] as? NSNumber)?.uint64Value)
        let app = try f.app(img)
        app.handle(.char("2"))
        Self.uncut(app, "L1 table")
        app.handle(.enter)
        var s = Self.uncut(app, "L2 table of L1[0]")
        #expect(s.text.contains("L2[16]") && s.text.contains("refcount 2"), "\(s.text)")
        app.handle(.escape)
        app.handle(.char("3"))
        s = Self.uncut(app, "Refcounts")
        let counted = (end + 0xffff) / 0x10000
        #expect(s.text.contains("References found per host cluster, \(counted) clusters to the image end"), "qemu-img check: image end \(hex(end))\n\(s.text)")
        #expect(s.text.contains("1 ref █") && !s.text.contains("refcount 1 █") && !s.text.contains("refcount 0 █"), "the histogram's bars count references, not refcounts: \(s.text)")
        // Both rows whole as they first appear (neither selected), then each selected.
        for w in ["LEAKED (1 extra) COPIED flag wrong for refcount 2", "OVER-REFERENCED (1 references, refcount 0) COPIED flag wrong for refcount 0"] {
            #expect(Self.flat(s).contains(w), "'\(w)' not whole\n\(s.text)")
        }
        for (cluster, words) in [(5, ["LEAKED (1 extra)", "COPIED flag wrong for refcount 2"]), (6, ["OVER-REFERENCED (1 references, refcount 0)"])] {
            _ = app.currentView.goto(UInt64(cluster) << 16, app.state)
            s = Self.uncut(app, "Refcounts at cluster \(cluster)")
            for w in words { #expect(Self.flat(s).contains(w), "cluster \(cluster): '\(w)' not whole\n\(s.text)") }
        }
        app.handle(.char("4"))
        for g in [UInt64(1) << 20, 0, 32 << 20] {
            _ = app.currentView.goto(g, app.state)
            s = Self.uncut(app, "Map at guest \(hex(g))")
            for item in ["header", "free", "cursor (letter = kind)"] { #expect(s.text.contains(item), "legend lost '\(item)'\n\(s.text)") }
        }
        for key: Character in ["1", "6"] {
            app.handle(.char(key))
            Self.uncut(app, "view \(key)")
        }
        app.shutdown()
    }

    @Test("a truncated QCOW2 (its L2 table past the end of the file): the L1 row, the status after Enter, Refcounts and the Map fit 80x24 with the reader's error whole")
    func truncatedImageFits() throws {
        let f = try TuiFixture("layout80-trunc")
        let img = f.dir + "/t.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0xab 1M 128k"])
        let l2 = try #require(Qcow2Structure(path: img).l1.first) & Qcow2Entry.offsetMask
        let fh = try FileHandle(forUpdating: URL(fileURLWithPath: img))
        try fh.truncate(atOffset: l2)
        try fh.close()
        let app = try f.app(img)
        app.handle(.char("2"))
        var s = Self.uncut(app, "L1 table")
        #expect(Self.flat(s).contains("L2 table at \(hex(l2)) lies beyond the end of the file"), "\(s.text)")
        app.handle(.enter)
        s = Self.uncut(app, "the status after Enter on an unreadable L2 table")
        #expect(Self.flat(s).contains("the L2 table is unreadable"), "\(s.text)")
        #expect(s.text.contains("beyond the") && Self.flat(s).contains("end of the file"), "\(s.text)")
        for key: Character in ["3", "4", "1", "6"] {
            app.handle(.char(key))
            Self.uncut(app, "view \(key)")
        }
        app.handle(.char("4"))
        _ = app.currentView.goto(1 << 20, app.state)
        s = Self.uncut(app, "Map at the unreadable range")
        #expect(s.text.contains("free"), "\(s.text)")
        app.shutdown()
    }

    @Test("a VHD's BAT entries with their sector bitmap and data offsets fit 80x24, selected or not")
    func vhdBatFits() throws {
        let f = try TuiFixture("layout80-vhd")
        let img = f.dir + "/e.vhd"
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", img, "64M"])
        try TestSupport.qemuIo(img, format: "vpc", ["write -P 0x33 0 64k", "write -P 0x44 10M 64k"])
        let app = try f.app(img)
        app.handle(.char("5"))
        for k in 0..<8 {
            let s = Self.uncut(app, "BAT, \(k) down")
            #expect(s.text.contains("BAT[0]") && s.text.contains("bitmap at 0x") && s.text.contains("data at 0x"), "\(s.text)")
            app.handle(.down)
        }
        app.shutdown()
    }

    @Test("In-flight at 80x24: a QCOW2 write walked in step mode (held event, SQE in the kernel, long log lines), a served client's held requests and the empty list, nothing cut")
    func inFlightFits() throws {
        let f = try TuiFixture("layout80-inflight")
        let img = f.dir + "/fresh.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        let app = try f.app(img, write: true)
        app.handle(.char("7"))
        app.handle(.char("s"))
        app.execute(.write(offset: 0x12000, length: 4096, pattern: 0x5a))
        pumpUntil(app) { app.state.heldEvent != nil }
        var sawSqe = false, longLog = false
        for step in 0..<40 where app.state.live.completedRequests == 0 {
            let s = Self.uncut(app, "step \(step), held: \(app.state.heldEvent ?? "-")")
            if s.text.contains("in kernel, age") { sawSqe = true }
            if app.state.live.logTail(20).contains(where: { $0.count > 80 }) { longLog = true }
            stepOnce(app)
        }
        #expect(app.state.live.completedRequests == 1)
        #expect(sawSqe, "no SQE was seen in the kernel")
        #expect(longLog, "no event-log line was longer than 80 columns: the wrapping went untested")
        Self.uncut(app, "after the write")
        // A served client's requests held, one done with its reply pending, and a burst's peak.
        let now = monotonicNanos()
        var a = OutstandingRequest(queue: 9, userData: 0x8000_0000_0000_0003, op: .write, offset: 0x1230000, length: 65536, acceptedNs: now - 1_500_000)
        a.client = "nbd 2 127.0.0.1:51234"; a.clientTag = 0x1234_5678; a.receivedNs = now - 2_000_000
        var b = a
        b.userData = 0x8000_0000_0000_0004; b.op = .read; b.handedBackNs = now - 100_000
        app.state.inFlightSnapshot = [a, b]
        app.state.inFlightPeak = 32
        var s = Self.uncut(app, "served requests held")
        #expect(Self.flat(s).contains("sort: age (latency so far) (o)") && Self.flat(s).contains("up to 32 since the last frame"), "\(s.text)")
        #expect(Self.flat(s).contains("done, reply pending"), "\(s.text)")
        app.state.inFlightSnapshot = []
        s = Self.uncut(app, "nothing held")
        #expect(Self.flat(s).contains("a client between bursts"), "\(s.text)")
        app.handle(.escape)
        app.shutdown()
    }

    @Test("Completions at 80x24: an empty window and a TCP client's queue named whole (nbd N 127.0.0.1:PORT), in both windows")
    func completionsFit() throws {
        let f = try TuiFixture("layout80-compl")
        let img = f.dir + "/s.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "16M"])
        let app = try f.app(img, write: true)
        app.handle(.char("8"))
        var s = Self.uncut(app, "an empty window")
        #expect(Self.flat(s).contains("(w shows the whole job)"), "\(s.text)")
        guard let disk = app.state.image.disk else { throw TestFailure("the image has no I/O") }
        let export = NbdExport(disk: disk, eventSink: app.eventSink, inFlightRegistry: app.inFlightRegistry)
        // A free port: the first of a few that binds.
        var server: NbdServer?, port = 0
        for p in stride(from: 20000 + Int(getpid() % 20000), to: 65000, by: 997) where server == nil {
            let srv = try NbdServer(export: export, address: .tcp(host: "127.0.0.1", port: p), log: { _ in })
            srv.queueIDs = 8..<16
            if (try? srv.listen()) != nil { server = srv; port = p }
        }
        let srv = try #require(server)
        let done = DispatchSemaphore(value: 0)
        Thread { try? srv.run(handleSignals: false); done.signal() }.start()
        let r = try TestSupport.run("qemu-io", ["-f", "raw", "nbd://127.0.0.1:\(port)/", "-c", "write -P 0x11 0 64k", "-c", "read -P 0x11 0 64k", "-c", "flush"])
        #expect(r.status == 0 && !r.stdoutText.contains("fail"), "\(r.stdoutText) \(r.stderr)")
        pumpUntil(app) { app.state.queueRates.queues.contains { $0.name.contains("127.0.0.1:") && $0.figures.completed >= 3 } }
        let name = try #require(app.state.queueRates.queues.first { $0.name.contains("127.0.0.1:") }?.name)
        // The whole window (the last second may hold none of the client's requests).
        app.handle(.char("w"))
        s = Self.uncut(app, "a TCP client's queue")
        #expect(s.text.contains(name), "'\(name)' not whole\n\(s.text)")
        srv.stop()
        done.wait()
        pumpUntil(app) { app.state.queueRates.queues.contains { $0.name == name && !$0.open } }
        s = Self.uncut(app, "a closed TCP client's queue")
        #expect(s.text.contains(name + " (closed)"), "\(s.text)")
        app.shutdown()
    }
}

import Foundation
import Testing
import TestSupport

/// Issue 21 in a real terminal at 80x24: `blockscope tui IMAGE --write --serve unix:PATH`
/// under fio's own nbd engine at QD32. The In-flight view shows the client's requests held
/// (1...32) while fio runs and 0 after; Completions counts exactly the I/Os fio reports.
@Suite("TuiServeEndToEnd", .serialized) struct TuiServeEndToEndTests {
    /// The number in `in flight N (held by the engine now)` on a screen, if shown.
    static func inFlight(_ screen: String) -> Int? {
        guard let r = screen.range(of: "in flight ") else { return nil }
        return Int(screen[r.upperBound...].prefix { $0.isNumber })
    }

    @Test("fio nbd QD32 against tui --serve: In-flight 1...32 while it runs, 0 after; Completions' count is fio's total_ios")
    func fioAgainstTuiServe() throws {
        let dir = try TestSupport.makeTempDir("tui-serve-e2e")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/img.qcow2", sock = dir + "/s.sock"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "256M"])
        let s = try TuiEndToEndTests.Session(command: "cd \(dir) && \(TestSupport.blockscopeBinary) tui --write --no-mouse --serve unix:\(sock) img.qcow2", width: 80, height: 24)
        #expect(Progress.wait(interval: 0.02) { FileManager.default.fileExists(atPath: sock) }, "the TUI did not listen on \(sock)")
        try s.keys("7")
        try s.wait(for: "in flight 0 (held by the engine now)")
        let json = dir + "/fio.json"
        let fio = try BackgroundProcess("fio", ["--name=w", "--ioengine=nbd", "--uri=nbd+unix:///?socket=\(sock)", "--iodepth=32", "--rw=randwrite",
                                                "--bs=4k", "--size=256M", "--number_ios=60000", "--output-format=json", "--output=\(json)"],
                                        stdoutPath: dir + "/fio.out", stderrPath: dir + "/fio.err")
        var seen: [Int] = []
        var busyScreen = ""
        // Screens while fio runs, until one shows requests held (bounded by fio's own end).
        _ = Progress.wait(interval: 0.05) {
            guard let screen = try? s.screen(), let n = Self.inFlight(screen) else { return fio.hasExited }
            seen.append(n)
            // A whole frame: a capture can fall between two writes of one (see Session.wait).
            if n > 0 && busyScreen.isEmpty && screen.contains("nbd ") && screen.contains("cookie 0x") { busyScreen = screen }
            return !busyScreen.isEmpty || fio.hasExited
        }
        #expect(Progress.wait { fio.hasExited })
        #expect(fio.wait() == 0, "fio: \((try? String(contentsOfFile: dir + "/fio.err", encoding: .utf8)) ?? "")")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        let job = (report?["jobs"] as? [[String: Any]])?.first
        let total = ((job?["write"] as? [String: Any])?["total_ios"] as? NSNumber)?.intValue ?? -1
        #expect(total == 60000)
        let busy = seen.filter { $0 > 0 }
        #expect(!busy.isEmpty, "In-flight never showed a request held while fio ran at QD32 (counts seen: \(seen))")
        #expect(busy.allSatisfy { $0 <= 32 }, "counts seen: \(seen)")
        #expect(busyScreen.contains("nbd ") && busyScreen.contains("cookie 0x"), "\(busyScreen)")
        try s.wait(for: "in flight 0 (held by the engine now)   completed \(total) ")
        try s.keys("8")
        try s.keys("w")
        let c = try s.wait(for: "Window: whole job (w: last 1 s) · completed \(total) in all", and: ["\nall ", "nbd ", "e2e p50"])
        let all = c.split(separator: "\n").first { $0.hasPrefix("all ") }.map { $0.split(separator: " ").map(String.init) } ?? []
        #expect(all.count > 1 && all[1] == String(total), "\(c)")
        #expect(c.contains("nbd ") && c.contains("e2e p50"), "\(c)")
        // No line of the figures runs into the right edge of the 80 columns (a cut column or label).
        let tables = ["dir ", "all ", "write ", "queue ", "latency ", "nbd ", "count,", "eng:", "── Per queue", "── Window"]
        for line in c.split(separator: "\n") where line.count >= 80 && tables.contains(where: { line.hasPrefix($0) }) {
            Issue.record("a line fills the 80 columns (cut?): \(line)")
        }
        try s.keys("q")
        try s.wait(for: "TUI-EXIT=0")
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText)")
    }
}

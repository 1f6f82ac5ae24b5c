import Foundation
import Testing
import TestSupport

/// Drives the real `blockscope tui` in tmux at 160x50: every view renders, writes are
/// refused without --write, a resize to 80x24 keeps the footer, `q` exits 0 and restores the shell.
@Suite("TuiEndToEnd", .serialized) struct TuiEndToEndTests {
    final class Session {
        let name = "bs-tui-\(UUID().uuidString.prefix(8))"
        init(command: String, width: Int = 160, height: Int = 50) throws {
            let r = try TestSupport.run("tmux", ["new-session", "-d", "-s", name, "-x", "\(width)", "-y", "\(height)", "bash --norc --noprofile"])
            guard r.status == 0 else { throw TestFailure("tmux: \(r.stderr)") }
            try keys(literal: "PS1='SHELL> '; clear; " + command + "; echo TUI-EXIT=$?")
            try keys("Enter")
        }
        deinit { _ = try? TestSupport.run("tmux", ["kill-session", "-t", name]) }
        func keys(_ k: String...) throws { try TestSupport.run("tmux", ["send-keys", "-t", name] + k) }
        func keys(literal: String) throws { try TestSupport.run("tmux", ["send-keys", "-t", name, "-l", literal]) }
        func screen() throws -> String { try TestSupport.run("tmux", ["capture-pane", "-t", name, "-p"]).stdoutText }
        func resize(_ w: Int, _ h: Int) throws { try TestSupport.run("tmux", ["resize-window", "-t", name, "-x", "\(w)", "-y", "\(h)"]) }
        /// Waits for `text` to appear (up to the generous progress bound); returns the last screen.
        @discardableResult
        func wait(for text: String, timeout: Double = Progress.defaultTimeout) throws -> String {
            let deadline = Date().addingTimeInterval(timeout)
            var s = ""
            while Date() < deadline {
                s = try screen()
                if s.contains(text) { return s }
                usleep(100_000)
            }
            throw TestFailure("timed out waiting for '\(text)'; screen:\n\(s)")
        }
    }

    @Test func everyViewRendersResizeKeepsFooterAndQRestoresShell() throws {
        let dir = try TestSupport.makeTempDir("tui-e2e")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/e2e.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0xab 1M 128k", "write -z 4M 64k"])
        let themes = TestSupport.packageRoot.appendingPathComponent("themes").path
        let s = try Session(command: "BLOCKSCOPE_THEMES=\(themes) \(TestSupport.blockscopeBinary) tui \(img)")
        try s.wait(for: "8 Completions")
        let expected: [(String, String)] = [
            ("1", "virtual size"), ("2", "L1 table at 0x"), ("3", "Refcount table at"), ("4", "Guest space: 64.0 MiB"),
            ("5", "not a VHDX or VHD image"), ("6", "guest 0x0"), ("7", "in flight 0"), ("8", "CQ drains"),
        ]
        for (key, text) in expected {
            try s.keys(key)
            try s.wait(for: text)
        }
        try s.keys("Tab")
        try s.wait(for: "virtual size")
        // Help, then a refused write from the prompt.
        try s.keys("?")
        try s.wait(for: "blockscope keys")
        try s.keys("Escape")
        try s.keys(":")
        try s.keys(literal: "write 0 4k")
        try s.keys("Enter")
        try s.wait(for: "restart with --write")
        // Resize: the footer stays on the last line.
        try s.resize(80, 24)
        let small = try s.wait(for: "quit")
        let lines = small.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count >= 23)
        #expect(lines.prefix(24).last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty })?.contains("quit") == true)
        try s.keys("q")
        try s.wait(for: "TUI-EXIT=")
        let end = try s.wait(for: "SHELL>")
        #expect(end.contains("TUI-EXIT=0"))
        #expect(end.contains("SHELL>"))
        #expect(!end.contains("8 Completions"), "the alternate screen was not restored")
    }

    /// Proves issue 7's job acceptance on a QCOW2 image: a job started from the `:` prompt
    /// (random writes that allocate clusters) shows live SQEs in the In-flight view and
    /// percentiles in Completions, and after `q` `qemu-img check` finds the image clean.
    @Test(arguments: ["qcow2", "raw"])
    func jobFromPromptShowsLiveFiguresInInFlightAndCompletions(_ format: String) throws {
        let dir = try TestSupport.makeTempDir("tui-e2e-job")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/job.\(format)"
        try TestSupport.qemuImg(["create", "-q", "-f", format, img, "16M"])
        try "[w]\nrw=randwrite\nbsrange=4k-64k\nsize=8M\niodepth=8\nruntime=2\ntime_based=1\nfsync=32\nioengine=io_uring\n".write(toFile: dir + "/w.fio", atomically: true, encoding: .utf8)
        let s = try Session(command: "cd \(dir) && \(TestSupport.blockscopeBinary) tui --write --no-mouse job.\(format)")
        try s.wait(for: "8 Completions")
        try s.keys("7", ":")
        try s.keys(literal: "job w.fio")
        try s.keys("Enter")
        try s.wait(for: "job w.fio")
        try s.wait(for: "SQE writev user_data")
        try s.keys("8")
        try s.wait(for: "p50 ")
        let done = try s.wait(for: "done:")
        #expect(done.contains("I/Os"))
        try s.keys("q")
        try s.wait(for: "TUI-EXIT=0")
        if format == "qcow2" {
            let check = try TestSupport.qemuImg(["check", img])
            #expect(check.status == 0, "\(check.stdoutText) \(check.stderr)")
            #expect(check.stdoutText.contains("No errors were found"))
        }
    }
}

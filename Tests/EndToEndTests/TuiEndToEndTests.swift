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
        /// Waits for `text`, and every one of `others`, to be on one screen (up to the generous
        /// progress bound); returns that screen. A capture can fall between two writes of one
        /// frame (the new prompt drawn, the title not yet): a test that asserts on other parts
        /// of the returned screen names them in `others`, so the frame it reads is whole
        /// (the tour's test read "Step two" before "WAITING" once, under load).
        @discardableResult
        func wait(for text: String, and others: [String] = [], timeout: Double = Progress.defaultTimeout) throws -> String {
            let deadline = Date().addingTimeInterval(timeout)
            var s = ""
            while Date() < deadline {
                s = try screen()
                if s.contains(text) && others.allSatisfy({ s.contains($0) }) { return s }
                usleep(100_000)
            }
            throw TestFailure("timed out waiting for '\(([text] + others).joined(separator: "', '"))'; screen:\n\(s)")
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
            ("5", "no block allocation table"), ("6", "guest 0x0"), ("7", "in flight 0"), ("8", "CQ drains"),
            ("9", "No findings: the structure is consistent."),
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
        try s.wait(for: "TUI-EXIT=0")
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
        let done = try s.wait(for: "done:", and: ["I/Os"])
        #expect(done.contains("I/Os"))
        try s.keys("q")
        try s.wait(for: "TUI-EXIT=0")
        if format == "qcow2" {
            let check = try TestSupport.qemuImg(["check", img])
            #expect(check.status == 0, "\(check.stdoutText) \(check.stderr)")
            #expect(check.stdoutText.contains("No errors were found"))
        }
    }

    /// Issue 16 in a real terminal at 80x24: the help has a border and scrolls to every
    /// prompt command; Enter on a map cell opens Hex and Esc returns to the Map; `n` wraps
    /// a search; NO_COLOR shows in the title; `q` shows its progress and a final line.
    @Test func helpScrollsToEveryCommandAt80x24AndEscReturnsFromHexToMap() throws {
        let dir = try TestSupport.makeTempDir("tui-e2e-help")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/h.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "32M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0xab 1M 128k", "write -z 4M 64k"])
        let s = try Session(command: "NO_COLOR=1 \(TestSupport.blockscopeBinary) tui --write \(img)", width: 80, height: 24)
        try s.wait(for: "theme monochrome (NO_COLOR)")
        try s.keys("?")
        try s.wait(for: "blockscope keys and commands")
        var screens = try s.wait(for: "Esc close ┘")   // the bottom border: the whole box is drawn
        #expect(screens.contains("┌") && screens.contains("┘"))
        // Page down until the help's bottom border says "end", waiting for each page to show.
        func position(_ screen: String) -> String { screen.split(separator: "\n").first { $0.contains("lines ") }.map(String.init) ?? "" }
        var shown = position(screens)
        var pages = 0
        while !screens.contains(", end ·") && pages < 12 {
            try s.keys("PageDown")
            var now = try s.screen()
            Progress.wait(interval: 0.1) { now = (try? s.screen()) ?? now; return position(now) != shown }
            screens += now
            shown = position(now)
            pages += 1
        }
        let all = screens
        #expect(all.contains(", end ·"), "the help's end was not reached")
        for usage in ["write OFF LEN [PAT]", "read OFF LEN [PAT]", "zero OFF LEN", "discard OFF LEN", ":fsync", "sleep DURATION",
                      "job FILE.fio", "goto OFF", "view NAME", "theme NAME", "pause [TEXT]", ":help", ":quit"] {
            #expect(all.contains(usage), "'\(usage)' not in the help at 80x24")
        }
        try s.keys("Escape")
        try s.keys("4")
        try s.wait(for: "Guest space: 32.0 MiB")
        try s.keys("Right", "Right", "Enter")
        try s.wait(for: "Esc back to Map")
        try s.keys("Escape")
        try s.wait(for: "back to Map")
        try s.wait(for: "Guest space: 32.0 MiB")
        try s.keys("/")
        try s.keys(literal: "zero")
        try s.keys("Enter")
        try s.wait(for: "found zero at guest 0x400000")
        for _ in 0..<4 {
            try s.keys("n")
            if try s.screen().contains("search wrapped") { break }
            try s.wait(for: "found zero")
        }
        try s.wait(for: "search wrapped to the top: found zero at guest 0x400000")
        try s.keys("q")
        let end = try s.wait(for: "TUI-EXIT=0")
        #expect(end.contains("blockscope: closed h.qcow2 (read-write, data and metadata flushed)"), "\(end)")
        #expect(end.contains("TUI-EXIT=0"))
    }

    /// `sleep` paces a `blockscope run` script: the line of the write before the sleep is on
    /// screen while the one after it is not yet, and both come in script order.
    @Test func sleepPacesABlockscopeRunScript() throws {
        let dir = try TestSupport.makeTempDir("tui-e2e-sleep")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/p.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "4M"])
        // A long sleep, so "not yet" holds however slowly the screen is polled; the session is killed after.
        try "write 0 64k 0x11\nsleep 60s\nwrite 64k 64k 0x22\n".write(toFile: dir + "/held.script", atomically: true, encoding: .utf8)
        do {
            let held = try Session(command: "\(TestSupport.blockscopeBinary) run --write \(img) \(dir)/held.script")
            let first = try held.wait(for: "wrote 65536/65536 bytes at offset 0x0")
            #expect(!first.contains("offset 0x10000"), "the write after 'sleep 60s' ran before it:\n\(first)")
        }
        try "write 0 64k 0x11\nsleep 200ms\nwrite 64k 64k 0x22\nsleep 100ms\nread 0 64k 0x11\n".write(toFile: dir + "/paced.script", atomically: true, encoding: .utf8)
        let s = try Session(command: "\(TestSupport.blockscopeBinary) run --write \(img) \(dir)/paced.script")
        let done = try s.wait(for: "TUI-EXIT=0")
        #expect(done.contains("TUI-EXIT=0"), "\(done)")
        let lines = done.split(separator: "\n").map(String.init)
        let a = lines.firstIndex { $0.contains("wrote 65536/65536 bytes at offset 0x0") }
        let b = lines.firstIndex { $0.contains("wrote 65536/65536 bytes at offset 0x10000") }
        let c = lines.firstIndex { $0.contains("read 65536/65536 bytes at offset 0x0 (pattern 0x11 verified)") }
        #expect(a != nil && b != nil && c != nil, "\(done)")
        if let a, let b, let c { #expect(a < b && b < c, "out of order:\n\(done)") }
    }

    /// A click reported in SGR 1006 at column 250 (beyond X10's 223) moves the Map cursor.
    @Test func sgrMouseClickBeyondColumn223MovesTheMapCursor() throws {
        let dir = try TestSupport.makeTempDir("tui-e2e-mouse")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/m.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "32M"])
        let s = try Session(command: "\(TestSupport.blockscopeBinary) tui \(img)", width: 260, height: 40)
        try s.wait(for: "8 Completions")
        try s.keys("4")
        try s.wait(for: "Guest space: 32.0 MiB, 1 cell = 16.0 KiB")
        // Row 5, column 250 (1-based): the second grid row, cell 235 of 245 → cell 480.
        try s.keys(literal: "\u{1b}[<0;250;5M\u{1b}[<0;250;5m")
        try s.wait(for: "guest 0x780000+16.0 KiB")
        try s.keys("q")
        try s.wait(for: "TUI-EXIT=0")
    }

    /// A `tui --script` tour: `sleep` shows SLEEP in the title and the script goes on by
    /// itself; `pause TEXT` shows TEXT and holds the script until a key.
    @Test func scriptPausesForAKeyAndSleepsOnItsOwn() throws {
        let dir = try TestSupport.makeTempDir("tui-e2e-tour")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/t.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "8M"])
        try "view map\nsleep 1s\npause Step two: press a key for Hex\nview hex\n".write(toFile: dir + "/tour.script", atomically: true, encoding: .utf8)
        let s = try Session(command: "\(TestSupport.blockscopeBinary) tui --script \(dir)/tour.script \(img)")
        try s.wait(for: "Guest space: 8.00 MiB")
        let held = try s.wait(for: "Step two: press a key for Hex", and: ["press any key to continue", "WAITING"])
        #expect(held.contains("press any key to continue"))
        #expect(held.contains("WAITING"))
        #expect(!held.contains("guest 0x0   "), "the script went past the pause")
        try s.keys("x")
        try s.wait(for: "end of tour.script")
        try s.wait(for: "m guest/host")
        try s.keys("q")
        try s.wait(for: "TUI-EXIT=0")
    }
}

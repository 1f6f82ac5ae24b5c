import BlockCore
import BlockEngine
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// Issue 16: per-format legends, Overview wrapping, NO_COLOR, legible cursor and "written
/// now" cells, the prompt's command type and completion, and script pacing (sleep, pause).
@Suite("TuiLegendAndPacing") struct TuiLegendAndPacingTests {
    /// The legend rows of a Map drawn at 160x46 (the rows below the host grid).
    func legend(_ app: TUIApp) -> String {
        let s = draw(MapView(), app)
        return (40..<46).map { s.line($0) }.joined(separator: "\n")
    }

    @Test func vhdxMapShowsVhdxRegionKindsNotTheQcow2Legend() throws {
        let f = try TuiFixture("legend-vhdx")
        let p = f.dir + "/l.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", p, "16M"])
        try TestSupport.qemuIo(p, format: "vhdx", ["write -P 0x42 3M 64k"])
        let l = legend(try f.app(p))
        for word in ["header/region table/metadata", "log", "BAT", "sector bitmap", "payload"] {
            #expect(l.contains(word), "VHDX legend lacks '\(word)':\n\(l)")
        }
        for word in ["L1", "L2", "refcount", "snapshot", "compressed"] {
            #expect(!l.contains(word), "VHDX legend shows QCOW2's '\(word)':\n\(l)")
        }
    }

    @Test func vhdAndRawMapsHaveTheirOwnLegends() throws {
        let f = try TuiFixture("legend-vhd")
        let p = f.dir + "/d.vhd"
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", p, "16M"])
        try TestSupport.qemuIo(p, format: "vpc", ["write -P 0x24 2M 64k"])
        let vhd = legend(try f.app(p))
        #expect(vhd.contains("footer/dynamic header") && vhd.contains("BAT") && vhd.contains("sector bitmap") && vhd.contains("block data"), "\(vhd)")
        #expect(!vhd.contains("L2") && !vhd.contains("snapshot"), "\(vhd)")
        let raw = legend(try f.app(try f.raw()))
        #expect(raw.contains("data") && raw.contains("hole"), "\(raw)")
        #expect(!raw.contains("L1") && !raw.contains("header") && !raw.contains("BAT"), "\(raw)")
        let q = legend(try f.app(try f.qcow2()))
        #expect(q.contains("L2") && q.contains("refcount") && q.contains("snapshot"), "\(q)")
    }

    @Test func truncatedQcow2IsNotDressedUpAsAnImage() throws {
        let f = try TuiFixture("trunc")
        let good = try f.qcow2()
        let bytes = try TestSupport.readFile(good)
        let p = f.dir + "/cut.qcow2"
        try TestSupport.writeFile(p, [UInt8](bytes.prefix(0x28000)))   // header and refcounts, no L1 table
        let app = try f.app(p)
        for i in 1...8 {
            app.handle(.char(Character(String(i))))
            _ = app.render(width: 120, height: 40)
        }
        app.handle(.char("1"))
        let s = app.render(width: 160, height: 60)
        #expect(s.contains("I/O") || s.contains("beyond") || s.contains("error") || s.contains("unavailable"),
                "a truncated image should say what is wrong:\n\(s.text)")
    }

    @Test func overviewWrapsLongKeysAndValuesInsteadOfCuttingThem() throws {
        let f = try TuiFixture("ov-wrap")
        let p = try f.qcow2()
        try TestSupport.qemuImg(["snapshot", "-c", "a-snapshot-with-a-long-name", p])
        let app = try f.app(p)
        for width in [80, 160] {
            let v = OverviewView()
            var s = ScreenModel(width: width, height: 400)
            v.draw(&s, s.bounds, app.state)
            #expect(s.contains("compression-type"), "cut key at \(width):\n\(s.text)")
            #expect(!s.text.contains("compression-t\n") && !s.text.contains("compression-t "), "cut key at \(width)")
            #expect(s.contains("a-snapshot-with-a-long-name"), "snapshot name cut at \(width)")
            // The snapshot's date stays whole: year, time and zone on one line.
            let dateLine = (0..<400).map { s.line($0) }.first { $0.range(of: #"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d \+0000"#, options: .regularExpression) != nil }
            #expect(dateLine != nil, "no whole date at \(width):\n\(s.text.split(separator: "\n").filter { $0.contains("snapshot") || $0.contains("20") }.joined(separator: "\n"))")
        }
    }

    @Test func noColorSelectsMonochromeAndTheTitleSaysSo() throws {
        let f = try TuiFixture("nocolor")
        var o = TUIOptions(imagePath: try f.raw())
        o.noColor = true
        o.themeName = "default"
        let app = try TUIApp(options: o)
        #expect(app.theme.name == "monochrome")
        let title = app.render(width: 160, height: 40).line(0)
        #expect(title.contains("theme monochrome (NO_COLOR)"), "\(title)")
    }

    @Test func mapCursorAndWrittenCellsShowLettersNotBlocks() throws {
        let f = try TuiFixture("glyphs")
        let app = try f.app(try f.qcow2())
        app.state.live.apply(IoEvent(queue: 0, request: 1, .guestRequest(op: .write, offset: 1 << 20, length: 65536)))
        app.state.live.apply(IoEvent(queue: 0, request: 1, .guestCompleted(op: .write, userData: 1, result: 0, latencyNs: 1000)))
        let v = MapView()
        let s = draw(v, app)
        let cursor = s.cells(with: .selected).filter { $0.y < 40 }
        #expect(cursor.count == 1)
        let written = s.cells(with: .written).filter { $0.y < 40 }
        #expect(!written.isEmpty)
        for p in cursor + written {
            let ch = try #require(s[p.x, p.y]?.character)
            #expect("DCZB.H12RS!".contains(ch), "a block glyph '\(ch)' on a coloured background hides it")
        }
        // Monochrome draws "written now" in reverse video: a letter there is not an empty cell.
        let mono = try ThemeLoader.loadFile(TuiThemeTests.dir + "/monochrome.theme")
        #expect(mono.style(.written).attributes.contains(.reverse))
        #expect(written.allSatisfy { s[$0.x, $0.y]?.character != " " && s[$0.x, $0.y]?.character != "█" })
    }

    @Test func promptCommandsOwnTheUiWordsAndHandTheRestToTheEngine() throws {
        #expect(try PromptCommand.parse("goto 1M") == .goto(offset: 1 << 20))
        #expect(try PromptCommand.parse("view map") == .view(name: "map"))
        #expect(try PromptCommand.parse("theme light") == .theme(name: "light"))
        #expect(try PromptCommand.parse("pause Now look at the Map  # teacher's note") == .pause(text: "Now look at the Map"))
        #expect(try PromptCommand.parse("pause") == .pause(text: nil))
        #expect(try PromptCommand.parse("sleep 500ms") == .engine(.sleep(nanoseconds: 500_000_000)))
        #expect(try PromptCommand.parse("write 0 4k") == .engine(.write(offset: 0, length: 4096, pattern: 0xcd)))
        #expect(try PromptCommand.parse("  # only a comment") == nil)
        #expect(throws: BlockError.self) { try PromptCommand.parse("frobnicate 3") }
        #expect(throws: BlockError.self) { try PromptCommand.parse("goto") }
        // The engine's language has no UI words.
        #expect(throws: BlockError.self) { try CommandScript.parseLine("view map") }
        #expect(throws: BlockError.self) { try CommandScript.parseLine("pause") }
    }

    @Test func tabCompletesCommandsViewsThemesAndPaths() throws {
        let f = try TuiFixture("complete")
        try Data().write(to: URL(fileURLWithPath: f.dir + "/randwrite.fio"))
        try FileManager.default.createDirectory(atPath: f.dir + "/jobs", withIntermediateDirectories: true)
        let c = PromptCompleter(viewNames: ["overview", "l1l2", "map", "hex"], themeNames: ThemeLoader.bundledNames, directory: f.dir)
        #expect(c.complete("wri").text == "write ")
        #expect(c.complete("vi").text == "view ")
        #expect(c.complete("view m").text == "view map ")
        #expect(c.complete("theme ok").text == "theme okabe-ito ")
        #expect(c.complete("job ra").text == "job randwrite.fio ")
        #expect(c.complete("job jo").text == "job jobs/")
        let many = c.complete("s")
        #expect(many.candidates == ["sleep"] || many.text == "sleep ")
        let ambiguous = c.complete("")
        #expect(ambiguous.candidates.contains("write") && ambiguous.candidates.contains("pause"))
        #expect(c.suggestion("the") == "me")
        // In the app: Tab in the prompt completes and the candidates show above it.
        let app = try f.app(try f.raw())
        app.handle(.char(":"))
        app.handle(.char("d"))
        app.handle(.tab)
        #expect(app.promptState?.text == "discard ")
    }

    @Test func pauseHoldsTheScriptUntilAKey() throws {
        let f = try TuiFixture("pause")
        let script = f.dir + "/tour.script"
        try "pause Look at the Overview first\nview map\n".write(toFile: script, atomically: true, encoding: .utf8)
        var o = TUIOptions(imagePath: try f.raw())
        o.scriptPath = script
        o.themeName = TestSupport.packageRoot.appendingPathComponent("themes/default.theme").path
        let app = try TUIApp(options: o)
        for _ in 0..<5 { app.pump() }
        #expect(app.waitingPause == "Look at the Overview first")
        #expect(app.currentView is OverviewView)
        let s = app.render(width: 100, height: 30)
        #expect(s.contains("Look at the Overview first") && s.contains("press any key to continue"))
        app.handle(.char("x"))
        app.pump()
        #expect(app.waitingPause == nil)
        #expect(app.currentView is MapView)
    }

    @Test func sleepPacesTheScriptWithoutBlockingTheUi() throws {
        let f = try TuiFixture("sleep")
        let script = f.dir + "/paced.script"
        try "view map\nsleep 300ms\nview hex\n".write(toFile: script, atomically: true, encoding: .utf8)
        var o = TUIOptions(imagePath: try f.raw())
        o.scriptPath = script
        o.themeName = TestSupport.packageRoot.appendingPathComponent("themes/default.theme").path
        let app = try TUIApp(options: o)
        app.pump()
        #expect(app.currentView is MapView)
        #expect(app.state.status.text.contains("sleeping 300"))
        #expect(app.render(width: 120, height: 30).line(0).contains("SLEEP"))
        // The UI still answers keys while the script sleeps.
        app.handle(.char("?"))
        #expect(app.helpShown)
        app.handle(.escape)
        pumpUntil(app) { app.currentView is HexView }
        #expect(app.currentView is HexView)
    }

    @Test func quitReportsEachCloseStepAndAFinalLine() throws {
        let f = try TuiFixture("quit")
        let img = f.dir + "/q.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        let app = try f.app(img, write: true)
        app.execute(.write(offset: 0, length: 1 << 20, pattern: 0x33))
        var steps: [(Int, String)] = []
        app.shutdown { steps.append(($0, $1)) }
        #expect(steps.map(\.0) == [1, 2, 3, 4])
        #expect(steps[2].1 == "flushing metadata")
        #expect(app.closingLine?.hasPrefix("blockscope: closed q.qcow2 (read-write, data and metadata flushed) in ") == true, "\(app.closingLine ?? "nil")")
        // The frame drawn while closing names the step and its number.
        let frame = TUIApp.closingFrame(app.render(width: 100, height: 30), step: 3, label: "flushing metadata", elapsedNs: 2_000_000_000)
        #expect(frame.contains("flushing metadata… 3/5"))
        #expect(frame.contains("✓ stopping the job") && frame.contains("✓ finishing the running command"))
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText)")
    }
}

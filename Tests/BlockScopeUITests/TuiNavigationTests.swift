import BlockCore
import BlockEngine
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// Issue 16 without a terminal: the help overlay, the back-stack, n/N, goto in the view's
/// space with clamping, `m` to host locations, and status lines that belong to their view.
@Suite("TuiNavigation") struct TuiNavigationTests {
    /// Opens the help, pages to its end and returns every screen's text plus the last screen.
    func helpPages(_ app: TUIApp, width: Int, height: Int) -> (all: String, last: ScreenModel, pages: Int) {
        app.handle(.char("?"))
        var all = ""
        var s = app.render(width: width, height: height)
        var pages = 1
        all += s.text + "\n"
        while !s.contains(", end ·") && pages < 50 {
            app.handle(.pageDown)
            s = app.render(width: width, height: height)
            all += s.text + "\n"
            pages += 1
        }
        return (all, s, pages)
    }

    @Test(arguments: [(160, 50), (80, 24), (220, 60), (50, 12)])
    func helpHasABorderListsEveryKeyAndCommandAndScrollsToTheEnd(_ size: (Int, Int)) throws {
        let f = try TuiFixture("help")
        let app = try f.app(try f.qcow2())
        let (all, last, pages) = helpPages(app, width: size.0, height: size.1)
        #expect(app.helpShown)
        #expect(last.contains("┌") && last.contains("┘"), "no border at \(size)")
        #expect(last.contains(", end ·"), "the end is not reachable at \(size)")
        for c in PromptCommand.reference {
            #expect(all.contains(":" + c.usage), "':\(c.usage)' missing from the help at \(size)")
        }
        for k in ["General", "? / F1", "q, Ctrl-C", "n / N", "Esc", "Tab", "space", "m"] {
            #expect(all.contains(k), "'\(k)' missing from the help at \(size)")
        }
        if size.1 <= 24 { #expect(pages > 1, "80x24 should need scrolling") }
        if size.0 >= 160 { #expect(pages == 1, "at \(size) two columns show everything without scrolling") }
        // Home goes back to the top; any other key closes.
        app.handle(.home)
        #expect(app.render(width: size.0, height: size.1).contains("General"))
        app.handle(.escape)
        #expect(!app.helpShown)
    }

    @Test func escReturnsFromHexToTheViewEnterCameFromWithItsCursor() throws {
        let f = try TuiFixture("back")
        let app = try f.app(try f.qcow2())
        // Map: move the cursor, Enter opens Hex, Esc comes back with the cursor where it was.
        app.handle(.char("4"))
        _ = app.render(width: 160, height: 50)
        for _ in 0..<5 { app.handle(.right) }
        _ = app.render(width: 160, height: 50)
        let map = try #require(app.currentView as? MapView)
        let before = map.cursorDescription(app.state)
        app.handle(.enter)
        #expect(app.currentView is HexView)
        #expect(app.render(width: 160, height: 50).contains("Esc back to Map"))
        app.handle(.escape)
        #expect(app.currentView is MapView)
        _ = app.render(width: 160, height: 50)
        #expect(map.cursorDescription(app.state) == before)
        // L1/L2: Enter opens the L2 table, Enter on an entry opens Hex, Esc returns to the open table.
        app.handle(.char("2"))
        app.handle(.enter)
        let l = try #require(app.currentView as? L1L2View)
        #expect(l.openL1 == 0)
        for _ in 0..<16 { app.handle(.down) }
        app.handle(.enter)
        #expect((app.currentView as? HexView)?.offset == 16 << 16)
        app.handle(.escape)
        #expect(app.currentView is L1L2View && l.openL1 == 0)
        #expect(app.render(width: 160, height: 50).contains("L2 table of L1[0]"))
        // Refcounts: Enter opens a cluster's host bytes, Esc returns.
        app.handle(.char("3"))
        app.handle(.down)
        app.handle(.enter)
        #expect((app.currentView as? HexView)?.hostMode == true)
        app.handle(.escape)
        #expect(app.currentView is RefcountsView)
        // A tab switch starts afresh: Esc then stays put.
        app.handle(.char("1"))
        app.handle(.escape)
        #expect(app.currentView is OverviewView)
    }

    @Test func nAndShiftNMoveThroughMatchesAndSayWhenTheSearchWrapped() throws {
        let f = try TuiFixture("wrap")
        let app = try f.app(try f.qcow2())
        app.handle(.char("2"))
        app.handle(.enter)   // the L2 table of L1[0]: data at L2[16], L2[17], zero at L2[64]
        _ = app.render(width: 160, height: 50)
        app.handle(.char("/"))
        for c in "zero" { app.handle(.char(c)) }
        app.handle(.enter)
        #expect(app.state.status.text.contains("L2[64]"))
        #expect(!app.state.status.text.contains("wrapped"))
        app.handle(.char("n"))   // the only match: found again after wrapping
        #expect(app.state.status.text.contains("search wrapped"), "\(app.state.status.text)")
        #expect(app.state.status.text.contains("L2[64]"))
        app.handle(.char("/"))
        for c in "COPIED" { app.handle(.char(c)) }
        app.handle(.enter)
        #expect(app.state.status.text.contains("L2[16]"))
        app.handle(.char("n"))
        #expect(app.state.status.text.contains("L2[17]") && !app.state.status.text.contains("wrapped"))
        app.handle(.char("n"))
        #expect(app.state.status.text.contains("search wrapped") && app.state.status.text.contains("L2[16]"), "\(app.state.status.text)")
        app.handle(.char("N"))
        #expect(app.state.status.text.contains("search wrapped to the bottom") && app.state.status.text.contains("L2[17]"), "\(app.state.status.text)")
        // The Map wraps too.
        app.handle(.char("4"))
        _ = app.render(width: 160, height: 50)
        app.handle(.char("/"))
        for c in "zero" { app.handle(.char(c)) }
        app.handle(.enter)
        #expect(app.state.status.text.contains("found zero at guest 0x400000"), "\(app.state.status.text)")
        // The zero cluster spans a few cells; n walks them, then wraps back to the first.
        var presses = 0
        repeat { app.handle(.char("n")); presses += 1 } while !app.state.status.text.contains("wrapped") && presses < 8
        #expect(app.state.status.text.contains("search wrapped to the top: found zero at guest 0x400000"), "\(app.state.status.text)")
    }

    @Test func gotoPastTheEndSaysItWasClampedAndHostModeGoesToHostOffsets() throws {
        let f = try TuiFixture("clamp")
        let img = f.dir + "/small.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "32M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x11 0 64k"])
        let app = try f.app(img)
        app.handle(.char("6"))
        app.handle(.char("g"))
        #expect(app.promptState?.label == "goto guest ")
        for c in "64M" { app.handle(.char(c)) }
        app.handle(.enter)
        let hex = try #require(app.currentView as? HexView)
        #expect(hex.offset == (32 << 20) - 1)
        #expect(app.state.status.text.contains("clamped to the last byte"), "\(app.state.status.text)")
        #expect(app.state.status.text.contains("0x1ffffff"))
        #expect(app.state.status.role == .warning)
        // Host mode: g goes to a host offset.
        app.execute(.goto(offset: 0))
        app.handle(.char("m"))
        #expect(hex.hostMode)
        app.handle(.char("g"))
        #expect(app.promptState?.label == "goto host ")
        for c in "0x30008" { app.handle(.char(c)) }
        app.handle(.enter)
        #expect(hex.hostMode && hex.offset == 0x30008)
        #expect(app.state.status.text == "at host 0x30008")
        // Map and L1/L2 clamp to their last cell and cluster.
        app.handle(.char("4"))
        _ = app.render(width: 160, height: 50)
        app.execute(.goto(offset: 64 << 20))
        #expect(app.state.status.text.contains("clamped to the last cell"), "\(app.state.status.text)")
        app.handle(.char("2"))
        app.execute(.goto(offset: 64 << 20))
        #expect(app.state.status.text.contains("clamped to the last cluster, guest 0x1ff0000"), "\(app.state.status.text)")
        // A view without offsets hands goto to Hex, and Esc comes back.
        app.handle(.char("8"))
        app.execute(.goto(offset: 0x1000))
        #expect(app.currentView is HexView)
        app.handle(.escape)
        #expect(app.currentView is CompletionsView)
    }

    @Test func mJumpsToTheCompressedBytesOfACompressedCluster() throws {
        let f = try TuiFixture("m")
        let app = try f.app(try f.compressedQcow2())
        let q = try #require(app.state.image.inspector as? Qcow2Inspection)
        let e = try #require(q.l2Entry(forGuest: 2 << 20))
        #expect(q.type(of: e) == .compressed)
        let want = q.compressedExtent(e).offset
        #expect(want != 0)
        app.handle(.char("6"))
        app.execute(.goto(offset: (2 << 20) + 16))
        app.handle(.char("m"))
        let hex = try #require(app.currentView as? HexView)
        #expect(hex.hostMode)
        #expect(hex.offset == want, "m went to \(hex.offset), the compressed bytes are at \(want)")
        #expect(app.state.status.text.contains("compressed"))
        // m again returns to the guest offset it came from.
        app.handle(.char("m"))
        #expect(!hex.hostMode && hex.offset == (2 << 20) + 16)
        // An unallocated cluster has no data: m shows its L2 entry.
        app.execute(.goto(offset: 12 << 20))
        app.handle(.char("m"))
        #expect(hex.hostMode && app.state.status.text.contains("L2["), "\(app.state.status.text)")
    }

    @Test func statusLineBelongsToTheViewThatSaidIt() throws {
        let f = try TuiFixture("status")
        let app = try f.app(try f.qcow2())
        app.handle(.char("2"))
        app.handle(.enter)
        app.handle(.char("/"))
        for c in "zero" { app.handle(.char(c)) }
        app.handle(.enter)
        #expect(app.render(width: 160, height: 50).line(48).contains("L2[64]"))
        app.handle(.char("4"))
        let s = app.render(width: 160, height: 50)
        #expect(!s.line(48).contains("L2["), "the L1/L2 selection leaked into the Map: \(s.line(48))")
        // App-wide messages (command output) stay.
        app.execute(.view(name: "nonesuch"))
        app.handle(.char("1"))
        #expect(app.render(width: 160, height: 50).line(48).contains("no view 'nonesuch'"))
    }

    @Test func footersOfferSearchAndGotoOnlyWhereTheViewHasThem() throws {
        let f = try TuiFixture("footer")
        let app = try f.app(try f.qcow2())
        app.handle(.char("8"))
        var s = app.render(width: 200, height: 50)
        #expect(!s.line(49).contains("/ find"), "\(s.line(49))")
        #expect(s.line(49).contains("g goto (hex)"))
        app.handle(.char("/"))
        #expect(app.promptState == nil)
        #expect(app.state.status.text.contains("no search"))
        app.handle(.char("4"))
        s = app.render(width: 200, height: 50)
        #expect(s.line(49).contains("/ find kind"))
        #expect(s.line(49).contains("g goto guest"))
        app.handle(.char("t"))
        #expect(app.render(width: 200, height: 50).line(49).contains("g goto host"))
    }

    @Test func hexSearchWrapsForwardAndBackward() throws {
        let f = try TuiFixture("hexwrap")
        let app = try f.app(try f.raw())   // 0x55 ('U') at 2 MiB for 64 KiB
        app.handle(.char("6"))
        app.execute(.goto(offset: 3 << 20))
        app.handle(.char("/"))
        app.handle(.char("U"))
        app.handle(.enter)
        let hex = try #require(app.currentView as? HexView)
        #expect(hex.offset == 2 << 20)
        #expect(app.state.status.text == "search wrapped to the top: found at guest 0x200000", "\(app.state.status.text)")
        app.handle(.char("n"))
        #expect(hex.offset == (2 << 20) + 1 && !app.state.status.text.contains("wrapped"))
        app.handle(.char("N"))
        app.handle(.char("N"))
        #expect(hex.offset == (2 << 20) + 65535, "N from the first match wraps to the last one")
        #expect(app.state.status.text.contains("search wrapped to the bottom"), "\(app.state.status.text)")
    }

    @Test func batEnterOpensTheBlockInHexAndEscComesBack() throws {
        let f = try TuiFixture("batback")
        let p = f.dir + "/b.vhdx"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", p, "16M"])
        try TestSupport.qemuIo(p, format: "vhdx", ["write -P 0x42 3M 64k"])
        let app = try f.app(p)
        app.handle(.char("5"))
        _ = app.render(width: 160, height: 50)
        for _ in 0..<3 { app.handle(.down) }
        app.handle(.enter)
        let hex = try #require(app.currentView as? HexView)
        #expect(hex.offset == 3 << 20 && !hex.hostMode)
        #expect(app.render(width: 160, height: 50).contains("42 42 42 42"))
        app.handle(.escape)
        #expect(app.currentView is BatView)
        // L1/L2 has no tables on a VHDX: goto there hands over to Hex.
        app.handle(.char("2"))
        app.execute(.goto(offset: 3 << 20))
        #expect((app.currentView as? HexView)?.offset == 3 << 20)
    }
}

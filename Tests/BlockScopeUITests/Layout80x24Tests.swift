import BlockCore
@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// Every view is readable at 80x24: nothing a view, the title, the tab bar or the footer
/// draws is cut at the right edge (the screen model records every text it had to cut), on
/// images qemu-img made: a QCOW2 overlay with a snapshot and a bitmap, a VHDX, a VHD and a
/// RAW. In-flight and Completions are left to their own tests.
@Suite("Layout80x24") struct Layout80x24Tests {
    /// The views checked here, by number key: Overview, L1/L2, Refcounts, Map, BAT, Hex.
    static let viewKeys: [Character] = ["1", "2", "3", "4", "5", "6"]

    /// The images: path and a name for messages.
    static func images(_ f: TuiFixture) throws -> [String] {
        let base = f.dir + "/base.qcow2", top = f.dir + "/overlay-with-a-longer-name.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", base, "64M"])
        try TestSupport.qemuIo(base, format: "qcow2", ["write -P 0x11 0 4M"])
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top, "1G"])
        try TestSupport.qemuIo(top, format: "qcow2", ["write -P 0xab 1M 128k", "write -z 8M 64k", "write -P 0x41 900M 1M"])
        try TestSupport.qemuImg(["snapshot", "-c", "before-the-second-write", top])
        try TestSupport.qemuIo(top, format: "qcow2", ["write -P 0xcd 1M 64k"])
        try TestSupport.qemuImg(["bitmap", "--add", top, "dirty-since-backup"])
        let vhdx = f.dir + "/v.vhdx", vhd = f.dir + "/v.vhd", raw = f.dir + "/r.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", vhdx, "2G"])
        try TestSupport.qemuIo(vhdx, format: "vhdx", ["write -P 0xab 1M 128k", "write -P 0x22 1500M 3M"])
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", vhd, "256M"])
        try TestSupport.qemuIo(vhd, format: "vpc", ["write -P 0x33 4M 2M"])
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", raw, "16M"])
        try TestSupport.qemuIo(raw, format: "raw", ["write -P 0x55 2M 64k"])
        return [top, vhdx, vhd, raw]
    }

    /// The texts cut in `s`, as "row N: text" lines for a failure message.
    static func cuts(_ s: ScreenModel) -> [String] { s.clipped.map { "row \($0.y): \($0.text)" } }

    @Test("no view, title, tab or footer text is cut at 80x24, on QCOW2, VHDX, VHD and RAW images, scrolled or not")
    func nothingIsCutAt80x24() throws {
        let f = try TuiFixture("layout80")
        for img in try Self.images(f) {
            let app = try f.app(img)
            let name = URL(fileURLWithPath: img).lastPathComponent
            for key in Self.viewKeys {
                app.handle(.char(key))
                // The first screen, then three pages further (lists and dumps scroll).
                for page in 0..<4 {
                    app.pump()
                    let s = app.render(width: 80, height: 24)
                    #expect(Self.cuts(s).isEmpty, "\(name), view \(key), page \(page): \(Self.cuts(s))\n\(s.text)")
                    app.handle(.pageDown)
                }
            }
            // An opened L2 table (QCOW2) and the help, page by page.
            app.handle(.char("2")); app.handle(.home); app.handle(.enter)
            var s = app.render(width: 80, height: 24)
            if img.hasSuffix(".qcow2") { #expect(s.text.contains("L2 table of L1[0] at 0x"), "\(s.text)") }
            for page in 0..<3 {
                s = app.render(width: 80, height: 24)
                #expect(Self.cuts(s).isEmpty, "\(name), L2 table page \(page): \(Self.cuts(s))\n\(s.text)")
                app.handle(.pageDown)
            }
            app.handle(.escape)
            app.handle(.char("?"))
            for page in 0..<8 {
                s = app.render(width: 80, height: 24)
                #expect(Self.cuts(s).isEmpty, "\(name), help page \(page): \(Self.cuts(s))\n\(s.text)")
                app.handle(.pageDown)
            }
            app.handle(.escape)
            app.shutdown()
        }
    }

    @Test("at 80x24 the tab bar shows every tab with the current one whole, and the title keeps the version")
    func tabBarAndTitleFit() throws {
        let f = try TuiFixture("tabs80")
        // Colour on whatever the environment says: NO_COLOR's words are never dropped.
        var o = TUIOptions(imagePath: try f.qcow2())
        o.noColor = false
        o.themeName = TestSupport.packageRoot.appendingPathComponent("themes/default.theme").path
        let app = try TUIApp(options: o)
        for i in 0..<app.views.count {
            app.handle(.char(Character(String(i + 1))))
            let s = app.render(width: 80, height: 24)
            let bar = s.line(1)
            #expect(s.clipped.allSatisfy { $0.y > 1 }, "title or tab bar cut: \(Self.cuts(s))")
            for n in 1...app.views.count { #expect(bar.contains(" \(n) "), "tab \(n) missing: \(bar)") }
            #expect(bar.contains(" \(i + 1) \(app.views[i].title) "), "the current tab's title is not whole: \(bar)")
            #expect(s.line(0).contains("blockscope \(blockscopeVersion)"), "\(s.line(0))")
            // Every abbreviated tab still selects its view by name.
            for label in bar.split(separator: " ").filter({ Int($0) == nil }) {
                #expect(app.viewIndex(named: String(label)) != nil, "'\(label)' selects no view")
            }
        }
        // At 160 columns every title is whole.
        let wide = app.render(width: 160, height: 50).line(1)
        for (i, v) in app.views.enumerated() { #expect(wide.contains("\(i + 1) \(v.title)"), "\(wide)") }
    }

    @Test("the hex dump keeps its ASCII column whole between bars at 80 columns, also for offsets past 4 GiB")
    func hexAsciiColumnIsWhole() throws {
        let f = try TuiFixture("hex80")
        let img = f.dir + "/big.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "64G"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x41 0 4k", "write -P 0x42 0xfffff0000 64k"])
        let app = try f.app(img)
        app.handle(.char("6"))
        var s = app.render(width: 80, height: 24)
        #expect(s.text.contains("|AAAAAAAAAAAAAAAA|"), "\(s.text)")
        #expect(Self.cuts(s).isEmpty, "\(Self.cuts(s))")
        _ = app.currentView.goto(0xfffff0000, app.state)
        s = app.render(width: 80, height: 24)
        #expect(s.text.contains("fffff0000  42 42 42"), "\(s.text)")
        #expect(s.text.contains("|BBBBBBBBBBBBBBBB|"), "\(s.text)")
        #expect(Self.cuts(s).isEmpty, "\(Self.cuts(s))")
    }
}

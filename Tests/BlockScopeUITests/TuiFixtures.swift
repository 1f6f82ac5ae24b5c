import BlockCore
import BlockScopeUI
import Foundation
import TestSupport

/// Images made with qemu-img/qemu-io for the view tests, in a temp dir per fixture.
final class TuiFixture {
    let dir: String
    init(_ label: String) throws { dir = try TestSupport.makeTempDir("tui-\(label)") }
    deinit { TestSupport.removeTempDir(dir) }

    /// A 64 MiB QCOW2 with 128 KiB of 0xab at 1 MiB and a zero cluster at 4 MiB.
    func qcow2() throws -> String {
        let p = dir + "/t.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", p, "64M"])
        try TestSupport.qemuIo(p, format: "qcow2", ["write -P 0xab 1M 128k", "write -z 4M 64k"])
        return p
    }

    /// A QCOW2 whose data at 2 MiB is stored compressed.
    func compressedQcow2() throws -> String {
        let raw = dir + "/src.raw", p = dir + "/c.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", raw, "16M"])
        try TestSupport.qemuIo(raw, format: "raw", ["write -P 0x5a 2M 256k"])
        try TestSupport.qemuImg(["convert", "-q", "-c", "-f", "raw", "-O", "qcow2", raw, p])
        return p
    }

    /// A 16 MiB RAW with 64 KiB of 0x55 at 2 MiB.
    func raw() throws -> String {
        let p = dir + "/r.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", p, "16M"])
        try TestSupport.qemuIo(p, format: "raw", ["write -P 0x55 2M 64k"])
        return p
    }

    /// An app on `path` (read-only unless `write`).
    func app(_ path: String, write: Bool = false) throws -> TUIApp {
        var o = TUIOptions(imagePath: path)
        o.writable = write
        o.themeName = TestSupport.packageRoot.appendingPathComponent("themes/default.theme").path
        let app = try TUIApp(options: o)
        // The structure walk runs in the background; the snapshot tests draw its result.
        app.state.image.inspector?.waitForBackground()
        return app
    }
}

/// Draws one view of `app` into a fresh screen.
func draw(_ view: TUIView, _ app: TUIApp, width: Int = 160, height: Int = 46) -> ScreenModel {
    var s = ScreenModel(width: width, height: height)
    view.draw(&s, s.bounds, app.state)
    return s
}

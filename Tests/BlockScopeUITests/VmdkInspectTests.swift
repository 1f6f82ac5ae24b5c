import BlockCore
import BlockInspect
import Foundation
import Testing
import TestSupport
@testable import BlockScopeUI

@Suite struct VmdkInspectTests {
    @Test("VMDK: grain tables through the neutral model, host offsets as qemu-img map says, drawn by the unchanged L1/L2 view")
    func vmdkGrainTables() throws {
        let dir = try TestSupport.makeTempDir("inspect-vmdk")
        defer { TestSupport.removeTempDir(dir) }
        for sub in ["monolithicSparse", "twoGbMaxExtentSparse", "streamOptimized"] {
            let img = dir + "/\(sub).vmdk"
            if sub == "streamOptimized" {
                let raw = dir + "/src.raw"
                try TestSupport.qemuImg(["create", "-q", "-f", "raw", raw, "64M"])
                try TestSupport.qemuIo(raw, format: "raw", ["write -P 0x11 0 64k", "write -P 0x22 1M 128k", "write -P 0x44 40M 64k"])
                try TestSupport.qemuImg(["convert", "-q", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, img])
            } else {
                try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=\(sub)", img, "64M"])
                try TestSupport.qemuIo(img, format: "vmdk", ["write -P 0x11 0 64k", "write -P 0x22 1M 128k", "write -P 0x44 40M 64k"])
            }
            let map = try JSONValue.parse(try TestSupport.qemuImg(["map", "--output=json", "-f", "vmdk", img]).stdoutText).arrayValue ?? []
            let app = try TUIApp(options: TUIOptions(imagePath: img))
            let q = try #require(app.state.image.inspector)
            let d = try #require(q.table(.directory))
            var present = 0
            for i in 0..<d.count {
                guard let ref = d.entry(i).child, let t = q.table(ref) else { continue }
                for j in 0..<t.count {
                    let e = t.entry(j)
                    guard e.state == .present || e.state == .compressed, let g = e.guestOffset else { continue }
                    present += 1
                    let x = try #require(map.first { g >= UInt64($0["start"]!.intValue!) && g < UInt64($0["start"]!.intValue! + $0["length"]!.intValue!) })
                    #expect(x["data"]?.boolValue == true, "\(sub) guest \(hex(g))")
                    if e.state == .present, let o = x["offset"]?.intValue {
                        #expect(UInt64(o) + (g - UInt64(x["start"]!.intValue!)) == e.hostOffset, "\(sub) guest \(hex(g)): model \(e.hostOffset.map(hex) ?? "-") map \(x)")
                    }
                }
            }
            #expect(present == 4, "\(sub): \(present) grains")
            let v = L1L2View()
            var s = ScreenModel(width: 120, height: 30)
            v.draw(&s, s.bounds, app.state)
            #expect(s.text.contains("grain directory: 2 entries in 1 sparse extent(s); each covers 32.0 MiB"), "\(s.text)")
            _ = v.goto(1 << 20, app.state)
            var s2 = ScreenModel(width: 120, height: 30)
            v.draw(&s2, s2.bounds, app.state)
            let row = try #require(s2.text.split(separator: "\n").first { $0.hasPrefix("GT[16]") })
            #expect(row.hasSuffix(sub == "streamOptimized" ? "compressed grain" : "grain"), "\(row)")
            app.shutdown()
        }
    }
}

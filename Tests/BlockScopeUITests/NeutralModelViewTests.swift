import BlockCore
import BlockInspect
import Testing
@testable import BlockScopeUI

/// A format the UI has never heard of, shaped like VMDK's sparse extents: a grain directory
/// of 4 entries, each pointing to a grain table of 16 grains of 64 KiB. It fills only the
/// neutral model; the views must show it with no change.
final class ToyGrainInspector: ImageInspector {
    static let grain: UInt64 = 65536, perTable = 16
    /// Grain tables present under directory entries 0 and 2; grains present: table 0 grain 3, table 2 grain 1.
    let tables: [Int: [UInt64]] = [0: [0, 0, 0, 0x90000] + Array(repeating: 0, count: 12), 2: [0, 0xa0000] + Array(repeating: 0, count: 14)]
    var formatName: String { "toy" }
    var guestSize: UInt64 { 4 * UInt64(Self.perTable) * Self.grain }
    var hostSize: UInt64 { 0xb0000 }
    var legend: [InspectLegendItem] { [InspectLegendItem(.table, "grain directory"), InspectLegendItem(.subtable, "grain table"), InspectLegendItem(.data, "grain")] }
    func overviewSections() -> [InspectSection] { [InspectSection("Toy header", [InspectRow("grain size", "64 KiB")])] }
    func guestCell(_ start: UInt64, _ length: UInt64) -> InspectCell {
        mapGuest(start).host.map { InspectCell(.data, "grain at host \(hex($0))") } ?? InspectCell(.free, "unallocated")
    }
    func hostCell(_ start: UInt64, _ length: UInt64) -> InspectCell { InspectCell(.free, "free") }
    func mapGuest(_ offset: UInt64) -> InspectMapping {
        let g = offset / Self.grain, t = Int(g) / Self.perTable, i = Int(g) % Self.perTable
        guard let e = tables[t]?[i], e != 0 else { return InspectMapping(host: nil, "GD[\(t)] GT[\(i)]: unallocated") }
        return InspectMapping(host: e + offset % Self.grain, "GD[\(t)] -> GT[\(i)] -> host \(hex(e))")
    }
    func describeHost(_ offset: UInt64) -> String { "toy bytes" }
    func readHost(at offset: UInt64, count: Int) -> [UInt8] { [] }
    func reload() {}
    func path(toGuest offset: UInt64) -> [InspectLink] {
        let g = Int(offset / Self.grain)
        return [InspectLink(.directory, g / Self.perTable), InspectLink(.leaf(g / Self.perTable), g % Self.perTable)]
    }
    func table(_ ref: InspectTableRef) -> InspectTable? {
        let span = UInt64(Self.perTable) * Self.grain
        switch ref.role {
        case .directory:
            return InspectTable(ref: .directory, name: "GD", heading: "grain directory: 4 entries", count: 4, guestSpan: span,
                                childName: "grain table", childSpan: Self.grain, widths: [8, 20]) { [tables] i in
                let present = tables[i] != nil
                return InspectEntry(index: i, state: present ? .table : .absent, tone: present ? .subtable : .free, guestOffset: UInt64(i) * span,
                                    guestLength: span, child: present ? .leaf(i) : nil, columns: ["GD[\(i)]", "guest \(hex(UInt64(i) * span))", present ? "grain table" : "none"])
            }
        case .leaf:
            guard let t = tables[ref.index] else { return nil }
            return InspectTable(ref: ref, name: "GT", heading: "grain table \(ref.index)", count: t.count, guestSpan: Self.grain, widths: [8, 20]) { j in
                let g = UInt64(ref.index) * span + UInt64(j) * Self.grain
                return InspectEntry(index: j, state: t[j] != 0 ? .present : .absent, tone: t[j] != 0 ? .data : .free, guestOffset: g, guestLength: Self.grain,
                                    hostOffset: t[j] != 0 ? t[j] : nil, columns: ["GT[\(j)]", "guest \(hex(g))", t[j] != 0 ? "grain at \(hex(t[j]))" : "unallocated"])
            }
        case .allocation:
            return nil
        }
    }
}

@Suite struct NeutralModelViewTests {
    static func state() -> AppState {
        AppState(image: ImageModel(path: "/toy.img", format: .raw, inspector: ToyGrainInspector()))
    }

    static func draw(_ v: TUIView, _ st: AppState) -> ScreenModel {
        var s = ScreenModel(width: 120, height: 30)
        v.draw(&s, s.bounds, st)
        return s
    }

    @Test("a two-level format the UI does not know (a grain directory and grain tables) shows in L1/L2, goto and Enter work, and the other views say what it lacks")
    func unknownTwoLevelFormatShowsWithoutAUIChange() {
        let st = Self.state()
        let v = L1L2View()
        let top = Self.draw(v, st).text
        #expect(top.contains("grain directory: 4 entries") && top.contains("GD[2]") && top.contains("grain table"), "\(top)")
        // goto guest 0x210000: GD[2] (each entry covers 1 MiB), GT[1], which holds the grain at 0xa0000.
        let n = v.goto(0x210000, st)
        #expect(n.text == "at guest 0x210000: GD[2] GT[1]", "\(n.text)")
        let leaf = Self.draw(v, st).text
        #expect(leaf.contains("grain table 2   (Esc: back)") && leaf.contains("GT[1]   guest 0x210000      grain at 0xa0000"), "\(leaf)")
        // Enter on the selected grain opens its guest bytes in Hex.
        _ = v.handle(.enter, st)
        #expect(st.requestedView == "hex" && st.pendingHex?.offset == 0x210000)
        // An empty directory entry says so in the format's words.
        _ = v.handle(.escape, st)
        _ = v.goto(0x110000, st)
        #expect(v.openL1 == nil)
        #expect(Self.draw(BatView(), st).text.contains("no block allocation table"))
        #expect(Self.draw(RefcountsView(), st).text.contains("no reference counts"))
        #expect(MapLegend.items(st.image.inspector!.legend).map(\.1) == ["grain directory", "grain table", "grain"])
        #expect(Self.draw(OverviewView(), st).text.contains("Toy header"))
    }
}

@testable import BlockScopeUI
import Foundation
import Testing
import TestSupport

/// The bundled themes parse, keep text legible, and degrade to 256 and 8 colours.
@Suite("TuiThemes") struct TuiThemeTests {
    static let dir = TestSupport.packageRoot.appendingPathComponent("themes").path

    @Test(arguments: ThemeLoader.bundledNames)
    func bundledThemeParsesAndHasLegibleContrast(_ name: String) throws {
        let t = try ThemeLoader.loadFile(Self.dir + "/\(name).theme")
        #expect(t.name == name)
        for role in Role.allCases {
            guard let c = t.contrast(role) else { continue }
            // Never dark-on-black: at least 4.5:1 for text roles, 3:1 for map fills and hints.
            let minimum = [Role.normal, .heading, .prompt, .selected, .footer, .key, .tabActive].contains(role) ? 4.5 : 3.0
            #expect(c >= minimum, "\(name).\(role) contrast \(c)")
        }
    }

    /// The Map's cursor and "written now" cells show a letter (the cell's kind) in the
    /// role's foreground on its background, so both are text and need text contrast.
    @Test(arguments: ThemeLoader.bundledNames)
    func cursorAndWrittenGlyphsAreLegible(_ name: String) throws {
        let t = try ThemeLoader.loadFile(Self.dir + "/\(name).theme")
        for role in [Role.selected, .written] {
            let st = t.style(role)
            if st.foreground == .terminalDefault && st.background == .terminalDefault {
                // Monochrome: reverse video keeps the letter visible on the inverted cell.
                #expect(st.attributes.contains(.reverse), "\(name).\(role) has neither colours nor reverse")
                continue
            }
            let c = try #require(t.contrast(role))
            #expect(c >= 4.5, "\(name).\(role): the cursor/written letter has contrast \(c) on its background")
        }
        // In 256 and 8 colours the foreground never lands on the background.
        for depth in [ColorDepth.ansi256, .ansi8] {
            for role in [Role.selected, .written] {
                let (fg, bg) = depth.pair(t.style(role), darkTerminal: t.darkTerminal)
                #expect(fg != bg || fg == -1, "\(name).\(role) in \(depth): foreground \(fg) on background \(bg)")
            }
        }
    }

    @Test func monochromeHasNoColours() throws {
        let t = try ThemeLoader.loadFile(Self.dir + "/monochrome.theme")
        for role in Role.allCases {
            #expect(t.style(role).foreground == .terminalDefault && t.style(role).background == .terminalDefault)
        }
    }

    @Test func coloursDegradeTo256And8WithoutVanishing() throws {
        #expect(ColorDepth.ansi256.index(.rgb(0x5f, 0xaf, 0xff)) == 75)
        #expect(ColorDepth.ansi256.index(.rgb(0x80, 0x80, 0x80)) == 244)
        #expect(ColorDepth.direct.index(.rgb(1, 2, 3)) == 0x010203)
        #expect(ColorDepth.ansi8.index(.rgb(200, 40, 40)) == 1)
        // A dark grey on a dark terminal would map to black in 8 colours: it falls back to the default foreground.
        let p = ColorDepth.ansi8.pair(RoleStyle(foreground: .rgb(30, 30, 30)), darkTerminal: true)
        #expect(p.fg == -1)
        let t = try ThemeLoader.loadFile(Self.dir + "/default.theme")
        for role in Role.allCases {
            let (fg, bg) = ColorDepth.ansi8.pair(t.style(role), darkTerminal: true)
            #expect(fg != 0 || (bg != 0 && bg != -1), "\(role) is black text on black in 8 colours")
        }
    }

    @Test func parseErrorsNameTheLine() {
        let colour = #expect(throws: ThemeError.self) { try Theme.parse("normal = #zzzzzz") }
        #expect(colour?.line == 1 && colour?.message.contains("#zzzzzz") == true, "\(String(describing: colour))")
        let key = #expect(throws: ThemeError.self) { try Theme.parse("name = x\nbogus = red") }
        #expect(key?.line == 2 && key?.message.contains("bogus") == true, "\(String(describing: key))")
    }

    @Test func screenModelClipsAndRendersText() {
        var s = ScreenModel(width: 10, height: 2)
        s.put(7, 0, "abcdef", CellStyle(.data))
        s.put(-2, 1, "xyz")
        #expect(s.line(0) == "       abc")
        #expect(s.text == "       abc\nz")
        #expect(s.cells(with: .data).count == 3)
    }

    /// SGR 1006 reports carry decimal cells, so clicks beyond column 223 (X10's limit) work.
    @Test func sgrMouseReportsDecodeClicksBeyondColumn223AndWheel() {
        #expect(Terminal.decodeSGRMouse("0;250;5", pressed: true) == .click(x: 249, y: 4))
        #expect(Terminal.decodeSGRMouse("0;250;5", pressed: false) == nil)
        #expect(Terminal.decodeSGRMouse("64;10;3", pressed: true) == .wheel(up: true, x: 9, y: 2))
        #expect(Terminal.decodeSGRMouse("65;10;3", pressed: true) == .wheel(up: false, x: 9, y: 2))
        #expect(Terminal.decodeSGRMouse("32;10;3", pressed: true) == nil)   // motion
        #expect(Terminal.decodeSGRMouse("2;10;3", pressed: true) == nil)    // right button
        #expect(Terminal.decodeSGRMouse("0;x;3", pressed: true) == nil)
    }
}

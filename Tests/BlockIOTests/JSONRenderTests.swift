import BlockIO
import Testing

/// JSONValue's rendering, byte for byte against text written out by hand (RFC 8259's escapes;
/// integral doubles as printf's "%.6f" writes them, which is how fio's JSON carries them).
@Suite struct JSONRenderTests {
    @Test func stringsAreEscapedAsTheRfcSays() {
        let cases: [(String, String)] = [
            ("plain text, no escape", #""plain text, no escape""#),
            ("a\u{1}b\u{1f}c", #""a\u0001b\u001fc""#),
            ("quote \" backslash \\ newline \n return \r tab \t", #""quote \" backslash \\ newline \n return \r tab \t""#),
            ("\u{0}\u{8}\u{b}\u{c}\u{10}", #""\u0000\u0008\u000b\u000c\u0010""#),
            ("é ✓ \u{7f}", "\"é ✓ \u{7f}\""),
        ]
        for (s, want) in cases {
            #expect(JSONValue.string(s).render(pretty: false) == want)
        }
    }

    @Test func integralDoublesKeepSixDecimals() {
        let cases: [(Double, String)] = [(3, "3.000000"), (-2, "-2.000000"), (0, "0.000000"), (-0.0, "-0.000000"),
                                         (123456789012345, "123456789012345.000000"), (0.5, "0.5"), (1e15, "1000000000000000.0")]
        for (d, want) in cases {
            #expect(JSONValue.double(d).render(pretty: false) == want, "\(d)")
        }
    }
}

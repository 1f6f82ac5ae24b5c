import Foundation

/// A JSON document tree with ordered object keys, for output shaped like qemu-img's and fio's.
///
/// Keys keep their insertion order so `info --output=json` reads like qemu-img's. Encoding
/// is done by hand (``render(pretty:)``) so integers stay integers and key order is kept.
public indirect enum JSONValue: Sendable, Equatable {
    /// `null`.
    case null
    /// `true` / `false`.
    case bool(Bool)
    /// An integer (kept exact; qemu-img prints 64-bit sizes).
    case int(Int64)
    /// An unsigned integer above `Int64.max`.
    case uint(UInt64)
    /// A floating point number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object with ordered keys.
    case object([(String, JSONValue)])

    /// Equality compares objects key by key in order.
    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.uint(x), .uint(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// A JSON number from an unsigned size.
    public static func size(_ v: UInt64) -> JSONValue { v <= UInt64(Int64.max) ? .int(Int64(v)) : .uint(v) }

    /// The value under `key` of an object, or nil.
    public subscript(key: String) -> JSONValue? {
        if case let .object(kv) = self { return kv.first(where: { $0.0 == key })?.1 }
        return nil
    }

    /// The text of the document; `pretty` indents by four spaces as qemu-img does.
    public func render(pretty: Bool = true) -> String {
        var out = ""
        write(into: &out, indent: pretty ? 0 : -1)
        return out
    }

    private func write(into out: inout String, indent: Int) {
        let pretty = indent >= 0
        let pad = pretty ? String(repeating: " ", count: (indent + 1) * 4) : ""
        let closePad = pretty ? String(repeating: " ", count: indent * 4) : ""
        let nl = pretty ? "\n" : ""
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .uint(u): out += String(u)
        case let .double(d):
            if d.isFinite {
                // An integral value as printf's "%.6f" writes it (without Foundation's
                // formatter, a tenth of a large report's rendering).
                if d == d.rounded() && abs(d) < 1e15 {
                    out += (d.sign == .minus && d == 0 ? "-0" : String(Int64(d))) + ".000000"
                } else { out += String(d) }
            } else { out += "0" }
        case let .string(s): JSONValue.escape(s, into: &out)
        case let .array(a):
            if a.isEmpty { out += "[]"; return }
            out += "[" + nl
            for (i, v) in a.enumerated() {
                out += pad
                v.write(into: &out, indent: pretty ? indent + 1 : -1)
                if i < a.count - 1 { out += "," }
                out += nl
            }
            out += closePad + "]"
        case let .object(kv):
            if kv.isEmpty { out += "{}"; return }
            out += "{" + nl
            for (i, (k, v)) in kv.enumerated() {
                out += pad
                JSONValue.escape(k, into: &out)
                out += pretty ? ": " : ":"
                v.write(into: &out, indent: pretty ? indent + 1 : -1)
                if i < kv.count - 1 { out += "," }
                out += nl
            }
            out += closePad + "}"
        }
    }

    private static func escape(_ s: String, into out: inout String) {
        out += "\""
        // Most strings need no escape and go in whole (a scalar at a time, with Foundation
        // formatting control characters, was most of rendering a damaged image's report).
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5c }) {
            out += s
            out += "\""
            return
        }
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    out += u.value < 0x10 ? "\\u000" : "\\u001"
                    out.unicodeScalars.append(hexDigits[Int(u.value & 15)])
                } else { out.unicodeScalars.append(u) }
            }
        }
        out += "\""
    }

    private static let hexDigits: [Unicode.Scalar] = Array("0123456789abcdef".unicodeScalars)

    /// Parses JSON text (used by tests, trace replay and oracle output), keeping key order.
    public static func parse(_ text: String) throws(BlockError) -> JSONValue {
        var p = JSONParser(Array(text.utf8))
        let v = try p.value()
        p.skipSpace()
        if p.pos != p.bytes.count { throw p.fail("trailing characters") }
        return v
    }

    /// The integer value, if this is a number.
    public var intValue: Int64? {
        switch self {
        case let .int(i): return i
        case let .uint(u): return u <= UInt64(Int64.max) ? Int64(u) : nil
        case let .double(d): return Int64(exactly: d)
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }
    /// The string value, if this is a string.
    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    /// The bool value, if this is a bool.
    public var boolValue: Bool? { if case let .bool(b) = self { return b }; return nil }
    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
}

/// A small recursive-descent JSON parser that keeps object key order.
package struct JSONParser {
    package let bytes: [UInt8]
    package var pos = 0
    package var depth = 0

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package func fail(_ what: String) -> BlockError {
        BlockError(.invalidArgument, "invalid JSON at byte \(pos): \(what)")
    }

    package mutating func skipSpace() {
        while pos < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[pos]) { pos += 1 }
    }

    package mutating func expect(_ lit: String) throws(BlockError) {
        for b in lit.utf8 {
            guard pos < bytes.count, bytes[pos] == b else { throw fail("expected \(lit)") }
            pos += 1
        }
    }

    package mutating func value() throws(BlockError) -> JSONValue {
        skipSpace()
        guard pos < bytes.count else { throw fail("unexpected end") }
        depth += 1
        defer { depth -= 1 }
        if depth > 512 { throw fail("nesting too deep") }
        switch bytes[pos] {
        case UInt8(ascii: "{"):
            pos += 1
            var kv: [(String, JSONValue)] = []
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(kv) }
            while true {
                skipSpace()
                let k = try string()
                skipSpace()
                try expect(":")
                kv.append((k, try value()))
                skipSpace()
                guard pos < bytes.count else { throw fail("unterminated object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(kv) }
                throw fail("expected , or }")
            }
        case UInt8(ascii: "["):
            pos += 1
            var a: [JSONValue] = []
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(a) }
            while true {
                a.append(try value())
                skipSpace()
                guard pos < bytes.count else { throw fail("unterminated array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(a) }
                throw fail("expected , or ]")
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return try number()
        }
    }

    package mutating func string() throws(BlockError) -> String {
        guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected string") }
        pos += 1
        var out: [UInt8] = []
        while pos < bytes.count {
            let b = bytes[pos]; pos += 1
            if b == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if b == UInt8(ascii: "\\") {
                guard pos < bytes.count else { break }
                let e = bytes[pos]; pos += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "u"):
                    guard pos + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[pos..<pos+4], as: UTF8.self), radix: 16) else { throw fail("bad \\u escape") }
                    pos += 4
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(v) ?? "?")).utf8))
                default: out.append(e)
                }
            } else { out.append(b) }
        }
        throw fail("unterminated string")
    }

    package mutating func number() throws(BlockError) -> JSONValue {
        let start = pos
        while pos < bytes.count, let c = Optional(bytes[pos]), (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { pos += 1 }
        let t = String(decoding: bytes[start..<pos], as: UTF8.self)
        if t.isEmpty { throw fail("unexpected character") }
        if let i = Int64(t) { return .int(i) }
        if let u = UInt64(t) { return .uint(u) }
        if let d = Double(t) { return .double(d) }
        throw fail("bad number '\(t)'")
    }
}

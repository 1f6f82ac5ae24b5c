import Foundation

/// Word wrapping for the Overview, the help and the pause box: never cut a word when it fits
/// on a line of its own.
enum TextWrap {
    /// `text` in lines of at most `width` columns, broken at spaces; a word longer than a
    /// line is broken after `/ . - , _` where it can, else at the width. Always at least one line.
    static func lines(_ text: String, width: Int) -> [String] {
        let w = max(1, width)
        var out: [String] = []
        var cur = ""
        for word in keepingDatesTogether(text).split(separator: " ", omittingEmptySubsequences: true).map(String.init) {
            let candidate = cur.isEmpty ? word : cur + " " + word
            if candidate.count <= w { cur = candidate; continue }
            if !cur.isEmpty { out.append(cur); cur = "" }
            var rest = Substring(word)
            while rest.count > w {
                let head = rest.prefix(w)
                let cut = head.lastIndex(where: { "/.-,_".contains($0) }).map { head.index(after: $0) } ?? head.endIndex
                let piece = rest[..<cut]
                out.append(String(piece.count >= w / 3 ? piece : head))
                rest = rest[(piece.count >= w / 3 ? cut : head.endIndex)...]
            }
            cur = String(rest)
        }
        if !cur.isEmpty || out.isEmpty { out.append(cur) }
        return out.map { $0.replacingOccurrences(of: "\u{a0}", with: " ") }
    }

    /// A date and time ("2026-11-24 20:36:13 +0000") joined with no-break spaces, so it
    /// wraps as one word.
    static func keepingDatesTogether(_ text: String) -> String {
        guard text.contains(":") else { return text }
        var out = text
        while let r = out.range(of: #"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( [+-]\d{4})?"#, options: .regularExpression) {
            out.replaceSubrange(r, with: out[r].replacingOccurrences(of: " ", with: "\u{a0}"))
        }
        return out
    }
}

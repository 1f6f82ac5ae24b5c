import BlockIO

#if canImport(Glibc)
import Glibc
#endif

/// The parent's absolute path and its path relative to the child's folder (`../parent.img`).
package func parentPaths(child: String, parent: String) -> (absolute: String, relative: String) {
    func normalize(_ p: String) -> [Substring] {
        let full = p.hasPrefix("/") ? p : currentDirectory() + "/" + p
        var parts: [Substring] = []
        for c in full.split(separator: "/") {
            if c == "." || c.isEmpty { continue }
            if c == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(c)
        }
        return parts
    }
    let a = normalize(parent)
    let childDir = normalize(child).dropLast()
    var common = 0
    while common < min(a.count - 1, childDir.count) && a[common] == childDir[common] { common += 1 }
    let up = [Substring](repeating: "..", count: childDir.count - common)
    let rel = (up + a[common...]).joined(separator: "/")
    return ("/" + a.joined(separator: "/"), rel)
}

package func currentDirectory() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buf, buf.count) != nil else { return "." }
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

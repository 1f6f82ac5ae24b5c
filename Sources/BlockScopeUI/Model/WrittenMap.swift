/// The bytes written this session, kept as a bitmap of fixed-size chunks (at most 2^20
/// chunks; the chunk size doubles when the space outgrows that), for tinting map cells.
///
/// Marking a write costs O(length / chunk) whatever the number of writes before it: an
/// exact interval set grows with every scattered 4 KiB write and made the UI thread's event
/// folding the bottleneck of a busy job (docs/PERFORMANCE.md, "TUI cost"). Answers are
/// exact to the chunk: `intersects` may say yes for a byte that shares a chunk with a write.
package struct WrittenMap: Sendable, Equatable {
    /// log2 of the chunk size in bytes (9: 512-byte chunks, grows as needed).
    package private(set) var chunkShift: UInt64 = 9
    private var words: [UInt64] = []
    private static let maxWords = 1 << 14

    /// Creates an empty map.
    package init() {}

    /// Whether nothing was marked.
    package var isEmpty: Bool { words.allSatisfy { $0 == 0 } }

    /// Marks `[start, start + length)` as written.
    package mutating func insert(_ start: UInt64, length: UInt64) {
        guard length > 0 else { return }
        let end = start &+ length < start ? UInt64.max : start + length
        while ((end - 1) >> chunkShift) / 64 >= UInt64(WrittenMap.maxWords) { coarsen() }
        let first = Int(start >> chunkShift), last = Int((end - 1) >> chunkShift)
        if last / 64 >= words.count { words += [UInt64](repeating: 0, count: last / 64 + 1 - words.count) }
        var i = first
        while i <= last {
            if i & 63 == 0 && i + 63 <= last {
                words[i >> 6] = .max
                i += 64
            } else {
                words[i >> 6] |= 1 << UInt64(i & 63)
                i += 1
            }
        }
    }

    /// Whether any chunk touching `[start, start + length)` was written.
    package func intersects(_ start: UInt64, length: UInt64) -> Bool {
        guard length > 0, !words.isEmpty else { return false }
        let end = start &+ length < start ? UInt64.max : start + length
        let first = start >> chunkShift
        let last = min((end - 1) >> chunkShift, UInt64(words.count * 64 - 1))
        if first > last { return false }
        var i = Int(first)
        while i <= Int(last) {
            if i & 63 == 0 && i + 63 <= Int(last) {
                if words[i >> 6] != 0 { return true }
                i += 64
            } else {
                if words[i >> 6] & (1 << UInt64(i & 63)) != 0 { return true }
                i += 1
            }
        }
        return false
    }

    /// Doubles the chunk size, folding pairs of chunks.
    private mutating func coarsen() {
        var out = [UInt64](repeating: 0, count: (words.count + 1) / 2)
        for (w, word) in words.enumerated() where word != 0 {
            for b in 0..<64 where word & (1 << UInt64(b)) != 0 {
                let old = w * 64 + b
                out[(old / 2) >> 6] |= 1 << UInt64((old / 2) & 63)
            }
        }
        words = out
        chunkShift += 1
    }
}

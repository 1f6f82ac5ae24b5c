import BlockCore
import CFuzzSupport

/// A short sequence of guest operations decoded from the first ``WriteProgram/byteCount``
/// bytes of a write target's input (the rest is the image), checked afterwards.
///
/// Each of the 8 operations takes 4 bytes: kind (write, zero, discard, flush, read),
/// offset in 4 KiB units plus an unaligned sub-offset, length, and a pattern byte.
/// ``run(on:)`` applies them through the synchronous `DiskFile` path and remembers what
/// every written or zeroed byte must read back as; ``verify(_:)`` checks it after a reopen.
public struct WriteProgram {
    /// Bytes of input the program takes.
    public static let byteCount = 32

    enum Kind { case write, zero, discard, flush, read }
    struct Op { var kind: Kind; var offset: UInt64; var length: UInt64; var pattern: UInt8 }

    var ops: [Op] = []
    /// Guest sectors `start..<end` (512 bytes each) whose every byte must read as `value`.
    struct Span { var start: UInt64; var end: UInt64; var value: UInt8 }
    /// What must read back: disjoint spans of sectors (at most a few per operation); sectors
    /// touched by a failed or partial operation, or discarded, are forgotten.
    var spans: [Span] = []

    /// Decodes the program from `prefix` (zero-padded when short) for a disk of `size` bytes.
    public init<C: Collection>(_ prefix: C, diskSize size: UInt64) where C.Element == UInt8 {
        var b = Array(prefix.prefix(WriteProgram.byteCount))
        b += [UInt8](repeating: 0, count: WriteProgram.byteCount - b.count)
        guard size >= 512 else { return }
        for i in stride(from: 0, to: b.count, by: 4) {
            let kinds: [Kind] = [.write, .write, .zero, .discard, .flush, .read, .write, .zero]
            let kind = kinds[Int(b[i] & 7)]
            // Sector-aligned unless bit 3 asks for an unaligned start.
            var off = UInt64(b[i + 1]) * 4096 + UInt64(b[i] >> 4) * 512
            if b[i] & 8 != 0 { off += 100 }
            var len = (UInt64(b[i + 2]) + 1) * 512
            // 0xf0-0xff: 16-256 KiB (the cap on one operation; 1 MiB before, see docs/FUZZING.md).
            if b[i + 2] >= 0xf0 { len = UInt64(b[i + 2] - 0xef) * 16384 }
            off %= size
            len = min(len, size - off)
            if len == 0 { continue }
            ops.append(Op(kind: kind, offset: off, length: len, pattern: b[i + 3]))
        }
    }

    /// The operations' data buffer, allocated once (the longest operation is 256 KiB).
    nonisolated(unsafe) static let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 4096)

    /// Applies the operations; `BlockError`s end that operation only.
    public mutating func run(on disk: any DiskFile) {
        // Raw buffers, not closures with typed throws: swift-frontend 6.3.1 crashes in the
        // SIL inliner on `withUnsafeBytes { (b) throws(BlockError) in ... }` at -O.
        let buffer = WriteProgram.buffer
        for op in ops {
            let data = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(op.length)])
            let sectors = (op.offset / 512)...((op.offset + op.length - 1) / 512)
            do {
                switch op.kind {
                case .write:
                    data.initializeMemory(as: UInt8.self, repeating: op.pattern)
                    forget(sectors.lowerBound, sectors.upperBound + 1)
                    try disk.write(UnsafeRawBufferPointer(data), at: op.offset)
                    remember(op, value: op.pattern)
                case .zero:
                    forget(sectors.lowerBound, sectors.upperBound + 1)
                    try disk.writeZeroes(at: op.offset, length: op.length)
                    remember(op, value: 0)
                case .discard:
                    forget(sectors.lowerBound, sectors.upperBound + 1)
                    try disk.discard(at: op.offset, length: op.length)
                case .flush:
                    try disk.flush()
                case .read:
                    try disk.read(into: data, at: op.offset)
                }
            } catch {
                continue
            }
        }
    }

    /// Sectors wholly covered by `op` must now read as `value`.
    mutating func remember(_ op: Op, value: UInt8) {
        let first = (op.offset + 511) / 512
        let end = (op.offset + op.length) / 512
        if first < end {
            forget(first, end)
            spans.append(Span(start: first, end: end, value: value))
        }
    }

    /// Sectors `first..<end` are no longer known.
    mutating func forget(_ first: UInt64, _ end: UInt64) {
        var kept: [Span] = []
        for s in spans {
            if s.end <= first || s.start >= end { kept.append(s); continue }
            if s.start < first { kept.append(Span(start: s.start, end: first, value: s.value)) }
            if s.end > end { kept.append(Span(start: end, end: s.end, value: s.value)) }
        }
        spans = kept
    }

    /// Reads every remembered sector of `disk` and reports the first that differs, 64 KiB
    /// at a time (the byte compare is the harness's C helper, not instrumented code).
    public func verify(_ disk: any DiskFile, what: String) {
        let chunk: UInt64 = 128
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(chunk) * 512, alignment: 4096)
        defer { b.deallocate() }
        for span in spans.sorted(by: { $0.start < $1.start }) {
            var s = span.start
            while s < span.end {
                let n = min(chunk, span.end - s)
                let run = UnsafeMutableRawBufferPointer(rebasing: b[0..<Int(n * 512)])
                do {
                    try disk.read(into: run, at: s * 512)
                } catch {
                    violation("\(what): reading back sectors \(s)-\(s + n - 1) failed: \(error)")
                }
                let x = cfuzz_first_not(run.baseAddress, run.count, span.value)
                if x < run.count {
                    violation("\(what): guest byte \(s * 512 + UInt64(x)) reads \(run[x]), expected \(span.value)")
                }
                s += n
            }
        }
    }
}

import BlockCore

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
    /// Guest sector (512 bytes) -> the byte every byte of it must read as; sectors touched
    /// by a failed or partial operation, or discarded, are forgotten.
    public private(set) var expected: [UInt64: UInt8] = [:]

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
            if b[i + 2] >= 0xf0 { len = UInt64(b[i + 2] - 0xef) * 65536 } // up to 1 MiB
            off %= size
            len = min(len, size - off)
            if len == 0 { continue }
            ops.append(Op(kind: kind, offset: off, length: len, pattern: b[i + 3]))
        }
    }

    /// Applies the operations; `BlockError`s end that operation only.
    public mutating func run(on disk: any DiskFile) {
        // Raw buffers, not closures with typed throws: swift-frontend 6.3.1 crashes in the
        // SIL inliner on `withUnsafeBytes { (b) throws(BlockError) in ... }` at -O.
        let maxLength = ops.map { Int($0.length) }.max() ?? 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(maxLength, 1), alignment: 4096)
        defer { buffer.deallocate() }
        for op in ops {
            let data = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(op.length)])
            let sectors = (op.offset / 512)...((op.offset + op.length - 1) / 512)
            do {
                switch op.kind {
                case .write:
                    data.initializeMemory(as: UInt8.self, repeating: op.pattern)
                    forget(sectors)
                    try disk.write(UnsafeRawBufferPointer(data), at: op.offset)
                    remember(op, value: op.pattern)
                case .zero:
                    forget(sectors)
                    try disk.writeZeroes(at: op.offset, length: op.length)
                    remember(op, value: 0)
                case .discard:
                    forget(sectors)
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
        if first < end { for s in first..<end { expected[s] = value } }
    }

    mutating func forget(_ sectors: ClosedRange<UInt64>) {
        for s in sectors { expected[s] = nil }
    }

    /// Reads every remembered sector of `disk` and reports the first that differs.
    public func verify(_ disk: any DiskFile, what: String) {
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 512)
        defer { b.deallocate() }
        for (s, v) in expected.sorted(by: { $0.key < $1.key }) {
            do {
                try disk.read(into: b, at: s * 512)
            } catch {
                violation("\(what): reading back sector \(s) failed: \(error)")
            }
            if let i = b.firstIndex(where: { $0 != v }) {
                violation("\(what): guest byte \(s * 512 + UInt64(i)) reads \(b[i]), expected \(v)")
            }
        }
    }
}

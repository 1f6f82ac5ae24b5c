import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// The contents the engine writes: seeded pseudo-random data, optionally behind a
/// verification header.
///
/// A verified block starts with a 48-byte header — magic `bsvf`, checksum kind, the
/// block's guest offset, the seed of its data, its length and the checksum (CRC-32C or
/// MD5) of the bytes after the header — followed by data generated from the seed. A block
/// can therefore be checked on its own, and its expected contents regenerated.
package enum BlockPattern {
    /// Size of the verification header in bytes.
    public static let headerSize = 48
    static let magic: UInt32 = 0x6676_7362 // "bsvf"

    /// Fills `buffer` with pseudo-random bytes from `seed`.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer, seed: UInt64) {
        var rng = Xorshift64Star(seed: seed)
        var i = 0
        let n = buffer.count
        guard let base = buffer.baseAddress else { return }
        while i + 8 <= n {
            base.storeBytes(of: rng.next().littleEndian, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        if i < n {
            var v = rng.next()
            while i < n { base.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: i, as: UInt8.self); v >>= 8; i += 1 }
        }
    }

    /// Fills `buffer` with `pattern` repeated from its first byte (fio's `verify_pattern`).
    public static func fillPattern(_ buffer: UnsafeMutableRawBufferPointer, pattern: [UInt8]) {
        guard !pattern.isEmpty else { return }
        for i in 0..<buffer.count { buffer[i] = pattern[i % pattern.count] }
    }

    /// Writes one block for a `verify=` job: a header every `interval` bytes (the whole
    /// block when nil), each chunk at its own guest offset with seed `seed &+ chunk index`.
    /// `verify=pattern` blocks are filled once per slot (``fillPattern(_:pattern:)``), not here.
    public static func fillBlock(_ buffer: UnsafeMutableRawBufferPointer, offset: UInt64, seed: UInt64, kind: VerifyKind,
                                 interval: UInt64?, pattern: [UInt8]?) {
        let step = Int(interval ?? UInt64(buffer.count))
        var at = 0, k: UInt64 = 0
        while at + step <= buffer.count {
            fillVerified(UnsafeMutableRawBufferPointer(rebasing: buffer[at..<at + step]), offset: offset + UInt64(at),
                         seed: seed &+ k, kind: kind, pattern: pattern)
            at += step; k += 1
        }
    }

    /// Checks one block of a `verify=` job (the counterpart of
    /// ``fillBlock(_:offset:seed:kind:interval:pattern:)``); nil when intact. With an
    /// interval each chunk is checked on its own and any seed is accepted.
    public static func checkBlock(_ block: UnsafeRawBufferPointer, offset: UInt64, seeds: Set<UInt64>, kind: VerifyKind,
                                  interval: UInt64?, pattern: [UInt8]?, path: String) -> BlockError? {
        if kind == .pattern {
            let p = pattern ?? [0]
            for i in 0..<block.count where block[i] != p[i % p.count] {
                return BlockError(.corruptImage, "verify failed for the block at guest offset \(hex(offset)): pattern byte \(hex(UInt64(p[i % p.count]))) expected, found \(hex(UInt64(block[i]))); first bad byte at \(hex(offset + UInt64(i)))",
                                  path: path, guestOffset: offset, operation: "verify")
            }
            return nil
        }
        guard let interval else { return check(block, offset: offset, seeds: seeds, path: path, pattern: pattern) }
        var at = 0
        let step = Int(interval)
        while at + step <= block.count {
            if let e = check(UnsafeRawBufferPointer(rebasing: block[at..<at + step]), offset: offset + UInt64(at), seeds: [], path: path, pattern: pattern) { return e }
            at += step
        }
        return nil
    }

    /// Writes a verified block: header for (`offset`, `seed`) and data from `seed` (or
    /// `pattern` repeated, flagged in the header).
    public static func fillVerified(_ buffer: UnsafeMutableRawBufferPointer, offset: UInt64, seed: UInt64, kind: VerifyKind,
                                    pattern: [UInt8]? = nil) {
        let data = UnsafeMutableRawBufferPointer(rebasing: buffer[headerSize...])
        if let pattern { fillPattern(data, pattern: pattern) } else { fill(data, seed: seed) }
        let base = buffer.baseAddress!
        base.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        base.storeBytes(of: kind == .md5 ? UInt8(2) : (kind == .meta ? UInt8(3) : UInt8(1)), toByteOffset: 4, as: UInt8.self)
        base.storeBytes(of: pattern == nil ? UInt8(0) : UInt8(1), toByteOffset: 5, as: UInt8.self)
        for i in 6..<8 { base.storeBytes(of: UInt8(0), toByteOffset: i, as: UInt8.self) }
        base.storeBytes(of: offset.littleEndian, toByteOffset: 8, as: UInt64.self)
        base.storeBytes(of: seed.littleEndian, toByteOffset: 16, as: UInt64.self)
        base.storeBytes(of: UInt32(buffer.count).littleEndian, toByteOffset: 24, as: UInt32.self)
        base.storeBytes(of: UInt32(0), toByteOffset: 28, as: UInt32.self)
        let sum = checksum(UnsafeRawBufferPointer(data), kind: kind)
        for i in 0..<16 { base.storeBytes(of: i < sum.count ? sum[i] : 0, toByteOffset: 32 + i, as: UInt8.self) }
    }

    /// The checksum bytes of `data`: 4 bytes (little-endian) for CRC-32C, 16 for MD5.
    public static func checksum(_ data: UnsafeRawBufferPointer, kind: VerifyKind) -> [UInt8] {
        switch kind {
        case .crc32c, .meta, .pattern:
            let c = VerifyCRC32C.checksum(data)
            return [UInt8(c & 0xff), UInt8((c >> 8) & 0xff), UInt8((c >> 16) & 0xff), UInt8(c >> 24)]
        case .md5:
            return VerifyMD5.digest(data)
        }
    }

    /// Checks a block read back from `offset`; returns nil when it is intact.
    ///
    /// `seeds` are the seeds that wrote this block (the last writer among them wins when
    /// several threads overlapped); an empty set accepts any seed. The error names the
    /// guest offset, the expected and found checksums and the first differing byte.
    public static func check(_ block: UnsafeRawBufferPointer, offset: UInt64, seeds: Set<UInt64>, path: String,
                             pattern: [UInt8]? = nil) -> BlockError? {
        func fail(_ m: String, at bad: UInt64? = nil) -> BlockError {
            var msg = "verify failed for the block at guest offset \(hex(offset)): \(m)"
            if let bad { msg += "; first bad byte at \(hex(bad))" }
            return BlockError(.corruptImage, msg, path: path, guestOffset: offset, operation: "verify")
        }
        let base = block.baseAddress!
        let magic = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        let kindByte = base.load(fromByteOffset: 4, as: UInt8.self)
        let hOffset = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        let hSeed = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        let hLen = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 24, as: UInt32.self))
        guard magic == Self.magic, (1...3).contains(kindByte) else {
            return fail("no verification header (magic \(hex(UInt64(magic))), expected \(hex(UInt64(Self.magic))))", at: offset)
        }
        let kind: VerifyKind = kindByte == 2 ? .md5 : (kindByte == 3 ? .meta : .crc32c)
        let patterned = base.load(fromByteOffset: 5, as: UInt8.self) == 1
        if hOffset != offset { return fail("header names offset \(hex(hOffset))", at: offset + 8) }
        if Int(hLen) != block.count { return fail("header length \(hLen), expected \(block.count)", at: offset + 24) }
        if !seeds.isEmpty && !seeds.contains(hSeed) { return fail("header seed \(hex(hSeed)) was not written by this job", at: offset + 16) }
        let data = UnsafeRawBufferPointer(rebasing: block[headerSize...])
        let found = checksum(data, kind: kind)
        let stored = (0..<found.count).map { base.load(fromByteOffset: 32 + $0, as: UInt8.self) }
        // What the data should be, regenerated from the seed.
        let expected = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 8)
        defer { expected.deallocate() }
        if patterned, let pattern { fillPattern(expected, pattern: pattern) } else { fill(expected, seed: hSeed) }
        let expectedSum = checksum(UnsafeRawBufferPointer(expected), kind: kind)
        if found != stored || expectedSum != stored {
            var bad: UInt64? = nil
            for i in 0..<data.count where data[i] != expected[i] { bad = offset + UInt64(headerSize + i); break }
            if bad == nil && expectedSum != stored { bad = offset + 32 }
            return fail("\(kind.rawValue) expected \(hexBytes(stored)), found \(hexBytes(found))", at: bad)
        }
        return nil
    }

    static func hexBytes(_ b: [UInt8]) -> String {
        if b.count == 4 {
            let v = UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
            return hex(UInt64(v))
        }
        return b.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table driven, for verify headers.
package enum VerifyCRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The CRC-32C of `data` (initial value and final xor 0xFFFFFFFF).
    public static func checksum(_ data: UnsafeRawBufferPointer) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in data { c = t[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }
}

/// MD5 (RFC 1321), for `verify=md5` headers.
package enum VerifyMD5 {
    static let shifts: [UInt32] = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                   5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
                                   4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                   6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21]
    static let k: [UInt32] = (0..<64).map { UInt32(truncatingIfNeeded: Int64(abs(sin(Double($0 + 1))) * 4_294_967_296.0)) }

    /// The 16-byte MD5 digest of `data`.
    public static func digest(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        var a0: UInt32 = 0x6745_2301, b0: UInt32 = 0xefcd_ab89, c0: UInt32 = 0x98ba_dcfe, d0: UInt32 = 0x1032_5476
        var msg = [UInt8](data)
        let bitLen = UInt64(data.count) &* 8
        msg.append(0x80)
        while msg.count % 64 != 56 { msg.append(0) }
        for i in 0..<8 { msg.append(UInt8((bitLen >> (8 * UInt64(i))) & 0xff)) }
        var m = [UInt32](repeating: 0, count: 16)
        for chunk in stride(from: 0, to: msg.count, by: 64) {
            for i in 0..<16 {
                let j = chunk + i * 4
                m[i] = UInt32(msg[j]) | UInt32(msg[j + 1]) << 8 | UInt32(msg[j + 2]) << 16 | UInt32(msg[j + 3]) << 24
            }
            var a = a0, b = b0, c = c0, d = d0
            for i in 0..<64 {
                var f: UInt32
                let g: Int
                switch i {
                case 0..<16: f = (b & c) | (~b & d); g = i
                case 16..<32: f = (d & b) | (~d & c); g = (5 * i + 1) % 16
                case 32..<48: f = b ^ c ^ d; g = (3 * i + 5) % 16
                default: f = c ^ (b | ~d); g = (7 * i) % 16
                }
                f = f &+ a &+ k[i] &+ m[g]
                a = d; d = c; c = b
                b = b &+ ((f << shifts[i]) | (f >> (32 - shifts[i])))
            }
            a0 = a0 &+ a; b0 = b0 &+ b; c0 = c0 &+ c; d0 = d0 &+ d
        }
        var out: [UInt8] = []
        for v in [a0, b0, c0, d0] { for i in 0..<4 { out.append(UInt8((v >> (8 * UInt32(i))) & 0xff)) } }
        return out
    }
}

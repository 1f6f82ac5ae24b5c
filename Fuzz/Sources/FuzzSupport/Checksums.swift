#if canImport(Glibc)
import Glibc
#endif
import BlockCore
import CFuzzSupport

/// Recomputes, in the image, the checksums that guard a format's metadata, so that
/// mutations reach the parsers behind them instead of stopping at "checksum mismatch".
///
/// Each fix-up is switched by a byte the format ignores, zero in every seed: when it is
/// zero the checksums are recomputed after the image is written; when a mutation makes it
/// non-zero the input's own checksums are kept, so the mismatch paths are fuzzed too.
public enum Checksums {
    /// VHDX: both headers (4 KiB at 64 KiB and 128 KiB) and both region tables (64 KiB at
    /// 192 KiB and 256 KiB) get their CRC-32C, unless the last byte of the 64 KiB file
    /// identifier (offset 0xFFFF, reserved) is non-zero.
    public static func fixVhdx(_ file: MemoryFile) {
        guard let flag = read(file, 0xFFFF, 1), flag[0] == 0 else { return }
        for (offset, size) in [(0x10000, 4096), (0x20000, 4096), (0x30000, 65536), (0x40000, 65536)] {
            guard let b = read(file, offset, size) else { continue }
            // In C, uninstrumented: the same CRC-32C as BlockCore's Crc32c (the harness's
            // bookkeeping; BlockCore's own checks of it are what is fuzzed).
            let crc = b.withUnsafeBytes { cfuzz_crc32c($0.baseAddress, $0.count, 4) }
            write(file, offset + 4, (0..<4).map { UInt8(truncatingIfNeeded: crc >> (8 * UInt32($0))) })
        }
    }

    /// VHD: the footer at the end (and its copy at 0) and the dynamic header its data
    /// offset names get their checksums, unless the footer's last (reserved) byte is non-zero.
    public static func fixVhd(_ file: MemoryFile) {
        guard file.size >= 512 else { return }
        let end = Int(file.size - 512) / 512 * 512
        guard let footer = read(file, end, 512), footer[511] == 0 else { return }
        for f in Set([end, 0]) {
            guard let b = read(file, f, 512), b[0..<8].elementsEqual("conectix".utf8) else { continue }
            write(file, f + 64, be32(VhdChecksum.compute(b, field: 64)))
        }
        var dataOffset: UInt64 = 0
        for i in 0..<8 { dataOffset = dataOffset << 8 | UInt64(footer[16 + i]) }
        guard dataOffset < UInt64(Int.max / 2), let d = read(file, Int(dataOffset), 1024) else { return }
        write(file, Int(dataOffset) + 36, be32(VhdChecksum.compute(d, field: 36)))
    }

    static func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32(3 - $0))) } }

    /// `count` bytes at `offset`, or nil when the file is shorter.
    static func read(_ file: MemoryFile, _ offset: Int, _ count: Int) -> [UInt8]? {
        guard UInt64(offset) + UInt64(count) <= file.size else { return nil }
        return file.bytes(at: UInt64(offset), count: count)
    }

    static func write(_ file: MemoryFile, _ offset: Int, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { file.write($0, at: UInt64(offset)) }
    }
}

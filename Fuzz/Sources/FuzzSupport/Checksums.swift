#if canImport(Glibc)
import Glibc
#endif
import BlockCore

/// Recomputes, in the image file, the checksums that guard a format's metadata, so that
/// mutations reach the parsers behind them instead of stopping at "checksum mismatch".
///
/// Each fix-up is switched by a byte the format ignores, zero in every seed: when it is
/// zero the checksums are recomputed after the image is written; when a mutation makes it
/// non-zero the input's own checksums are kept, so the mismatch paths are fuzzed too.
public enum Checksums {
    /// VHDX: both headers (4 KiB at 64 KiB and 128 KiB) and both region tables (64 KiB at
    /// 192 KiB and 256 KiB) get their CRC-32C, unless the last byte of the 64 KiB file
    /// identifier (offset 0xFFFF, reserved) is non-zero.
    public static func fixVhdx(_ path: String) {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard let flag = read(fd, 0xFFFF, 1), flag[0] == 0 else { return }
        for (offset, size) in [(0x10000, 4096), (0x20000, 4096), (0x30000, 65536), (0x40000, 65536)] {
            guard let b = read(fd, offset, size) else { continue }
            let crc = Crc32c.checksum(b, zeroingFieldAt: 4)
            write(fd, offset + 4, (0..<4).map { UInt8(truncatingIfNeeded: crc >> (8 * UInt32($0))) })
        }
    }

    /// VHD: the footer at the end (and its copy at 0) and the dynamic header its data
    /// offset names get their checksums, unless the footer's last (reserved) byte is non-zero.
    public static func fixVhd(_ path: String) {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size >= 512 else { return }
        let end = Int(st.st_size - 512) / 512 * 512
        guard let footer = read(fd, end, 512), footer[511] == 0 else { return }
        for f in Set([end, 0]) {
            guard let b = read(fd, f, 512), b[0..<8].elementsEqual("conectix".utf8) else { continue }
            write(fd, f + 64, be32(VhdChecksum.compute(b, field: 64)))
        }
        var dataOffset: UInt64 = 0
        for i in 0..<8 { dataOffset = dataOffset << 8 | UInt64(footer[16 + i]) }
        guard dataOffset < UInt64(Int.max / 2), let d = read(fd, Int(dataOffset), 1024) else { return }
        write(fd, Int(dataOffset) + 36, be32(VhdChecksum.compute(d, field: 36)))
    }

    static func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32(3 - $0))) } }

    /// `count` bytes at `offset`, or nil when the file is shorter.
    static func read(_ fd: Int32, _ offset: Int, _ count: Int) -> [UInt8]? {
        var b = [UInt8](repeating: 0, count: count)
        let n = b.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return n == count ? b : nil
    }

    static func write(_ fd: Int32, _ offset: Int, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
    }
}

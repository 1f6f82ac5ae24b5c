#if canImport(Glibc)
import Glibc
#endif

/// The input encoding of the VHDX and VHD targets: a file size and the non-zero pieces of
/// the file, so that a 10 MiB VHDX whose metadata is a few KiB is a small input.
///
/// Layout (little-endian): `u64 fileSize`, then records `u32 offset, u32 length, bytes`.
/// The file is emptied, given the size, and each record written at its offset; a record
/// past the size or cut short by the end of the input is written as far as it goes. The
/// size is capped at 64 MiB. scripts/fuzz/sparse-encode.py makes seeds in this form.
public enum SparseImage {
    /// The largest file an input may describe.
    public static let maxFileSize: UInt64 = 64 << 20

    /// Makes `file` the file `bytes` describe.
    public static func write<C: Collection>(_ bytes: C, to file: MemoryFile) where C.Element == UInt8 {
        let b = Array(bytes)
        file.reset(size: 0)
        guard b.count >= 8 else { return }
        let size = min(le(b, 0, 8), maxFileSize)
        _ = file.truncate(to: size)
        var i = 8
        while i + 8 <= b.count {
            let offset = le(b, i, 4), length = Int(le(b, i + 4, 4))
            i += 8
            let n = min(length, b.count - i)
            if n > 0 && offset < size {
                let m = Int(min(UInt64(n), size - offset))
                _ = b.withUnsafeBytes { file.write(UnsafeRawBufferPointer(rebasing: $0[i..<(i + m)]), at: offset) }
            }
            i += n
        }
    }

    static func le(_ b: [UInt8], _ at: Int, _ width: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in (0..<width).reversed() { v = v << 8 | UInt64(b[at + k]) }
        return v
    }
}

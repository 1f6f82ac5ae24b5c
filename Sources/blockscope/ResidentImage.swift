#if canImport(Glibc)
import Glibc
#endif

/// The executable's resident code, kept to the pages actually run.
///
/// The release binary links the Swift runtime, Foundation and ICU statically (88 MB, most of
/// it code and ICU tables that a command never touches). The kernel maps file pages around
/// every fault ("fault-around", 64 KiB), so a few hundred scattered code pages made the
/// process resident in 8 MB of a text segment it mostly does not run. ``trim()`` marks the
/// executable's read-only, executable mappings `MADV_RANDOM` (no fault-around) and drops
/// the pages mapped so far (`MADV_DONTNEED`: they stay in the page cache and fault back in,
/// one at a time, when run). Only `r-xp` mappings of the executable file are touched: they
/// are never written, so dropping them loses nothing (writable and RELRO data, which the
/// loader relocated, are left alone). docs/adr/0012-static-swift-runtime.md has the numbers.
enum ResidentImage {
    /// Applies the advice to every `r-xp` mapping of `/proc/self/exe`; does nothing when
    /// `/proc` is not readable.
    static func trim() {
        var exe = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/exe", &exe, 4096)
        guard n > 0, let maps = fopen("/proc/self/maps", "r") else { return }
        defer { fclose(maps) }
        let exePath = String(decoding: exe.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var line = [CChar](repeating: 0, count: 8192)
        var ranges: [(UInt, UInt)] = []
        while fgets(&line, Int32(line.count), maps) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // "start-end perms offset dev inode path"
            let f = text.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 6, f[1] == "r-xp", f[5].hasPrefix(exePath), f[5].dropFirst(exePath.count).allSatisfy({ $0 == "\n" }) else { continue }
            let r = f[0].split(separator: "-")
            guard r.count == 2, let lo = UInt(r[0], radix: 16), let hi = UInt(r[1], radix: 16), hi > lo else { continue }
            ranges.append((lo, hi))
        }
        for (lo, hi) in ranges {
            let p = UnsafeMutableRawPointer(bitPattern: lo)
            _ = madvise(p, Int(hi - lo), MADV_RANDOM)
            _ = madvise(p, Int(hi - lo), MADV_DONTNEED)
        }
    }
}

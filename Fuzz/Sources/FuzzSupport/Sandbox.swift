#if canImport(Glibc)
import Glibc
#endif
import BlockCore
@_spi(Fuzzing) import BlockIO

/// The directory a fuzz target writes its image into, and the only directory an image may
/// refer to (``OpenOptions/referenceRoot``): backing files, parents and data files named
/// by fuzz input resolve here or are refused, so no input opens a host file elsewhere.
///
/// The directory is `/dev/shm/blockscope-fuzz-PID` or under `/tmp` when /dev/shm is
/// missing. It holds the bases the seed images refer to: `base.raw` (1 MiB, byte i of
/// sector s is `s &+ i`) and `base.qcow2` (a QCOW2 over `base.raw`), and an empty `img`.
/// The bases are read and written in memory too (each its own ``MemoryFile``); their host
/// files keep the same bytes.
/// The image's bytes are not in that file: every ``SystemFile`` opened on `img` (by that
/// path or any other that resolves to it) reads and writes ``image``, a ``MemoryFile``,
/// through BlockCore's fuzzing seam (``SystemFile/memoryFiles``). The empty file is there
/// for what still looks at the path (`stat`, `realpath`, QEMU's lock bytes).
/// One process uses one sandbox; the image is reloaded per input.
public final class Sandbox: Sendable {
    /// The sandbox directory (no trailing slash).
    public let dir: String
    /// The image path the current input is written to.
    public let imagePath: String
    /// The image's bytes (``imagePath``): 512 MiB of address space, written pages only.
    public let image = MemoryFile(capacity: 512 << 20)

    /// The process's sandbox, created on first use.
    public static let shared = Sandbox()

    private init() {
        let root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        dir = "\(root)/blockscope-fuzz-\(getpid())"
        imagePath = dir + "/img"
        mkdir(dir, 0o700)
        Sandbox.writeFile(imagePath, [])
        // A reference at most 4096 clusters past the end is counted; further ones are
        // reported as lying far beyond it (the same paths, fewer steps: docs/FUZZING.md).
        FuzzingLimits.qcow2CheckClustersPastEnd = 4096
        // check's first 128 problem lines are built (enough for every hit-count bucket of the
        // code that builds them); the rest are counted only (docs/FUZZING.md, "Throughput").
        FuzzingLimits.qcow2CheckMessages = 128
        // A VMDK descriptor lists at most 32 extents (each opens its file and is listed by
        // info, map and check; thousands made one input cost half a second).
        FuzzingLimits.vmdkExtents = 32
        var base = [UInt8](repeating: 0, count: 1 << 20)
        for i in 0..<base.count { base[i] = UInt8(truncatingIfNeeded: (i >> 9) &+ i) }
        Sandbox.writeFile(dir + "/base.raw", base)
        // A small QCOW2 over base.raw, built by blockscope itself (one-time, not fuzzed), on the
        // host file before the seam below maps that path to memory.
        let q = dir + "/base.qcow2"
        unlink(q)
        var o = Qcow2CreateOptions()
        o.backingFile = "base.raw"
        o.backingFormat = "raw"
        _ = try? Qcow2Format.create(path: q, size: 1 << 20, options: o)
        bases = [dir + "/base.raw", q].map { p in
            let bytes = Sandbox.readFile(p), memory = MemoryFile(capacity: 512 << 20)
            memory.load(bytes)
            return (p, bytes, Sandbox.modificationTime(p), memory)
        }
        // The image and the bases are read and written in memory: every input opens a base as
        // a backing file, which cost an open, a realpath and preads of the host file each time.
        var files: [String: MemoryFile] = [:]
        for (p, m) in [(imagePath, image)] + bases.map({ ($0.path, $0.memory) }) {
            files[p] = m
            if let c = Sandbox.canonical(p) { files[c] = m }
        }
        let known = files
        SystemFile.memoryFiles = { p in
            if let m = known[p] { return m }
            // Another spelling of the same file ("./img", "../blockscope-fuzz-PID/base.raw").
            guard p.hasSuffix("img") || p.hasSuffix("base.raw") || p.hasSuffix("base.qcow2"),
                  let c = Sandbox.canonical(p) else { return nil }
            return known[c]
        }
        Sandbox.checkSeam(imagePath, image)
        atexit { Sandbox.removeAll() }
    }

    /// The base files: their bytes, the host file's modification time, and the in-memory file
    /// every ``SystemFile`` opened on the path reads and writes. An input may write into a base
    /// (an external data file or a VMDK extent may name one); it is restored before the next
    /// input, so every input starts from the same sandbox.
    private let bases: [(path: String, bytes: [UInt8], mtime: timespec, memory: MemoryFile)]

    /// Reloads any base an input changed (in memory, or on the host should anything reach the
    /// host file), and puts the host file's time back.
    public func restoreBases() {
        for b in bases {
            if b.memory.changed { b.memory.load(b.bytes) }
            let now = Sandbox.modificationTime(b.path)
            if now.tv_sec == b.mtime.tv_sec && now.tv_nsec == b.mtime.tv_nsec { continue }
            Sandbox.writeFile(b.path, b.bytes)
            var times = [b.mtime, b.mtime]
            utimensat(AT_FDCWD, b.path, &times, 0)
        }
    }

    /// Checks, once per process, that a ``SystemFile`` opened on the image path (by its name
    /// and by another spelling) reads and writes `memory` and not the empty host file: if
    /// BlockCore's seam stopped working, every input would test an empty file, so the target
    /// stops at once instead.
    static func checkSeam(_ path: String, _ memory: MemoryFile) {
        memory.load([0x51, 0x46, 0x49, 0xfb, 1, 2, 3])
        let dir = String(path[..<path.lastIndex(of: "/")!])
        for spelling in [path, dir + "/./img"] {
            do throws(BlockError) {
                let f = try SystemFile(path: spelling, writable: true)
                let b = try f.readBytes(at: 1, count: 8)
                guard try f.size() == 7, b == [0x46, 0x49, 0xfb, 1, 2, 3, 0, 0] else {
                    violation("SystemFile(\(spelling)) does not read the in-memory image (\(b))")
                }
                try f.writeBytes([9, 9], at: 10)
                try f.truncate(to: 11)
                guard memory.size == 11, memory.bytes(at: 9, count: 3) == [0, 9, 0] else {
                    violation("SystemFile(\(spelling)) does not write the in-memory image")
                }
                try f.writeZeroes(at: 0, length: 4)
                guard memory.bytes(at: 0, count: 5) == [0, 0, 0, 0, 1] else {
                    violation("SystemFile(\(spelling)) does not zero the in-memory image")
                }
                f.close()
            } catch {
                violation("SystemFile(\(spelling)) on the in-memory image failed: \(error)")
            }
            memory.load([0x51, 0x46, 0x49, 0xfb, 1, 2, 3])
        }
        var st = stat()
        if stat(path, &st) != 0 || st.st_size != 0 { violation("the host file \(path) was written") }
        memory.reset()
    }

    /// `path` with symbolic links and `.`/`..` resolved, or nil when it does not resolve.
    static func canonical(_ path: String) -> String? {
        guard let r = realpath(path, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    static func modificationTime(_ path: String) -> timespec {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mtim : timespec()
    }

    static func readFile(_ path: String) -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0, st.st_size > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        var done = 0
        out.withUnsafeMutableBytes { b in
            while done < b.count {
                let n = pread(fd, b.baseAddress! + done, b.count - done, off_t(done))
                if n <= 0 { break }
                done += n
            }
        }
        return out
    }

    /// Replaces the image's content with `bytes`; returns its path.
    public func writeImage<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        image.load(bytes)
        return imagePath
    }

    /// Open options for fuzzing: the sync engine (no ring per input), no image locks, a
    /// small metadata cache, a short backing chain, references confined to the sandbox.
    public func options(writable: Bool) -> OpenOptions {
        var o = OpenOptions(writable: writable, format: nil, engine: .sync)
        o.ignoreLocks = true
        o.maxBackingDepth = 3
        o.metadataCacheEntries = 8
        o.referenceRoot = dir
        return o
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        if fd < 0 { violation("cannot create \(path): errno \(errno)") }
        var done = 0
        bytes.withUnsafeBytes { b in
            while done < b.count {
                let n = write(fd, b.baseAddress! + done, b.count - done)
                if n <= 0 { break }
                done += n
            }
        }
        close(fd)
    }

    static func removeAll() {
        let s = Sandbox.shared
        for name in ["img", "base.raw", "base.qcow2"] { unlink(s.dir + "/" + name) }
        rmdir(s.dir)
    }
}

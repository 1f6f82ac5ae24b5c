/// The bytes of a file kept in the process's memory instead of the kernel's: the seam the
/// fuzz targets (Fuzz/) use so that one input costs no file system work (docs/FUZZING.md,
/// "Throughput"). Not for production use: a ``SystemFile`` gets one only when
/// ``SystemFile/memoryFiles`` is set and returns one for its path, and nothing in blockscope
/// sets it.
///
/// The calls mirror the system calls ``SystemFile`` makes and return 0 or an `errno` value
/// (`EFBIG` past the storage's capacity), which ``SystemFile`` turns into the same
/// ``BlockError`` a failed system call gives. Offsets are bytes. Bytes past ``size`` read as
/// zeroes. Implementations must be safe to call from the threads that share the file.
@_spi(Fuzzing)
public protocol MemoryFileStorage: AnyObject, Sendable {
    /// The file's size in bytes (`st_size`).
    var size: UInt64 { get }
    /// Bytes holding data (`st_blocks * 512`).
    var allocatedSize: UInt64 { get }
    /// Copies `buffer.count` bytes at `offset` into `buffer`, zeroes past ``size``; returns how
    /// many came from the file (`pread` semantics without the short reads).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> Int
    /// Stores `buffer` at `offset`, growing ``size`` (`pwrite`); 0 or an errno.
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) -> Int32
    /// Sets ``size``; bytes past a smaller size are dropped (`ftruncate`); 0 or an errno.
    func truncate(to size: UInt64) -> Int32
    /// Makes `length` bytes at `offset` read as zeroes; with `extend` the size grows to the
    /// range's end (`FALLOC_FL_ZERO_RANGE`), without it the size stays (`PUNCH_HOLE | KEEP_SIZE`).
    func zero(at offset: UInt64, length: UInt64, extend: Bool) -> Int32
    /// `lseek(SEEK_DATA)`: the first offset at or after `offset` holding data, nil past the last.
    func nextData(from offset: UInt64) -> UInt64?
    /// `lseek(SEEK_HOLE)`: the first hole at or after `offset` (the end counts), nil past the end.
    func nextHole(from offset: UInt64) -> UInt64?
}

extension SystemFile {
    /// Looks up a path's in-memory storage when a ``SystemFile`` opens it; nil (the default,
    /// and in every blockscope program) opens the host file. Set once by a fuzz target before
    /// it opens anything; the lookup runs on each open only, never per transfer.
    @_spi(Fuzzing)
    public nonisolated(unsafe) static var memoryFiles: (@Sendable (String) -> (any MemoryFileStorage)?)? = nil
}

/// Bounds that make one fuzz input cheap where a format's own bound is sized for real
/// images (docs/FUZZING.md, "Throughput"). blockscope never changes them; the fuzz targets
/// (Fuzz/) lower them once at start-up, before any image is opened.
@_spi(Fuzzing)
public enum FuzzingLimits {
    /// How many clusters past the end of the file a QCOW2 `check` counts references in
    /// before it reports a reference as lying far beyond the end (2^20, as for users). Each
    /// of those clusters costs one step of the refcount compare; a mutated L2 entry a few
    /// GiB past a small file made that loop 90% of `qcow2-read`'s time.
    public nonisolated(unsafe) static var qcow2CheckClustersPastEnd = 1 << 20
    /// How many problem lines a QCOW2 `check` puts in ``CheckReport/messages`` (unbounded, as
    /// for users). Past it a problem is still counted (corruptions, leaks, check errors) but its
    /// line is not built: a mutated image has hundreds of problems (a median of 21 and a mean of
    /// 252 over `qcow2-read`'s corpus), and building their strings, which no fuzz target reads
    /// past the first five, was a tenth of that target's time.
    public nonisolated(unsafe) static var qcow2CheckMessages = Int.max
    /// How many extents a VMDK descriptor may list (unbounded, as for users and QEMU). Each
    /// extent opens its file and is listed by `info`, `map` and `check`: a mutated descriptor
    /// of 6,000 extent lines cost 25 ms per open and half a second per input, and the campaign
    /// kept such inputs (docs/FUZZING.md, "vmdk's corpus").
    public nonisolated(unsafe) static var vmdkExtents = Int.max
}

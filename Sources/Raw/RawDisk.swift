import BlockIO

#if canImport(Glibc)
import Glibc
#endif

/// A raw image: guest byte N is host byte N of one file.
///
/// Synchronous I/O uses `pread`/`pwrite`; ``makeQueue(_:)`` returns a ``RawAsync`` io_uring
/// queue (or a ``SyncQueue`` for `--engine=sync`). With `O_DIRECT` callers must pass
/// buffers, offsets and lengths aligned to ``topology``'s logical block size.
public final class RawDisk: DiskFile, @unchecked Sendable {
    /// The open host file.
    public let file: SystemFile
    /// The image path.
    public let path: String
    /// Always `.raw`.
    public let format: ImageFormat = .raw
    /// ``file``: guest byte `n` is host byte `n`.
    public var identityFile: SystemFile? { file }
    /// The guest size: the file's size when it was opened.
    public let logicalSize: UInt64
    /// Whether the image is writable.
    public let isWritable: Bool
    /// Block-size hints.
    public let topology: DiskTopology
    /// Warnings from open.
    public let warnings: [String]
    private let options: OpenOptions

    /// Opens an already-open host file as a raw image.
    public init(file: SystemFile, options: OpenOptions, warnings: [String] = []) throws(BlockError) {
        self.file = file
        self.path = file.path
        self.logicalSize = try file.size()
        self.isWritable = options.writable
        self.options = options
        self.warnings = warnings
        let bs = options.direct ? 4096 : 512
        self.topology = DiskTopology(logicalBlockSize: bs, physicalBlockSize: 4096, minimumIoSize: bs, optimalIoSize: 0)
    }

    private func check(_ offset: UInt64, _ length: UInt64, _ op: String) throws(BlockError) {
        let (end, o) = offset.addingReportingOverflow(length)
        if o || end > logicalSize {
            throw BlockError(.outOfBounds, "\(op) of \(length) bytes at \(hex(offset)) ends past the end of the disk (size \(logicalSize))", path: path, guestOffset: offset, operation: op)
        }
        if op != "read" && !isWritable {
            throw BlockError(.readOnly, "image is open read-only: cannot \(op)", path: path, guestOffset: offset, operation: op)
        }
    }

    /// Bytes allocated on the host (`st_blocks * 512`).
    public func physicalSize() throws(BlockError) -> UInt64 { try file.allocatedSize() }

    /// Reads guest bytes with `pread`.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError) {
        try check(offset, UInt64(buffer.count), "read")
        try file.read(into: buffer, at: offset)
    }

    /// Writes guest bytes with `pwrite`.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockError) {
        try check(offset, UInt64(buffer.count), "write")
        try file.write(buffer, at: offset)
    }

    /// Zeroes a range (`FALLOC_FL_ZERO_RANGE`, or written zeroes).
    public func writeZeroes(at offset: UInt64, length: UInt64) throws(BlockError) {
        try check(offset, length, "zero")
        try file.writeZeroes(at: offset, length: length)
    }

    /// Punches a hole (reads as zeroes afterwards).
    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        try check(offset, length, "discard")
        try file.punchHole(at: offset, length: length)
    }

    /// `fdatasync` on the file.
    public func flush() throws(BlockError) {
        if isWritable { try file.sync(dataOnly: true) }
    }

    /// An io_uring queue, or a synchronous one for `--engine=sync` or without io_uring.
    public func makeQueue(_ q: QueueOptions) throws(BlockError) -> any AsyncIo {
        let (q, sync) = q.resolved(with: options)
        if sync { return SyncQueue(disk: self, options: q) }
        return try RawAsync(disk: self, options: q)
    }

    /// qemu-img info's keys for a raw image.
    public func info() throws(BlockError) -> JSONValue {
        .object([
            ("virtual-size", .size(logicalSize)),
            ("filename", .string(path)),
            ("format", .string("raw")),
            ("actual-size", .size(try physicalSize())),
            ("dirty-flag", .bool(false)),
        ])
    }

    /// Allocation extents from `SEEK_DATA`/`SEEK_HOLE`: (offset, length, isData), covering the disk.
    public func allocationExtents() -> [(offset: UInt64, length: UInt64, data: Bool)] {
        var out: [(UInt64, UInt64, Bool)] = []
        var pos: UInt64 = 0
        while pos < logicalSize {
            guard let d = file.nextData(from: pos), d < logicalSize else {
                out.append((pos, logicalSize - pos, false)); break
            }
            if d > pos { out.append((pos, d - pos, false)) }
            let h = min(file.nextHole(from: d) ?? logicalSize, logicalSize)
            out.append((d, h - d, true))
            pos = h
        }
        return out
    }

    /// Flushes when writable and closes the file.
    public func close() throws(BlockError) {
        try flush()
        file.close()
    }
}

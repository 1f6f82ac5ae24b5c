import CURing
#if canImport(Glibc)
import Glibc
#endif

/// An open host file: a thin, typed owner of a file descriptor.
///
/// Every call retries `EINTR` in one place and turns failures into ``BlockError``s that
/// name the path. `pread`/`pwrite` loop until the whole range is transferred (a read past
/// end of file fills the rest with zeroes and reports how many bytes the file had).
/// The descriptor is closed by ``close()`` or on deinit. Thread-safe: positional I/O only.
public final class SystemFile: @unchecked Sendable {
    /// The path the file was opened with.
    public let path: String
    /// The raw descriptor; valid until ``close()``.
    public private(set) var fd: Int32
    /// Whether the file was opened for writing.
    public let writable: Bool
    /// Whether the file was opened with `O_DIRECT`.
    public let direct: Bool
    /// QEMU's image lock for this file, held until ``close()`` (see ``holdLock(_:)``).
    private var lock: ImageLock?
    /// The file's bytes when they live in memory (fuzz targets only, ``memoryFiles``); then
    /// ``fd`` is -1 and every call below goes here instead of to the kernel.
    private let memory: (any MemoryFileStorage)?

    /// Opens `path` read-only or read-write. The corresponding C function is `open`.
    ///
    /// A directory is refused with an `invalidArgument` error before any format parsing.
    public init(path: String, writable: Bool, direct: Bool = false, create: Bool = false,
                truncate: Bool = false) throws(BlockError) {
        self.path = path
        self.writable = writable
        self.direct = direct
        var flags: Int32 = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC
        if direct { flags |= bs_o_direct() }
        if create { flags |= O_CREAT }
        if truncate { flags |= O_TRUNC }
        if let lookup = SystemFile.memoryFiles, let m = lookup(path) {
            memory = m
            fd = -1
            if truncate { _ = m.truncate(to: 0) }
            return
        }
        memory = nil
        var fd: Int32 = -1
        fd = Syscall.retrying { open(path, flags, 0o644) }
        if fd < 0 {
            let e = errno
            if e == EISDIR {
                throw BlockError(.invalidArgument, "is a directory, not a disk image", errno: e, path: path, operation: "open")
            }
            if e == ENOENT {
                throw BlockError(.notFound, "no such file", errno: e, path: path, operation: "open")
            }
            if e == EINVAL && direct {
                throw BlockError(.unsupportedFeature, "the filesystem does not support O_DIRECT", errno: e, path: path, operation: "open")
            }
            throw BlockError.system(e, "open", path: path)
        }
        self.fd = fd
        var st = stat()
        if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            Glibc.close(fd)
            self.fd = -1
            throw BlockError(.invalidArgument, "is a directory, not a disk image", errno: EISDIR, path: path, operation: "open")
        }
    }

    deinit { close() }

    /// Ties `lock` (QEMU's image locks on this path) to this descriptor's lifetime: ``close()``
    /// or deinit releases it, so a disk that closes its file releases its lock on every path.
    package func holdLock(_ lock: ImageLock) {
        self.lock = lock
    }

    /// Closes the descriptor and releases the image lock it holds, if any (idempotent).
    /// The corresponding C function is `close`.
    public func close() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
        lock?.release()
        lock = nil
    }

    /// The file's size in bytes (`st_size`). The corresponding C function is `fstat`.
    public func size() throws(BlockError) -> UInt64 {
        if let memory { return memory.size }
        var st = stat()
        if fstat(fd, &st) != 0 { throw BlockError.system(errno, "fstat", path: path) }
        return UInt64(st.st_size)
    }

    /// Bytes the file occupies on disk (`st_blocks * 512`), qemu-img's actual-size.
    public func allocatedSize() throws(BlockError) -> UInt64 {
        if let memory { return memory.allocatedSize }
        var st = stat()
        if fstat(fd, &st) != 0 { throw BlockError.system(errno, "fstat", path: path) }
        return UInt64(st.st_blocks) * 512
    }

    /// Whether the descriptor refers to a block device.
    public func isBlockDevice() -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFBLK
    }

    /// Reads exactly `buffer.count` bytes at `offset`; bytes past end of file read as zero.
    ///
    /// Returns the number of bytes that came from the file. The corresponding C function is `pread`.
    @discardableResult
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError) -> Int {
        try checkRange(offset, buffer.count, "read")
        if let memory { return memory.read(into: buffer, at: offset) }
        var done = 0
        while done < buffer.count {
            let n = Syscall.retrying { pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EAGAIN { continue }
                throw BlockError.system(errno, "read", path: path, hostOffset: offset + UInt64(done))
            }
            if n == 0 {
                (buffer.baseAddress! + done).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - done)
                return done
            }
            done += n
        }
        return done
    }

    /// Reads `count` bytes at `offset` into a new array; bytes past end of file read as zero.
    public func readBytes(at offset: UInt64, count: Int) throws(BlockError) -> [UInt8] {
        // `read` fills the whole buffer (zeroes past the end of the file) or throws, so the
        // array is not zeroed first (one pass less over every table and header read).
        var err: BlockError?
        let out = [UInt8](unsafeUninitializedCapacity: count) { b, n in
            do throws(BlockError) {
                _ = try self.read(into: UnsafeMutableRawBufferPointer(b), at: offset)
                n = count
            } catch {
                err = error
                n = 0
            }
        }
        if let err { throw err }
        return out
    }

    /// Writes all of `buffer` at `offset`. The corresponding C function is `pwrite`.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockError) {
        try checkRange(offset, buffer.count, "write")
        if let memory {
            let e = memory.write(buffer, at: offset)
            if e != 0 { throw BlockError.system(e, "write", path: path, hostOffset: offset) }
            return
        }
        var done = 0
        while done < buffer.count {
            let n = Syscall.retrying { pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EAGAIN { continue }
                throw BlockError.system(errno, "write", path: path, hostOffset: offset + UInt64(done))
            }
            done += n
        }
    }

    /// Writes the bytes of `bytes` at `offset`.
    public func writeBytes(_ bytes: [UInt8], at offset: UInt64) throws(BlockError) {
        var err: BlockError?
        bytes.withUnsafeBytes { b in
            do throws(BlockError) { try self.write(b, at: offset) } catch { err = error }
        }
        if let err { throw err }
    }

    /// Flushes data (and with `dataOnly == false`, metadata) to stable storage.
    /// The corresponding C functions are `fdatasync` and `fsync`.
    public func sync(dataOnly: Bool = true) throws(BlockError) {
        if memory != nil { return }
        var r: Int32
        r = Syscall.retrying { dataOnly ? fdatasync(fd) : fsync(fd) }
        if r != 0 { throw BlockError.system(errno, dataOnly ? "fdatasync" : "fsync", path: path) }
    }

    /// Refuses a transfer that would end past the largest file offset (`off_t` is signed):
    /// an offset computed from a corrupt image must fail with an error naming it, not trap
    /// converting to `off_t` (found by the vhdx-write fuzz target).
    package func checkRange(_ offset: UInt64, _ count: Int, _ operation: String) throws(BlockError) {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
        if overflow || end > UInt64(Int64.max) {
            throw BlockError(.outOfBounds, "\(operation) of \(count) bytes at \(hex(offset)) lies past the largest file offset",
                             path: path, hostOffset: offset, operation: operation)
        }
    }

    /// Sets the file's size. The corresponding C function is `ftruncate`.
    public func truncate(to size: UInt64) throws(BlockError) {
        if size > UInt64(Int64.max) {
            throw BlockError(.outOfBounds, "size \(size) is past the largest file offset", path: path, operation: "truncate")
        }
        if let memory {
            let e = memory.truncate(to: size)
            if e != 0 { throw BlockError.system(e, "ftruncate", path: path) }
            return
        }
        var r: Int32
        r = Syscall.retrying { ftruncate(fd, off_t(size)) }
        if r != 0 { throw BlockError.system(errno, "ftruncate", path: path) }
    }

    /// Deallocates a range so it reads as zeroes (`FALLOC_FL_PUNCH_HOLE | KEEP_SIZE`).
    ///
    /// Falls back to writing zeroes when the filesystem cannot punch holes.
    public func punchHole(at offset: UInt64, length: UInt64) throws(BlockError) {
        if length == 0 { return }
        if let memory, memory.zero(at: offset, length: length, extend: false) == 0 { return }
        let r = memory != nil ? -1 : bs_fallocate(fd, 0x02 | 0x01, Int64(offset), Int64(length))
        if r == 0 { return }
        try writeZeroes(at: offset, length: length)
    }

    /// Writes zeroes over a range, preferring `FALLOC_FL_ZERO_RANGE`.
    public func writeZeroes(at offset: UInt64, length: UInt64) throws(BlockError) {
        if length == 0 { return }
        guard length <= UInt64(Int.max) else { throw BlockError(.outOfBounds, "zero range of \(length) bytes is too long", path: path, hostOffset: offset, operation: "write") }
        try checkRange(offset, Int(length), "write")
        if let memory {
            let e = memory.zero(at: offset, length: length, extend: true)
            if e != 0 { throw BlockError.system(e, "fallocate", path: path, hostOffset: offset) }
            return
        }
        if bs_fallocate(fd, 0x10, Int64(offset), Int64(length)) == 0 { return }
        let chunk = 1 << 20
        let zeroes = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { zeroes.deallocate() }
        zeroes.initializeMemory(as: UInt8.self, repeating: 0)
        var done: UInt64 = 0
        while done < length {
            let n = Int(min(UInt64(chunk), length - done))
            try write(UnsafeRawBufferPointer(rebasing: zeroes[0..<n]), at: offset + done)
            done += UInt64(n)
        }
    }

    /// The next offset at or after `offset` that holds data (`SEEK_DATA`), or nil past the last data.
    public func nextData(from offset: UInt64) -> UInt64? {
        guard offset <= UInt64(Int64.max) else { return nil }
        if let memory { return memory.nextData(from: offset) }
        let r = lseek(fd, off_t(offset), 3 /* SEEK_DATA */)
        return r < 0 ? nil : UInt64(r)
    }

    /// The next hole at or after `offset` (`SEEK_HOLE`); end of file counts as a hole.
    public func nextHole(from offset: UInt64) -> UInt64? {
        guard offset <= UInt64(Int64.max) else { return nil }
        if let memory { return memory.nextHole(from: offset) }
        let r = lseek(fd, off_t(offset), 4 /* SEEK_HOLE */)
        return r < 0 ? nil : UInt64(r)
    }
}

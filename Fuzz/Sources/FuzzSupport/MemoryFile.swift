#if canImport(Glibc)
import Glibc
#endif
import BlockCore
@_spi(Fuzzing) import BlockIO

/// A file held in this process's memory, behind ``SystemFile`` (BlockCore's
/// ``MemoryFileStorage`` seam), so that an input costs the formats' own work and no file
/// system work: no page cache, no `fallocate` of a 16 MiB QCOW2 growth step on tmpfs and
/// `ftruncate` back at close (half of `qcow2-write`'s time before, docs/FUZZING.md).
///
/// One anonymous mapping of ``capacity`` bytes (`MAP_NORESERVE`: only pages written are
/// backed) is reused for every input; ``reset(size:)`` zeroes only the pages the previous
/// input wrote. The capacity is the cap on what one input may make the file hold: a write,
/// zero range or truncate past it fails with `EFBIG`, as a file size limit does, so an input
/// that names a host offset of terabytes gets an error, not a terabyte. Pages are 4 KiB;
/// a page written since the last reset is data for `SEEK_DATA`, the others are holes (a
/// zero range over a whole page makes it a hole again), which is what tmpfs reported.
///
/// Not thread-safe beyond what the targets need: one target's threads take turns on it.
public final class MemoryFile: @unchecked Sendable {
    /// The largest size the file may reach.
    public let capacity: UInt64
    private let base: UnsafeMutableRawPointer
    private static let pageShift: UInt64 = 12
    private static let pageSize: UInt64 = 1 << pageShift
    /// One bit per page: written since the last reset (to be zeroed by the next reset).
    private var touched: [UInt64]
    /// One bit per page: holds data for `SEEK_DATA` (touched and not wholly zeroed since).
    private var data: [UInt64]
    /// The touched pages, in the order first written.
    private var touchedList: [UInt32] = []
    private var dataPages = 0
    /// The file's size in bytes.
    public private(set) var size: UInt64 = 0
    /// Bytes written or zeroed through this file since the last reset (reads are not counted).
    public private(set) var bytesStored: UInt64 = 0
    /// Whether anything was written, zeroed or truncated since the last ``load(_:)`` or reset.
    public private(set) var changed = false

    /// Reserves `capacity` bytes of address space (rounded up to whole pages).
    public init(capacity: UInt64) {
        let cap = (capacity + MemoryFile.pageSize - 1) & ~(MemoryFile.pageSize - 1)
        self.capacity = cap
        let p = mmap(nil, Int(cap), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if p == MAP_FAILED || p == nil { violation("cannot reserve \(cap) bytes for the in-memory image") }
        base = p!
        let words = Int((cap >> MemoryFile.pageShift + 63) / 64)
        touched = [UInt64](repeating: 0, count: words)
        data = [UInt64](repeating: 0, count: words)
    }

    /// Bytes holding data: whole data pages.
    public var allocatedSize: UInt64 { UInt64(dataPages) << MemoryFile.pageShift }

    /// Empties the file (every byte zero again) and sets its size.
    public func reset(size newSize: UInt64 = 0) {
        if touchedList.count > 4096 {
            // Many pages: give them back at once (the next touch maps a zero page).
            madvise(base, Int(capacity), MADV_DONTNEED)
        } else {
            for p in touchedList {
                memset(base + Int(UInt64(p) << MemoryFile.pageShift), 0, Int(MemoryFile.pageSize))
            }
        }
        for p in touchedList {
            touched[Int(p) >> 6] = 0
            data[Int(p) >> 6] = 0
        }
        touchedList.removeAll(keepingCapacity: true)
        dataPages = 0
        bytesStored = 0
        size = min(newSize, capacity)
        changed = false
    }

    /// Replaces the file's content with `bytes` (the size becomes their count, capped).
    public func load<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        reset(size: 0)
        let done = bytes.withContiguousStorageIfAvailable { write(UnsafeRawBufferPointer($0), at: 0) }
        if done == nil { _ = Array(bytes).withUnsafeBytes { write($0, at: 0) } }
        changed = false
    }

    /// The file's content, `count` bytes at `offset` (zeroes past the end).
    public func bytes(at offset: UInt64, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { _ = read(into: $0, at: offset) }
        return out
    }

    /// Reads `buffer.count` bytes at `offset`; bytes past the size read as zeroes.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> Int {
        guard buffer.count > 0 else { return 0 }
        let n = offset >= size ? 0 : Int(min(UInt64(buffer.count), size - offset))
        if n > 0 { memcpy(buffer.baseAddress!, base + Int(offset), n) }
        if n < buffer.count { memset(buffer.baseAddress! + n, 0, buffer.count - n) }
        return n
    }

    /// Stores `buffer` at `offset`; `EFBIG` past the capacity.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) -> Int32 {
        guard buffer.count > 0 else { return 0 }
        let (end, o) = offset.addingReportingOverflow(UInt64(buffer.count))
        if o || end > capacity { return EFBIG }
        touch(offset, end)
        memcpy(base + Int(offset), buffer.baseAddress!, buffer.count)
        size = max(size, end)
        bytesStored &+= UInt64(buffer.count)
        changed = true
        return 0
    }

    /// Sets the size; bytes past a smaller size become zeroes.
    public func truncate(to newSize: UInt64) -> Int32 {
        if newSize > capacity { return EFBIG }
        if newSize < size { clear(newSize, size, holes: true) }
        if newSize != size { changed = true }
        size = newSize
        return 0
    }

    /// Zeroes a range (only the pages that hold anything need it); whole pages become holes.
    public func zero(at offset: UInt64, length: UInt64, extend: Bool) -> Int32 {
        let (end0, o) = offset.addingReportingOverflow(length)
        if o { return EFBIG }
        var end = end0
        if extend {
            if end > capacity { return EFBIG }
        } else {
            end = min(end, size)
        }
        if offset < end {
            clear(offset, min(end, capacity), holes: true)
            bytesStored &+= end - offset
            changed = true
        }
        if extend && end > size { size = end; changed = true }
        return 0
    }

    /// The first data page at or after `offset` below the size.
    public func nextData(from offset: UInt64) -> UInt64? {
        guard offset < size else { return nil }
        var p = offset >> MemoryFile.pageShift
        let last = (size - 1) >> MemoryFile.pageShift
        while p <= last {
            if isSet(data, p) { return max(offset, p << MemoryFile.pageShift) }
            p += 1
        }
        return nil
    }

    /// The first hole page at or after `offset`, or the size.
    public func nextHole(from offset: UInt64) -> UInt64? {
        guard offset < size else { return nil }
        var p = offset >> MemoryFile.pageShift
        let last = (size - 1) >> MemoryFile.pageShift
        while p <= last {
            if !isSet(data, p) { return max(offset, p << MemoryFile.pageShift) }
            p += 1
        }
        return size
    }

    private func isSet(_ bits: [UInt64], _ p: UInt64) -> Bool {
        bits[Int(p >> 6)] & (1 << (p & 63)) != 0
    }

    /// Marks the pages of [start, end) touched and data.
    private func touch(_ start: UInt64, _ end: UInt64) {
        var p = start >> MemoryFile.pageShift
        let last = (end - 1) >> MemoryFile.pageShift
        while p <= last {
            let w = Int(p >> 6), bit: UInt64 = 1 << (p & 63)
            if touched[w] & bit == 0 {
                touched[w] |= bit
                touchedList.append(UInt32(p))
            }
            if data[w] & bit == 0 {
                data[w] |= bit
                dataPages += 1
            }
            p += 1
        }
    }

    /// Zeroes [start, end) where pages were touched; with `holes`, pages wholly inside stop
    /// being data.
    private func clear(_ start: UInt64, _ end: UInt64, holes: Bool) {
        guard start < end else { return }
        var p = start >> MemoryFile.pageShift
        let last = (end - 1) >> MemoryFile.pageShift
        while p <= last {
            let w = Int(p >> 6), bit: UInt64 = 1 << (p & 63)
            if touched[w] & bit != 0 {
                let ps = p << MemoryFile.pageShift, pe = ps + MemoryFile.pageSize
                let s = max(ps, start), e = min(pe, end)
                memset(base + Int(s), 0, Int(e - s))
                if holes && s == ps && e == pe && data[w] & bit != 0 {
                    data[w] &= ~bit
                    dataPages -= 1
                }
            }
            p += 1
        }
    }
}

/// The conformance BlockCore's seam needs (SPI: only the fuzz targets see it).
@_spi(Fuzzing) extension MemoryFile: MemoryFileStorage {}

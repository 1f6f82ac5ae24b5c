import Synchronization
import BlockIO

#if canImport(Glibc)
import Glibc
#endif

/// Where one guest range of a block-mapped image (VHDX, VHD) lives.
package struct BlockRegion: Sendable, Equatable {
    /// What backs the range.
    public enum Kind: Sendable, Equatable {
        /// Bytes at this host offset of the image file.
        case data(host: UInt64)
        /// Reads as zeroes.
        case zero
        /// Read from the parent (differencing disks); zeroes without one.
        case parent
    }
    /// Guest offset.
    public var guestOffset: UInt64
    /// Length in bytes.
    public var length: UInt64
    /// What backs it.
    public var kind: Kind

    /// Creates a region.
    public init(guestOffset: UInt64, length: UInt64, kind: Kind) {
        self.guestOffset = guestOffset
        self.length = length
        self.kind = kind
    }

    /// Appends `r` to `list`, merging it into the last region when contiguous and of the same kind.
    public static func append(_ r: BlockRegion, to list: inout [BlockRegion]) {
        if r.length == 0 { return }
        if var last = list.last, last.guestOffset + last.length == r.guestOffset {
            switch (last.kind, r.kind) {
            case let (.data(a), .data(b)) where a + last.length == b: last.length += r.length
            case (.zero, .zero), (.parent, .parent): last.length += r.length
            default: list.append(r); return
            }
            list[list.count - 1] = last
            return
        }
        list.append(r)
    }
}

/// A disk whose guest ranges map onto host ranges block by block: the contract the shared
/// async engine (``MappedAsync``) drives. VHDX and VHD implement it.
///
/// Mapping calls take the format's metadata lock briefly; data I/O happens outside it.
package protocol BlockMappedDisk: DiskFile {
    /// The data file's descriptor for io_uring.
    var dataFD: Int32 { get }
    /// Host regions for a guest read; never allocates.
    func mapForRead(_ offset: UInt64, _ length: UInt64) throws(BlockError) -> [BlockRegion]
    /// Host regions for a guest write: allocates blocks (metadata updated synchronously, through
    /// the log for VHDX) and returns only `.data` regions. Publishes allocation events to `sink`.
    func mapForWrite(_ offset: UInt64, _ length: UInt64, queue: Int32, request: UInt64, sink: (any IoEventSink)?) throws(BlockError) -> [BlockRegion]
    /// Reads a guest range from the parent image, or zeroes when there is none.
    func readParent(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError)
    /// The host offset of a guest range that lies inside one block already backed by data,
    /// or nil (the caller then maps with ``mapForRead(_:_:)`` / ``mapForWrite(_:_:queue:request:sink:)``).
    ///
    /// The hot path of steady-state I/O: one lock round trip, no array. With `write`, nil also
    /// when the write session has not started yet (the first write updates the headers).
    func mappedHostOffset(_ offset: UInt64, _ length: UInt64, write: Bool) -> UInt64?
    /// A token for the metadata state an fsync starting now will make durable.
    func flushMark() -> UInt64
    /// Called after an fsync that started at `mark` completed (a log may then advance its tail).
    func flushCompleted(_ mark: UInt64)
}

extension BlockMappedDisk {
    /// No fast path: every request goes through the region mapping.
    public func mappedHostOffset(_ offset: UInt64, _ length: UInt64, write: Bool) -> UInt64? { nil }

    /// Checks a guest range against the disk size and, for writes, the open mode.
    package func checkRange(_ offset: UInt64, _ length: UInt64, _ op: String, write: Bool) throws(BlockError) {
        let (end, o) = offset.addingReportingOverflow(length)
        if o || end > logicalSize {
            throw BlockError(.outOfBounds, "\(op) of \(length) bytes at \(hex(offset)) ends past the end of the disk (size \(logicalSize))", path: path, guestOffset: offset, operation: op)
        }
        if write && !isWritable {
            throw BlockError(.readOnly, "image is open read-only: cannot \(op)", path: path, guestOffset: offset, operation: op)
        }
    }

    /// Synchronous read through the mapping: `pread` for data, zero fill, or the parent.
    package func readMapped(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, file: SystemFile) throws(BlockError) {
        try checkRange(offset, UInt64(buffer.count), "read", write: false)
        for r in try mapForRead(offset, UInt64(buffer.count)) {
            let s = Int(r.guestOffset - offset)
            let sub = UnsafeMutableRawBufferPointer(rebasing: buffer[s..<(s + Int(r.length))])
            switch r.kind {
            case let .data(host): try file.read(into: sub, at: host)
            case .zero: sub.initializeMemory(as: UInt8.self, repeating: 0)
            case .parent: try readParent(into: sub, at: r.guestOffset)
            }
        }
    }

    /// Synchronous write through the mapping (allocating as needed).
    package func writeMapped(_ buffer: UnsafeRawBufferPointer, at offset: UInt64, file: SystemFile) throws(BlockError) {
        try checkRange(offset, UInt64(buffer.count), "write", write: true)
        for r in try mapForWrite(offset, UInt64(buffer.count), queue: 0, request: 0, sink: nil) {
            guard case let .data(host) = r.kind else { continue }
            let s = Int(r.guestOffset - offset)
            try file.write(UnsafeRawBufferPointer(rebasing: buffer[s..<(s + Int(r.length))]), at: host)
        }
    }
}

/// The metadata lock of a block-map image: a `Synchronization.Mutex` (the project's one
/// exclusion primitive, docs/adr/0017-format-modules.md) owned by a class, so every queue of the image
/// shares it. Held while a request's mapping is resolved or an allocation recorded; data I/O
/// runs outside it.
package final class MetadataLock: @unchecked Sendable {
    private let m = Mutex(())
    package init() {}
    /// Runs `body` with the lock held.
    @inline(__always)
    package func locked<T>(_ body: () throws(BlockError) -> T) throws(BlockError) -> T {
        try m.withLock { _ throws(BlockError) -> T in try body() }
    }
    /// Runs a non-throwing `body` with the lock held.
    @inline(__always)
    package func run<T>(_ body: () -> T) -> T {
        m.withLock { _ in body() }
    }
}

/// Splits the guest range `[offset, offset + length)` into pieces that each lie in one block
/// and calls `body(block, offsetInBlock, guestOffset, pieceLength)` for each, in order: the
/// walk every block-map format (VHDX, VHD) does to map a request.
package func forEachBlockPiece(offset: UInt64, length: UInt64, blockSize bs: UInt64,
                       _ body: (_ block: UInt64, _ inBlock: UInt64, _ pos: UInt64, _ n: UInt64) throws(BlockError) -> Void) throws(BlockError) {
    var pos = offset
    let end = offset + length
    while pos < end {
        let inBlock = pos % bs
        let n = min(bs - inBlock, end - pos)
        try body(pos / bs, inBlock, pos, n)
        pos += n
    }
}

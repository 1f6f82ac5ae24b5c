import BlockIO
import BlockMap
import BlockInspect

#if canImport(Glibc)
import Glibc
#endif

/// An open VHDX image (fixed, dynamic or differencing): the ``DiskFile`` every queue shares.
///
/// Metadata lives in ``VhdxMetadata`` (one lock). Synchronous I/O uses `pread`/`pwrite`;
/// ``makeQueue(_:)`` returns a ``VhdxAsync`` io_uring queue, or a ``SyncQueue`` for
/// `--engine=sync` or when io_uring is unavailable. A differencing disk opens its parent
/// read-only (relative path first, then absolute), refusing loops through the open chain.
public final class VhdxDisk: BlockMappedDisk, InspectableDisk, @unchecked Sendable {
    /// The image file (metadata I/O; buffered).
    public let file: SystemFile
    /// The file guest data moves through: `file` itself, or a second `O_DIRECT` descriptor
    /// when the disk was opened with `direct` (callers then align buffers, offsets and lengths).
    public let dataFile: SystemFile
    /// The shared metadata.
    public let metadata: VhdxMetadata
    /// The image path.
    public let path: String
    /// Always `.vhdx`.
    public let format: ImageFormat = .vhdx
    /// Guest size in bytes.
    public let logicalSize: UInt64
    /// Whether the image is writable.
    public let isWritable: Bool
    /// Block-size hints (logical/physical sector size, block size as optimal I/O).
    public let topology: DiskTopology
    /// Warnings from open (in-memory log replay, lock notes).
    public let warnings: [String]
    /// The parent image of a differencing disk.
    public let parent: (any DiskFile)?
    /// The parent path that was opened.
    public let parentPath: String?
    private let options: OpenOptions

    /// Opens `file` as VHDX: replays the log (on disk when writable, in memory otherwise) and
    /// opens the parent of a differencing disk.
    public init(file: SystemFile, options: OpenOptions, warnings: [String] = []) throws(BlockError) {
        self.file = file
        self.path = file.path
        self.options = options
        self.isWritable = options.writable
        do {
            metadata = try VhdxMetadata(file: file, writable: options.writable)
        } catch let e { throw e.withPath(file.path) }
        let items = metadata.items
        logicalSize = items.virtualSize
        topology = DiskTopology(logicalBlockSize: Int(items.logicalSectorSize), physicalBlockSize: Int(items.physicalSectorSize),
                                minimumIoSize: Int(items.logicalSectorSize), optimalIoSize: Int(items.blockSize),
                                requestAlignment: 512)
        var w = warnings
        if metadata.replayedInMemory {
            w.append("\(file.path): vhdx: the log holds \(metadata.replayedEntries) unreplayed entries; replayed in memory only (a writable open replays them into the file)")
        }
        if items.hasParent {
            let (p, pp) = try VhdxDisk.openParent(path: file.path, locator: items.parentLocator ?? [:], options: options)
            parent = p
            parentPath = pp
            metadata.parent = p
            if let linkage = items.parentLocator?["parent_linkage"], let pv = p as? VhdxDisk {
                let want = "{\(pv.metadata.currentHeader.dataWriteGuid)}"
                if linkage.uppercased() != want.uppercased() {
                    w.append("\(file.path): vhdx: parent_linkage \(linkage) does not match the parent's DataWriteGuid \(want): the parent was modified after this child was created")
                }
            }
        } else {
            parent = nil
            parentPath = nil
        }
        dataFile = try openDataFile(file, direct: options.direct, warnings: &w)
        self.warnings = w
    }

    /// Resolves and opens a parent: `relative_path` against the child's folder, then
    /// `absolute_win32_path`, then `volume_path`. Windows separators become `/`.
    static func openParent(path: String, locator: [String: String], options: OpenOptions) throws(BlockError) -> (any DiskFile, String) {
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        var candidates: [String] = []
        var keys: [String] = []
        for key in ["relative_path", "absolute_win32_path", "volume_path"] {
            guard var v = locator[key], !v.isEmpty else { continue }
            v = String(v.map { $0 == "\\" ? "/" : $0 })
            if v.hasPrefix("./") { v.removeFirst(2) }
            candidates.append(key == "relative_path" && !v.hasPrefix("/") ? dir + "/" + v : v)
            keys.append(key)
        }
        if candidates.isEmpty {
            throw BlockError(.invalidFormat, "vhdx: differencing disk has no usable parent locator entry (relative_path, absolute_win32_path)", path: path, operation: "open")
        }
        var o = OpenOptions(writable: false, format: nil, engine: options.engine)
        o.chain = options.chain + [path]
        o.maxBackingDepth = options.maxBackingDepth
        o.ignoreLocks = options.ignoreLocks
        o.referenceRoot = options.referenceRoot
        var lastError: BlockError?
        for (c, key) in zip(candidates, keys) {
            do { return (try options.openReference(c, options: o), c) } catch let e {
                if e.kind != .notFound { throw e.referredTo(by: path, referenced: c, "vhdx: parent '\(c)' (metadata parent locator \(key))") }
                lastError = e
            }
        }
        throw BlockError(.notFound, "vhdx: parent image not found (tried \(candidates.joined(separator: ", ")))", errno: lastError?.errno, path: path, operation: "open")
    }

    /// The data file descriptor.
    public var dataFD: Int32 { dataFile.fd }
    /// Host regions for a guest read.
    package func mapForRead(_ offset: UInt64, _ length: UInt64) throws(BlockError) -> [BlockRegion] {
        try metadata.mapBlocksForRead(offset, length)
    }
    /// Host regions for a guest write (allocating).
    package func mapForWrite(_ offset: UInt64, _ length: UInt64, queue: Int32, request: UInt64, sink: (any IoEventSink)?) throws(BlockError) -> [BlockRegion] {
        try metadata.mapBlocksForWrite(offset, length, queue: queue, request: request, sink: sink)
    }
    /// The host offset of a range inside one FULLY_PRESENT block (nil otherwise).
    public func mappedHostOffset(_ offset: UInt64, _ length: UInt64, write: Bool) -> UInt64? {
        metadata.presentHostOffset(offset, length, write: write)
    }
    /// Reads from the parent, or zeroes.
    public func readParent(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError) {
        try readFromParent(parent, into: buffer, at: offset)
    }
    /// The log position an fsync starting now covers.
    public func flushMark() -> UInt64 { metadata.flushMark() }
    /// Advances the log tail after a completed fsync.
    public func flushCompleted(_ mark: UInt64) { metadata.flushCompleted(mark) }

    /// Bytes the file occupies on the host.
    public func physicalSize() throws(BlockError) -> UInt64 { try file.allocatedSize() }
    /// Reads guest bytes synchronously.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError) {
        try readMapped(into: buffer, at: offset, file: dataFile)
    }
    /// Writes guest bytes synchronously, allocating blocks.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockError) {
        try writeMapped(buffer, at: offset, file: dataFile)
    }
    /// Whole blocks become ZERO in the BAT; partial blocks get zeroes written where they hold data.
    public func writeZeroes(at offset: UInt64, length: UInt64) throws(BlockError) {
        try zeroRange(offset, length, discard: false)
    }
    /// Whole blocks become ZERO (NOT_PRESENT in a differencing disk, exposing the parent);
    /// partial blocks are left as they are (a discard is advisory).
    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        try zeroRange(offset, length, discard: true)
    }

    private func zeroRange(_ offset: UInt64, _ length: UInt64, discard: Bool) throws(BlockError) {
        try checkRange(offset, length, discard ? "discard" : "zero", write: true)
        let bs = UInt64(metadata.items.blockSize)
        let end = offset + length
        let firstFull = (offset + bs - 1) / bs
        let lastFull = end == logicalSize ? (end + bs - 1) / bs : end / bs
        if firstFull < lastFull {
            try metadata.setBlocks(firstFull..<lastFull, state: discard && metadata.items.hasParent ? .notPresent : .zero)
        }
        if discard { return }
        let partials: [(UInt64, UInt64)] = firstFull < lastFull
            ? [(offset, min(end, firstFull * bs) - offset), (min(max(lastFull * bs, offset), end), end - min(max(lastFull * bs, offset), end))]
            : [(offset, length)]
        for (o, l) in partials where l > 0 {
            let regions = try mapForRead(o, l)
            if regions.allSatisfy({ $0.kind == .zero }) { continue }
            let zeroes = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(l), alignment: 4096)
            defer { zeroes.deallocate() }
            zeroes.initializeMemory(as: UInt8.self, repeating: 0)
            try write(UnsafeRawBufferPointer(zeroes), at: o)
        }
    }

    /// `fdatasync` on the file, then advances the log tail.
    public func flush() throws(BlockError) {
        if isWritable {
            let mark = metadata.flushMark()
            try file.sync(dataOnly: true)
            metadata.flushCompleted(mark)
        }
    }

    /// An io_uring queue, or a synchronous one for `--engine=sync` or without io_uring.
    public func makeQueue(_ q: QueueOptions) throws(BlockError) -> any AsyncIo {
        let (q, sync) = q.resolved(with: options)
        if sync { return SyncQueue(disk: self, options: q) }
        return try VhdxAsync(disk: self, options: q)
    }

    /// Flushes, writes clean headers (log GUID cleared) and closes the file and the parent.
    public func close() throws(BlockError) {
        if isWritable { try file.sync(dataOnly: true) }
        try metadata.close()
        if let parent { try parent.close() }
        if dataFile !== file { dataFile.close() }
        file.close()
    }
}

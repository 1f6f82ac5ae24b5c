import BlockIO
import BlockMap
import BlockInspect

#if canImport(Glibc)
import Glibc
#endif

/// An open VHD image (qemu-img's `vpc`: fixed, dynamic or differencing).
///
/// A fixed disk maps guest byte N to host byte N; dynamic and differencing disks map
/// through ``VhdMetadata``. The guest size follows qemu's CHS-versus-current_size rule
/// (``VhdFooter/virtualSize``). Queues are ``VhdAsync`` (io_uring) or ``SyncQueue``.
public final class VhdDisk: BlockMappedDisk, InspectableDisk, @unchecked Sendable {
    /// The image file (metadata I/O; buffered).
    public let file: SystemFile
    /// The file guest data moves through: `file` itself, or a second `O_DIRECT` descriptor
    /// when the disk was opened with `direct` (callers then align buffers, offsets and lengths).
    public let dataFile: SystemFile
    /// The footer.
    public let footer: VhdFooter
    /// Block metadata (nil for fixed disks).
    public let metadata: VhdMetadata?
    /// The image path.
    public let path: String
    /// Always `.vpc`.
    public let format: ImageFormat = .vpc
    /// Guest size in bytes.
    public let logicalSize: UInt64
    /// Whether the image is writable.
    public let isWritable: Bool
    /// Block-size hints.
    public let topology: DiskTopology
    /// Warnings from open.
    public let warnings: [String]
    /// The parent of a differencing disk.
    public let parent: (any DiskFile)?
    /// The parent path that was opened.
    public let parentPath: String?
    private let options: OpenOptions

    /// Opens `file` as VHD: the footer at the end (or its copy at offset 0), then for dynamic
    /// and differencing disks the dynamic header, BAT and parent.
    public init(file: SystemFile, options: OpenOptions, warnings: [String] = []) throws(BlockError) {
        self.file = file
        self.path = file.path
        self.options = options
        self.isWritable = options.writable
        var w = warnings
        let size = try file.size()
        if size < 512 { throw BlockError(.invalidFormat, "vpc: file is smaller than a footer (\(size) bytes)", path: path, operation: "open") }
        let footerOffset = (size - 512) / 512 * 512
        var f = try VhdFooter.parse(try file.readBytes(at: footerOffset, count: 512), path: path, at: footerOffset)
        var fromCopy = false
        if f == nil, let copy = try VhdFooter.parse(try file.readBytes(at: 0, count: 512), path: path, at: 0) {
            w.append("\(path): vpc: the footer at the end of the file is missing; using the copy at offset 0")
            f = copy
            fromCopy = true
        }
        guard let f else {
            throw BlockError(.invalidFormat, "vpc: no 'conectix' footer at the end of the file (\(hex(footerOffset))) or at offset 0", path: path, hostOffset: footerOffset, operation: "open")
        }
        if f.diskType == .fixed && fromCopy {
            // The copy at offset 0 belongs to dynamic and differencing disks only: a fixed
            // disk's data begins at offset 0, so its first write would overwrite this footer
            // and the image would no longer open (the vhd fuzz target, 2026-12-05). qemu-img
            // refuses such a file too.
            throw BlockError(.corruptImage, "vpc: no footer at the end of the file (\(hex(footerOffset))), and the copy at offset 0 describes a fixed disk, whose data starts at offset 0", path: path, hostOffset: footerOffset, operation: "open")
        }
        footer = f
        logicalSize = f.virtualSize
        if f.diskType == .fixed {
            metadata = nil
            if logicalSize > footerOffset {
                throw BlockError(.corruptImage, "vpc: fixed disk of \(logicalSize) bytes does not fit in the file (data area \(footerOffset) bytes)", path: path, operation: "open")
            }
            parent = nil
            parentPath = nil
        } else {
            let m = try VhdMetadata(file: file, footer: f, footerOffset: footerOffset, writable: options.writable)
            metadata = m
            if f.diskType == .differencing {
                let (p, pp) = try VhdDisk.openParent(file: file, header: m.dynamic, options: options)
                parent = p
                parentPath = pp
                m.parent = p
            } else {
                parent = nil
                parentPath = nil
            }
        }
        topology = DiskTopology(logicalBlockSize: 512, physicalBlockSize: 512, minimumIoSize: 512,
                                optimalIoSize: Int(metadata?.dynamic.blockSize ?? 0))
        dataFile = try openDataFile(file, direct: options.direct, warnings: &w)
        self.warnings = w
    }

    /// Opens a differencing disk's parent: `W2ru` (relative to the child's folder), then `W2ku`,
    /// then the parent name next to the child.
    static func openParent(file: SystemFile, header: VhdDynamicHeader, options: OpenOptions) throws(BlockError) -> (any DiskFile, String) {
        let path = file.path
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        var candidates: [String] = []
        var fields: [String] = []
        for code in [VhdParentLocator.relative, VhdParentLocator.absolute] {
            for l in header.locators where l.platformCode == code && l.dataLength > 0 && l.dataLength < 65536 {
                let b = try file.readBytes(at: l.dataOffset, count: Int(l.dataLength))
                var v = String(ByteField.utf16(b[...], bigEndian: false).map { $0 == "\\" ? "/" : $0 })
                if v.hasPrefix("./") { v.removeFirst(2) }
                if !v.isEmpty {
                    candidates.append(code == VhdParentLocator.relative && !v.hasPrefix("/") ? dir + "/" + v : v)
                    fields.append("dynamic header parent locator \(code == VhdParentLocator.relative ? "W2ru" : "W2ku") at \(hex(l.dataOffset))")
                }
            }
        }
        if !header.parentName.isEmpty {
            candidates.append(dir + "/" + header.parentName)
            fields.append("dynamic header parent_name")
        }
        var o = OpenOptions(writable: false, format: nil, engine: options.engine)
        o.chain = options.chain + [path]
        o.maxBackingDepth = options.maxBackingDepth
        o.ignoreLocks = options.ignoreLocks
        o.referenceRoot = options.referenceRoot
        for (c, field) in zip(candidates, fields) {
            do { return (try options.openReference(c, options: o), c) } catch let e {
                if e.kind != .notFound { throw e.referredTo(by: path, referenced: c, "vpc: parent '\(c)' (\(field))") }
            }
        }
        throw BlockError(.notFound, "vpc: parent image not found (tried \(candidates.joined(separator: ", ")))", path: path, operation: "open")
    }

    /// The data file descriptor.
    public var dataFD: Int32 { dataFile.fd }
    /// Host regions for a guest read.
    package func mapForRead(_ offset: UInt64, _ length: UInt64) throws(BlockError) -> [BlockRegion] {
        if let metadata { return try metadata.mapForRead(offset, length) }
        return [BlockRegion(guestOffset: offset, length: length, kind: .data(host: offset))]
    }
    /// Host regions for a guest write (allocating).
    package func mapForWrite(_ offset: UInt64, _ length: UInt64, queue: Int32, request: UInt64, sink: (any IoEventSink)?) throws(BlockError) -> [BlockRegion] {
        if let metadata { return try metadata.mapForWrite(offset, length, queue: queue, request: request, sink: sink) }
        return [BlockRegion(guestOffset: offset, length: length, kind: .data(host: offset))]
    }
    /// Reads from the parent, or zeroes.
    public func readParent(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError) {
        try readFromParent(parent, into: buffer, at: offset)
    }
    /// VHD has no log: no mark.
    public func flushMark() -> UInt64 { 0 }
    /// Nothing to advance: VHD has no log.
    public func flushCompleted(_ mark: UInt64) {}

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
    /// Writes zeroes where the range does not already read as zeroes (VHD cannot deallocate).
    public func writeZeroes(at offset: UInt64, length: UInt64) throws(BlockError) {
        try checkRange(offset, length, "zero", write: true)
        let chunk: UInt64 = 1 << 20
        var pos = offset
        while pos < offset + length {
            let n = min(chunk, offset + length - pos)
            if try !mapForRead(pos, n).allSatisfy({ $0.kind == .zero }) {
                let z = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(n), alignment: 4096)
                defer { z.deallocate() }
                z.initializeMemory(as: UInt8.self, repeating: 0)
                try write(UnsafeRawBufferPointer(z), at: pos)
            }
            pos += n
        }
    }
    /// A discard is advisory and VHD cannot deallocate blocks: checks the range and does nothing.
    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        try checkRange(offset, length, "discard", write: true)
    }
    /// `fdatasync` on the file.
    public func flush() throws(BlockError) { if isWritable { try file.sync(dataOnly: true) } }

    /// An io_uring queue, or a synchronous one for `--engine=sync` or without io_uring.
    public func makeQueue(_ q: QueueOptions) throws(BlockError) -> any AsyncIo {
        let (q, sync) = q.resolved(with: options)
        if sync { return SyncQueue(disk: self, options: q) }
        return try VhdAsync(disk: self, options: q)
    }

    /// Flushes and closes the file and the parent.
    public func close() throws(BlockError) {
        try flush()
        if let parent { try parent.close() }
        if dataFile !== file { dataFile.close() }
        file.close()
    }
}

/// The VHD io_uring queue (the engine shared with VHDX).
package typealias VhdAsync = MappedAsync

import BlockIO
import BlockInspect
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An open QCOW2 image (v2 or v3): the synchronous read path, backing chain, external data
/// file and snapshot views over one shared ``QcowMetadata``.
///
/// Reads resolve the guest range under the metadata lock and then read data outside it:
/// from the data file (the image itself, or the external data file), as zeroes, from the
/// backing image, or by decompressing a cluster. ``makeQueue(_:)`` returns a ``QcowAsync``
/// io_uring queue (``SyncQueue`` for `--engine=sync`). Writes are planned under the same
/// lock (``QcowMetadata/planWrite(offset:length:zeroData:events:)``) and their data written
/// outside it; see Qcow2DiskWrite.swift and docs/adr/0006-qcow2-write-ordering.md.
public final class Qcow2Disk: DiskFile, @unchecked Sendable {
    /// The shared metadata object (reloaded once after a writable open repaired a dirty image).
    public private(set) var metadata: QcowMetadata
    /// The image file.
    public let file: SystemFile
    /// The file guest data lives in: the external data file, or ``file``.
    public let dataFile: SystemFile
    /// A second, `O_DIRECT` descriptor on the data file (`OpenOptions.direct`), used by the
    /// io_uring queue for data reads whose offset, length and buffer are 4 KiB-aligned;
    /// nil when not asked for or when the filesystem refuses `O_DIRECT`.
    public let directDataFile: SystemFile?
    /// The backing image, when there is one (any format blockscope opens).
    public let backing: (any DiskFile)?
    /// The backing file name as stored in the image.
    public let backingName: String?
    /// The backing file path as resolved against the image's directory.
    public let backingPath: String?
    /// The image path.
    public let path: String
    /// Always `.qcow2`.
    public let format: ImageFormat = .qcow2
    /// The guest size (of the snapshot view, when one was chosen).
    public let logicalSize: UInt64
    /// Whether the image was opened for writing.
    public let isWritable: Bool
    /// Block-size hints: 512-byte sectors, the cluster as the optimal size.
    public let topology: DiskTopology
    /// Warnings from open (corrupt bit, dirty bit, encryption).
    public let warnings: [String]
    let options: OpenOptions
    /// ``backingAllocation``, built on first use.
    let backingAllocationCache = Mutex(BackingAllocationSlot())

    /// The header, for convenience.
    public var header: Qcow2Header { metadata.header }

    /// Opens a QCOW2 image from an open host file: parses the metadata, opens the external
    /// data file and the backing chain.
    ///
    /// The corrupt bit refuses a writable open; an encrypted image opens for inspection and
    /// refuses data reads. Relative backing and data file names are resolved against the
    /// image's directory; loops and chains deeper than `options.maxBackingDepth` are refused.
    public init(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) {
        self.file = file
        self.path = file.path
        self.options = options
        metadata = try QcowMetadata(file: file, snapshotName: options.snapshot, cacheEntries: options.metadataCacheEntries)
        let h = metadata.header
        var w = warnings
        if h.isCorrupt {
            if options.writable {
                throw BlockError(.corruptImage, "qcow2: the image is marked corrupt; it can only be opened read-only (repair with qemu-img check -r all)", path: path, operation: "open")
            }
            w.append("\(path): warning: the image is marked corrupt (opened read-only)")
        }
        if h.isDirty && !options.writable {
            w.append("\(path): warning: the image is dirty (lazy refcounts, not closed cleanly): refcounts may be stale until a writable open or a check with repair rebuilds them")
        }
        if h.cryptMethod != 0 {
            w.append("\(path): warning: the image is encrypted (\(h.cryptMethod == 1 ? "aes" : "luks")): metadata only, data reads are refused")
        }
        if options.snapshot != nil && options.writable {
            throw BlockError(.invalidArgument, "a snapshot view is read-only", path: path, operation: "open")
        }
        isWritable = options.writable
        logicalSize = metadata.viewSize
        topology = DiskTopology(logicalBlockSize: 512, physicalBlockSize: 512, minimumIoSize: 512, optimalIoSize: Int(h.clusterSize))
        let dir = Qcow2Disk.directory(of: path)

        // External data file.
        if h.hasExternalData {
            guard let name = metadata.extensions.dataFile, !name.isEmpty else {
                throw BlockError(.invalidFormat, "qcow2: the external data file bit is set but the image names no data file", path: path, operation: "open")
            }
            // Relative to the image's directory; QEMU 7.2 resolves it against its working
            // directory, so fall back to the name as given.
            var dpath = Qcow2Disk.resolve(name, in: dir)
            if access(dpath, F_OK) != 0 && access(name, F_OK) == 0 { dpath = name }
            do {
                try options.confine(dpath)
                dataFile = try SystemFile(path: dpath, writable: options.writable)
            } catch let e {
                throw e.referredTo(by: path, referenced: dpath, "qcow2: external data file '\(name)' (header extension 0x44415441)")
            }
        } else {
            dataFile = file
        }

        if options.direct {
            do { directDataFile = try SystemFile(path: dataFile.path, writable: options.writable, direct: true) } catch {
                directDataFile = nil
                w.append("\(path): warning: O_DIRECT is not available here (\(error.message)); reading through the page cache")
            }
        } else {
            directDataFile = nil
        }
        self.warnings = w

        // Backing chain.
        if h.backingFileOffset != 0 && h.backingFileSize > 0 {
            let bytes = try file.readBytes(at: h.backingFileOffset, count: Int(h.backingFileSize))
            let name = String(decoding: bytes, as: UTF8.self)
            backingName = name
            let bpath = Qcow2Disk.resolve(name, in: dir)
            backingPath = bpath
            var bo = OpenOptions(writable: false, format: nil, engine: options.engine)
            if let f = metadata.extensions.backingFormat {
                // qemu-img's name; the opener refuses a format blockscope does not know.
                bo.format = ImageFormat(rawValue: f)
            }
            bo.maxBackingDepth = options.maxBackingDepth
            bo.metadataCacheEntries = options.metadataCacheEntries
            bo.ignoreLocks = options.ignoreLocks
            bo.referenceRoot = options.referenceRoot
            bo.chain = options.chain + [Qcow2Disk.canonical(path)]
            let canon = Qcow2Disk.canonical(bpath)
            if bo.chain.contains(canon) {
                throw BlockError(.corruptImage, "backing chain loop: \(canon) is its own ancestor (\((bo.chain + [canon]).joined(separator: " -> ")))", path: path, operation: "open")
            }
            do { backing = try options.openReference(canon, options: bo) } catch let e {
                if e.kind == .notFound && e.path == canon {
                    throw BlockError(.notFound, "qcow2: backing file '\(name)' not found (resolved to \(bpath))", path: path, operation: "open")
                }
                throw e.referredTo(by: path, referenced: canon, "qcow2: backing file '\(name)' (header backing_file_offset \(hex(h.backingFileOffset)))")
            }
        } else {
            backing = nil
            backingName = nil
            backingPath = nil
        }
    }

    /// Prepares a writable open: a dirty image (lazy refcounts, not closed cleanly) is
    /// repaired first, as QEMU does, and its metadata reloaded; then the write path is set up.
    func prepareWrites() throws(BlockError) {
        guard isWritable else { return }
        if metadata.header.isDirty {
            _ = try check(repair: .all)
            metadata = try QcowMetadata(file: file, snapshotName: nil, cacheEntries: options.metadataCacheEntries)
        }
        try metadata.prepareForWriting(backingSize: backing?.logicalSize ?? 0, backingData: { [weak self] in self?.backingAllocation })
    }

    static func directory(of path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return "." }
        return i == path.startIndex ? "/" : String(path[..<i])
    }

    static func resolve(_ name: String, in dir: String) -> String {
        name.hasPrefix("/") ? name : (dir == "." ? name : dir + "/" + name)
    }

    static func canonical(_ path: String) -> String {
        guard let r = realpath(path, nil) else { return path }
        defer { free(r) }
        return String(cString: r)
    }

    /// Whether whole-image flushes (``flush()``, close) go through a private io_uring:
    /// yes unless the sync engine was chosen or io_uring is missing.
    var usesRing: Bool { options.engine != .sync && IoUringContext.isSupported }

    /// Bytes the image and its external data file occupy on the host.
    public func physicalSize() throws(BlockError) -> UInt64 {
        var n = try file.allocatedSize()
        if dataFile !== file { n += try dataFile.allocatedSize() }
        return n
    }

    /// Throws unless data reads are possible (encrypted images refuse them).
    func checkReadable(_ offset: UInt64) throws(BlockError) {
        if header.cryptMethod != 0 {
            throw BlockError(.unsupportedFeature, "qcow2: the image is encrypted; blockscope does not decrypt guest data", path: path, guestOffset: offset, operation: "read")
        }
    }

    /// Reads guest bytes synchronously (`pread` on the data file, backing reads, decompression).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError) {
        try checkReadable(offset)
        let maps = try metadata.mapClustersForRead(offset: offset, length: UInt64(buffer.count))
        var scratch: UnsafeMutableRawBufferPointer? = nil
        defer { scratch?.deallocate() }
        let dec = Qcow2Decompressor(type: header.compressionType)
        for m in maps {
            let start = Int(m.guestOffset - offset)
            let dst = UnsafeMutableRawBufferPointer(rebasing: buffer[start..<(start + Int(m.length))])
            switch m.kind {
            case let .data(host):
                try dataFile.read(into: dst, at: host)
            case .zero:
                dst.initializeMemory(as: UInt8.self, repeating: 0)
            case .backing:
                try readBacking(into: dst, at: m.guestOffset)
            case let .compressed(d, off):
                let cs = Int(header.clusterSize)
                if scratch == nil { scratch = .allocate(byteCount: cs, alignment: 4096) }
                let input = UnsafeMutableRawBufferPointer.allocate(byteCount: d.length, alignment: 512)
                defer { input.deallocate() }
                try file.read(into: input, at: d.hostOffset)
                try dec.decompress(UnsafeRawBufferPointer(input), part: dst, offsetInCluster: off, scratch: scratch!,
                                   path: path, hostOffset: d.hostOffset, guestOffset: m.guestOffset)
            }
        }
    }

    /// Reads a backing range: zeroes without a backing image and past its end.
    func readBacking(into dst: UnsafeMutableRawBufferPointer, at guest: UInt64) throws(BlockError) {
        let n = backingBytes(at: guest, length: UInt64(dst.count))
        if n > 0 { try backing!.read(into: UnsafeMutableRawBufferPointer(rebasing: dst[0..<n]), at: guest) }
        if n < dst.count { UnsafeMutableRawBufferPointer(rebasing: dst[n...]).initializeMemory(as: UInt8.self, repeating: 0) }
    }

    /// How many bytes of `[guest, guest+length)` the backing image holds (0 without one).
    func backingBytes(at guest: UInt64, length: UInt64) -> Int {
        guard let b = backing, guest < b.logicalSize else { return 0 }
        return Int(min(length, b.logicalSize - guest))
    }

    /// An io_uring queue (``QcowAsync``), or a ``SyncQueue`` for `--engine=sync` or without io_uring.
    public func makeQueue(_ q: QueueOptions) throws(BlockError) -> any AsyncIo {
        let (q, sync) = q.resolved(with: options)
        if sync { return SyncQueue(disk: self, options: q) }
        return try QcowAsync(disk: self, options: q)
    }

    /// Writes back metadata (clearing the dirty bit blockscope set), flushes, and closes the
    /// image, its data file and its backing chain.
    public func close() throws(BlockError) {
        if isWritable { try metadata.finishWrites(dataFile: dataFile, useRing: usesRing) }
        if let backing {
            try backing.close()
        }
        if dataFile !== file { dataFile.close() }
        directDataFile?.close()
        file.close()
    }
}

/// Entry point of the qcow2 format for the factory.
public enum Qcow2Format {
    /// Opens a QCOW2 image from an open host file (see ``Qcow2Disk/init(file:options:warnings:)``).
    public static func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        let d = try Qcow2Disk(file: file, options: options, warnings: warnings)
        try d.prepareWrites()
        return d
    }
}

import BlockIO
import BlockInspect
import BlockMap

#if canImport(Glibc)
import Glibc
#endif

/// Entry point of the vmdk format for the factory.
public enum VmdkFormat {
    /// Opens a VMDK from its descriptor file or its monolithic sparse file (see ``VmdkDisk``).
    public static func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        try VmdkDisk(file: file, options: options, warnings: warnings)
    }

    /// Whether the first bytes of a file are a VMDK: a sparse header (`KDMV`) or a text
    /// descriptor (qemu's probe).
    public static func probe(_ head: [UInt8]) -> Bool {
        VmdkSparseHeader.isSparse(head) || VmdkDescriptor.looksLikeDescriptor(head)
    }
}

/// An open VMDK: monolithicSparse, monolithicFlat, twoGbMaxExtentSparse/Flat, streamOptimized,
/// vmfs and ESXi seSparse (read only), with a parent through parentFileNameHint.
///
/// The guest range is the extents' concatenation; each guest range maps (``mapForRead(_:_:)``)
/// to bytes of an extent file, zeroes, the parent, or part of a compressed grain. The
/// mapping and allocations run under one metadata lock; data I/O runs outside it, on each
/// queue's io_uring (``VmdkAsync``). Writes allocate grains at the end of the extent file
/// (docs/adr/0019-vmdk.md gives the order that keeps the image consistent after a crash).
public final class VmdkDisk: InspectableDisk, @unchecked Sendable {
    /// The file given to open: the descriptor, or the monolithic sparse extent.
    public let file: SystemFile
    /// The image path.
    public let path: String
    /// Always `.vmdk`.
    public let format: ImageFormat = .vmdk
    /// The descriptor (embedded, separate, or made up for a sparse file that has none).
    public internal(set) var descriptor: VmdkDescriptor
    /// Where the descriptor text lives: byte offset in ``file`` and the bytes reserved for it
    /// (nil: none stored, as in a bare sparse file).
    public let descriptorPlace: (offset: UInt64, capacity: UInt64)?
    /// The extents in guest order.
    public let extents: [VmdkExtent]
    /// Guest size in bytes.
    public let logicalSize: UInt64
    /// Whether the image is writable.
    public let isWritable: Bool
    /// Block-size hints (the first sparse extent's grain as the optimal size).
    public let topology: DiskTopology
    /// Warnings from open.
    public let warnings: [String]
    /// The parent image (parentFileNameHint).
    public let parent: (any DiskFile)?
    /// The parent path that was opened.
    public let parentPath: String?
    /// The descriptor's createType as qemu reports it (streamOptimized for compressed
    /// monolithic extents).
    public let createType: String
    let lock = MetadataLock()
    var cidUpdated = false
    let options: OpenOptions

    /// Opens `file` as VMDK: a sparse header (its embedded descriptor, its grain directory,
    /// the footer when the directory is at the end) or a descriptor and each extent file it
    /// names (relative to the descriptor's folder), then the parent.
    public init(file: SystemFile, options: OpenOptions, warnings: [String] = []) throws(BlockError) {
        self.file = file
        path = file.path
        self.options = options
        isWritable = options.writable
        var w = warnings
        let size = try file.size()
        if size < 4 { throw BlockError(.invalidFormat, "vmdk: file is too small (\(size) bytes)", path: path, operation: "open") }
        // The first sector tells a sparse header from a descriptor; only a descriptor file
        // is read further (up to 1 MiB), not every sparse file's first MiB on every open.
        let head = try file.readBytes(at: 0, count: Int(min(size, 512)))
        var desc: VmdkDescriptor
        var place: (offset: UInt64, capacity: UInt64)?
        var monolithic: VmdkSparseHeader?
        if VmdkSparseHeader.isSparse(head) {
            let h = try VmdkSparseHeader.parse(head, path: path)
            if h.descriptorOffset != 0 {
                let (off, o1) = h.descriptorOffset.multipliedReportingOverflow(by: 512)
                let (bytes, o2) = h.descriptorSize.multipliedReportingOverflow(by: 512)
                if o1 || o2 || off >= size || bytes > UInt64(VmdkDescriptor.maxSize) {
                    throw BlockError(.corruptImage, "vmdk: embedded descriptor at sector \(h.descriptorOffset) (\(h.descriptorSize) sectors) lies beyond the end of the file (size \(hex(size))) or exceeds 1 MiB", path: path, hostOffset: off, operation: "open")
                }
                let text = try file.readBytes(at: off, count: Int(min(bytes, size - off)))
                desc = try VmdkDescriptor.parse(text, path: path, fileOffset: off)
                place = (off, bytes)
            } else {
                desc = VmdkDescriptor(cid: 0, createType: h.isCompressed ? "streamOptimized" : "monolithicSparse",
                                      extents: [VmdkDescriptor.Extent(sectors: h.capacity, type: .sparse, file: String(path.split(separator: "/").last ?? ""))])
            }
            if h.capacity != 0 || h.descriptorOffset == 0 { monolithic = h }
        } else if VmdkSeSparseHeader.isSeSparse(head) {
            throw BlockError(.invalidFormat, "vmdk: this is an seSparse extent file; open the descriptor that names it", path: path, operation: "open")
        } else {
            let text = size <= 512 ? head : try file.readBytes(at: 0, count: Int(min(size, UInt64(VmdkDescriptor.maxSize))))
            desc = try VmdkDescriptor.parse(text, path: path)
            place = (0, UInt64(VmdkDescriptor.maxSize))
        }
        let known = ["monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized", "vmfs", "vmfsSparse", "seSparse"]
        if monolithic == nil && !known.contains(desc.createType) {
            throw BlockError(.unsupportedFeature, "vmdk: createType \"\(desc.createType)\" is not supported (\(known.joined(separator: ", ")))", path: path, operation: "open")
        }
        descriptorPlace = place
        var exts: [VmdkExtent] = []
        var pos: UInt64 = 0
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) + "/" : ""
        if let h = monolithic {
            var line = desc.extents.count == 1 ? desc.extents[0] : VmdkDescriptor.Extent(sectors: h.capacity, type: .sparse, file: nil)
            line.line = 0
            if desc.extents.count != 1 || desc.extents[0].sectors != h.capacity {
                w.append("\(path): vmdk: the embedded descriptor's extents (\(desc.extents.count), \(desc.capacity) bytes) differ from the sparse header (capacity \(h.capacity * 512) bytes); the header wins, as in qemu")
            }
            let g = try VmdkGrainMap(file: file, header: h, cacheLimit: options.metadataCacheEntries)
            exts.append(VmdkExtent(line: line, path: path, file: file, guestStart: 0, length: g.capacity, flatOffset: 0, grains: g))
            pos = g.capacity
        } else {
            var opened: [String: SystemFile] = [path: file]
            for line in desc.extents {
                let e = try VmdkDisk.openExtent(line, dir: dir, at: pos, descriptorPath: path, options: options, opened: &opened, warnings: &w)
                exts.append(e)
                pos += e.length
            }
        }
        extents = exts
        logicalSize = pos
        createType = monolithic.map { $0.isCompressed ? "streamOptimized" : "monolithicSparse" } ?? desc.createType
        descriptor = desc
        if options.writable {
            try VmdkDisk.refuseSharedBytes(exts, descriptorFile: monolithic == nil ? path : nil)
            for e in exts {
                let what = "\(e.path ?? path): vmdk"
                if e.line.access != .readWrite { throw BlockError(.readOnly, "\(what): extent on descriptor line \(e.line.line) is \(e.line.access.rawValue); the image cannot be written", path: path, operation: "open") }
                if let g = e.grains {
                    if g.seSparse { throw BlockError(.unsupportedFeature, "\(what): seSparse extents are read only (as in qemu)", path: path, operation: "open") }
                    if g.compressed { throw BlockError(.unsupportedFeature, "\(what): streamOptimized (compressed) extents are written only by blockscope create; open it read-only or convert it", path: path, operation: "open") }
                    if g.header?.version == 3 { throw BlockError(.unsupportedFeature, "\(what): version 3 sparse extents (changed block tracking) are read only, as in qemu", path: path, operation: "open") }
                }
            }
        }
        if let hint = desc.parentFileNameHint {
            let p = hint.hasPrefix("/") ? hint : dir + hint
            var o = OpenOptions(writable: false, format: nil, engine: options.engine)
            o.chain = options.chain + [path]
            o.maxBackingDepth = options.maxBackingDepth
            o.ignoreLocks = options.ignoreLocks
            o.referenceRoot = options.referenceRoot
            o.metadataCacheEntries = options.metadataCacheEntries
            let par: any DiskFile
            do { par = try options.openReference(p, options: o) } catch let e {
                throw e.referredTo(by: path, referenced: p, "vmdk: parent '\(p)' (descriptor parentFileNameHint)")
            }
            if let pv = par as? VmdkDisk, pv.descriptor.cid != desc.parentCID {
                w.append("\(path): vmdk: parentCID \(vmdkCID(desc.parentCID)) differs from the parent's CID \(vmdkCID(pv.descriptor.cid)) (\(p) changed after this image was made); qemu refuses to read through such a parent")
            }
            parent = par
            parentPath = p
        } else {
            parent = nil
            parentPath = nil
        }
        let grain = exts.compactMap { $0.grains?.grainBytes }.first ?? 0
        topology = DiskTopology(logicalBlockSize: 512, physicalBlockSize: 512, minimumIoSize: 512, optimalIoSize: Int(grain))
        self.warnings = w
    }

    /// Opens the file of one descriptor extent line (path confined by
    /// ``OpenOptions/referenceRoot``, QEMU's lock taken) and reads its header.
    static func openExtent(_ line: VmdkDescriptor.Extent, dir: String, at pos: UInt64, descriptorPath: String, options: OpenOptions,
                           opened: inout [String: SystemFile], warnings: inout [String]) throws(BlockError) -> VmdkExtent {
        let field = "descriptor line \(line.line)"
        switch line.type {
        case .zero:
            return VmdkExtent(line: line, path: nil, file: nil, guestStart: pos, length: line.sectors * 512, flatOffset: 0, grains: nil)
        case .vmfsSparse, .vmfsRDM, .vmfsRaw:
            throw BlockError(.unsupportedFeature, "vmdk: \(field): \(line.type.rawValue) extents are not supported", path: descriptorPath, operation: "open")
        default: break
        }
        if line.access == .noAccess {
            throw BlockError(.unsupportedFeature, "vmdk: \(field): NOACCESS extents cannot be read", path: descriptorPath, operation: "open")
        }
        let name = line.file!
        let p = name.hasPrefix("/") ? name : dir + name
        let f: SystemFile
        if let same = opened[p] { f = same } else {
            do {
                try options.confine(p)
                let lock = try ImageLock(path: p, writable: options.writable, shareWrites: false)
                f = try SystemFile(path: p, writable: options.writable)
                f.holdLock(lock)
                if let w = lock.warning { warnings.append(w) }
            } catch let e { throw e.referredTo(by: descriptorPath, referenced: p, "vmdk: extent '\(p)' (\(field))") }
            opened[p] = f
        }
        switch line.type {
        case .flat, .vmfs:
            let (off, o) = line.offset.multipliedReportingOverflow(by: 512)
            let (end, o2) = off.addingReportingOverflow(line.sectors * 512)
            if o || o2 || end > UInt64(Int64.max) {
                throw BlockError(.invalidFormat, "vmdk: \(field): offset \(line.offset) sectors puts the extent's end beyond 2^63 bytes", path: descriptorPath, operation: "open")
            }
            return VmdkExtent(line: line, path: p, file: f, guestStart: pos, length: line.sectors * 512, flatOffset: off, grains: nil)
        case .seSparse:
            do {
                let h = try VmdkSeSparseHeader.parse(try f.readBytes(at: 0, count: 512), path: p)
                let g = try VmdkGrainMap(file: f, seHeader: h, cacheLimit: options.metadataCacheEntries)
                if h.capacity != line.sectors { warnings.append("\(p): vmdk: seSparse capacity \(h.capacity) sectors differs from \(field) (\(line.sectors)); the header wins, as in qemu") }
                return VmdkExtent(line: line, path: p, file: f, guestStart: pos, length: g.capacity, flatOffset: 0, grains: g)
            } catch let e { throw e.referredTo(by: descriptorPath, referenced: p, "vmdk: extent '\(p)' (\(field))") }
        default:
            do {
                let h = try VmdkSparseHeader.parse(try f.readBytes(at: 0, count: 512), path: p)
                let g = try VmdkGrainMap(file: f, header: h, cacheLimit: options.metadataCacheEntries)
                if h.capacity != line.sectors { warnings.append("\(p): vmdk: sparse header capacity \(h.capacity) sectors differs from \(field) (\(line.sectors)); the header wins, as in qemu") }
                return VmdkExtent(line: line, path: p, file: f, guestStart: pos, length: g.capacity, flatOffset: 0, grains: g)
            } catch let e { throw e.referredTo(by: descriptorPath, referenced: p, "vmdk: extent '\(p)' (\(field))") }
        }
    }

    /// Refuses a writable open when two extents (or an extent and the descriptor) share bytes
    /// of one file: a write through one would change the other's guest bytes, and the CID
    /// update rewrites a descriptor file. Sparse extents own their whole file.
    static func refuseSharedBytes(_ exts: [VmdkExtent], descriptorFile: String?) throws(BlockError) {
        var ranges: [String: [(start: UInt64, end: UInt64, what: String)]] = [:]
        if let d = descriptorFile { ranges[d] = [(0, UInt64.max, "the descriptor")] }
        for e in exts {
            guard let p = e.path else { continue }
            let what = "the extent on descriptor line \(e.line.line)"
            ranges[p, default: []].append(e.grains == nil ? (e.flatOffset, e.flatOffset + e.length, what) : (0, UInt64.max, what))
        }
        for (p, list) in ranges where list.count > 1 {
            let s = list.sorted { $0.start < $1.start }
            for i in 1..<s.count where s[i].start < s[i - 1].end && s[i].end > s[i].start {
                throw BlockError(.corruptImage, "vmdk: \(s[i - 1].what) and \(s[i].what) share bytes of \(p); a write through one would change the other, so the image cannot be written",
                                 path: descriptorFile ?? p, operation: "open")
            }
        }
    }

    /// The index of the extent holding guest byte `offset`.
    func extentIndex(_ offset: UInt64) -> Int {
        var lo = 0, hi = extents.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if extents[mid].guestStart <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// Bytes of the descriptor (when separate) and every extent file (qemu-img's actual-size).
    public func physicalSize() throws(BlockError) -> UInt64 {
        var seen: Set<String> = [path]
        var total = try file.allocatedSize()
        for e in extents { if let f = e.file, let p = e.path, !seen.contains(p) { seen.insert(p); total += try f.allocatedSize() } }
        return total
    }

    /// Reads guest bytes synchronously through the mapping (compressed grains inflated).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError) {
        try checkRange(offset, UInt64(buffer.count), "read", write: false)
        for r in try mapForRead(offset, UInt64(buffer.count)) {
            let s = Int(r.guestOffset - offset)
            try fill(UnsafeMutableRawBufferPointer(rebasing: buffer[s..<(s + Int(r.length))]), r)
        }
    }

    /// Fills `sub` with the guest bytes of region `r` synchronously.
    func fill(_ sub: UnsafeMutableRawBufferPointer, _ r: VmdkRegion) throws(BlockError) {
        switch r.kind {
        case let .data(e, host): try extents[e].file!.read(into: sub, at: host)
        case .zero: sub.initializeMemory(as: UInt8.self, repeating: 0)
        case .parent: try readParent(into: sub, at: r.guestOffset)
        case let .compressed(e, host, inGrain):
            let g = extents[e].grains!
            let n = Int(min(2 * g.grainBytes + 512, g.fileSize - host))
            let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 64)
            defer { raw.deallocate() }
            try extents[e].file!.read(into: raw, at: host)
            try VmdkCompression.inflateGrain(UnsafeRawBufferPointer(raw), markers: g.markers, grainBytes: g.grainBytes, inGrain: inGrain,
                                             into: sub, path: extents[e].path ?? path, host: host, guest: r.guestOffset)
        }
    }

    /// Reads a guest range from the parent, or zeroes without one (or past its end).
    public func readParent(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError) {
        guard let parent, offset < parent.logicalSize else { buffer.initializeMemory(as: UInt8.self, repeating: 0); return }
        let n = Int(min(UInt64(buffer.count), parent.logicalSize - offset))
        try parent.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]), at: offset)
        if n < buffer.count { UnsafeMutableRawBufferPointer(rebasing: buffer[n...]).initializeMemory(as: UInt8.self, repeating: 0) }
    }

    /// Writes guest bytes synchronously (allocating grains as needed).
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockError) {
        try checkRange(offset, UInt64(buffer.count), "write", write: true)
        for r in try mapForWrite(offset, UInt64(buffer.count), queue: 0, request: 0, sink: nil) {
            guard case let .data(e, host) = r.kind else { continue }
            let s = Int(r.guestOffset - offset)
            try extents[e].file!.write(UnsafeRawBufferPointer(rebasing: buffer[s..<(s + Int(r.length))]), at: host)
        }
    }

    /// Makes a guest range read as zeroes, as qemu does: whole grains of an extent with
    /// zeroed grains get entry 1; ranges that already read as zero and have no parent are
    /// left alone; the rest is written with zeroes (grains allocated as for any write).
    public func writeZeroes(at offset: UInt64, length: UInt64) throws(BlockError) {
        try checkRange(offset, length, "write zeroes", write: true)
        var pos = offset
        let end = offset + length
        let chunk: UInt64 = 1 << 20
        var zeros: UnsafeMutableRawBufferPointer?
        defer { zeros?.deallocate() }
        while pos < end {
            let n = min(chunk, end - pos)
            if try zeroInPlace(pos, n) { pos += n; continue }
            if zeros == nil {
                // As long as the longest write needs (a 1 MiB buffer zeroed for a 4 KiB zero
                // was a quarter of the vmdk fuzz target's page faults).
                zeros = .allocate(byteCount: Int(min(chunk, length)), alignment: 4096)
                zeros!.initializeMemory(as: UInt8.self, repeating: 0)
            }
            try write(UnsafeRawBufferPointer(rebasing: zeros![0..<Int(n)]), at: pos)
            pos += n
        }
    }

    /// VMDK has no discard (qemu's vmdk driver ignores it too): a no-op that succeeds.
    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        try checkRange(offset, length, "discard", write: true)
    }

    /// Flushes every extent file and the descriptor file.
    public func flush() throws(BlockError) {
        try file.sync(dataOnly: false)
        var seen: Set<String> = [path]
        for e in extents { if let f = e.file, let p = e.path, !seen.contains(p) { seen.insert(p); try f.sync(dataOnly: false) } }
    }

    /// A queue: io_uring (``VmdkAsync``) or synchronous.
    public func makeQueue(_ options: QueueOptions) throws(BlockError) -> any AsyncIo {
        let (q, sync) = options.resolved(with: self.options)
        if sync { return SyncQueue(disk: self, options: q) }
        return try VmdkAsync(disk: self, options: q)
    }

    /// Flushes when writable and closes every file (and the parent).
    public func close() throws(BlockError) {
        if isWritable { try flush() }
        for e in extents { e.file?.close() }
        file.close()
        try parent?.close()
    }

    /// Checks a guest range against the disk size and, for writes, the open mode.
    func checkRange(_ offset: UInt64, _ length: UInt64, _ op: String, write: Bool) throws(BlockError) {
        let (end, o) = offset.addingReportingOverflow(length)
        if o || end > logicalSize {
            throw BlockError(.outOfBounds, "\(op) of \(length) bytes at \(hex(offset)) ends past the end of the disk (size \(logicalSize))", path: path, guestOffset: offset, operation: op)
        }
        if write && !isWritable {
            throw BlockError(.readOnly, "image is open read-only: cannot \(op)", path: path, guestOffset: offset, operation: op)
        }
    }
}

import BlockIO
import BlockMap
import BlockInspect

#if canImport(Glibc)
import Glibc
#endif
/// The shared metadata of one open VHDX image: headers, regions, metadata items, the BAT,
/// sector bitmaps and the log, behind one lock.
///
/// Every queue of the image calls ``mapBlocksForRead(_:_:)`` and ``mapBlocksForWrite(_:_:queue:request:sink:)``
/// (the lock is held only while the mapping is resolved and, for writes, while blocks are
/// allocated and the BAT updated through the log); data I/O happens outside the lock.
/// A dirty log is replayed on a writable open and replayed in memory (an overlay of
/// metadata pages) on a read-only open, so the file is never modified without `--write`.
public final class VhdxMetadata: @unchecked Sendable {
    /// The image file.
    public let file: SystemFile
    /// Whether the image was opened for writing.
    public let writable: Bool
    /// The BAT region.
    public let batRegion: VhdxRegionEntry
    /// The metadata region.
    public let metadataRegion: VhdxRegionEntry
    /// Parsed metadata items.
    public let items: VhdxMetadataItems
    /// BAT geometry (chunk ratio, entry counts).
    public let geometry: VhdxBatGeometry
    /// Log entries found dirty on open (replayed on disk or in memory).
    public let replayedEntries: Int
    /// Whether the replay was in memory only (read-only open of a dirty image).
    public let replayedInMemory: Bool
    /// The parent of a differencing disk (set by ``VhdxDisk`` after open).
    var parent: (any DiskFile)?

    private let lock = MetadataLock()
    private var header: VhdxHeader
    private var headerSlot: Int
    private var bat: [UInt64]
    private var overlay: [UInt64: [UInt8]]
    private var bitmaps: [UInt64: [UInt8]] = [:]
    private var log: VhdxLogWriter?
    private var nextFree: UInt64
    private var sessionStarted = false

    /// Opens the metadata of `file`: identifier, headers, log (replayed), regions, items, BAT.
    public init(file: SystemFile, writable: Bool) throws(BlockError) {
        self.file = file
        self.writable = writable
        let path = file.path
        let fileSize = try file.size()
        let ident = try file.readBytes(at: 0, count: 8)
        guard ByteField.hasTag(ident, 0, "vhdxfile") else {
            throw BlockError(.invalidFormat, "vhdx: no 'vhdxfile' file type identifier at offset 0", path: path, hostOffset: 0, operation: "open")
        }
        (header, headerSlot) = try VhdxHeader.readCurrent(file)
        let seq = try VhdxLog.load(file, header: header, fileSize: fileSize)
        replayedEntries = seq.count
        if !seq.isEmpty && writable {
            try VhdxLog.replay(seq, into: file)
            overlay = [:]
            replayedInMemory = false
        } else {
            overlay = VhdxLog.overlay(seq)
            replayedInMemory = !seq.isEmpty
        }
        let sizeNow = try file.size()
        (batRegion, metadataRegion) = try VhdxRegionTable.read(file, fileSize: sizeNow)
        let ov = overlay
        let reader = { (off: UInt64, n: Int) throws(BlockError) -> [UInt8] in try VhdxMetadata.read(file, ov, off, n) }
        items = try VhdxMetadataItems.read(path: path, region: metadataRegion, reader: reader)
        geometry = try VhdxBatGeometry(virtualSize: items.virtualSize, blockSize: UInt64(items.blockSize),
                                       logicalSectorSize: UInt64(items.logicalSectorSize), differencing: items.hasParent, path: path)
        let batBytes = geometry.totalEntries * 8
        if batBytes > UInt64(batRegion.length) {
            throw BlockError(.corruptImage, "vhdx: BAT region (length \(hex(UInt64(batRegion.length)))) is too small for \(geometry.totalEntries) entries", path: path, hostOffset: batRegion.fileOffset, operation: "open")
        }
        // One read of the whole BAT straight into the table (no byte copy, no per-entry
        // closure: a 64 TiB image has 2M entries), then one pass that checks every entry.
        let total = Int(geometry.totalEntries)
        let per = Int(geometry.chunkRatio + 1)
        let batOffset = batRegion.fileOffset
        var readError: BlockError?
        var table = [UInt64](unsafeUninitializedCapacity: total) { buf, initialized in
            let bytes = UnsafeMutableRawBufferPointer(buf)
            adviseHugePages(bytes)
            do throws(BlockError) {
                if ov.isEmpty {
                    try file.read(into: bytes, at: batOffset)
                } else {
                    let b = try VhdxMetadata.read(file, ov, batOffset, total * 8)
                    b.withUnsafeBytes { bytes.copyMemory(from: $0) }
                }
                initialized = total
            } catch {
                readError = error
                initialized = 0
            }
        }
        if let readError { throw readError }
        #if _endian(big)
        for i in table.indices { table[i] = UInt64(littleEndian: table[i]) }
        #endif
        var end = (sizeNow + VhdxLayout.mb - 1) / VhdxLayout.mb * VhdxLayout.mb
        var bad: (index: Int, raw: UInt64, length: UInt64)?
        let bs = geometry.blockSize
        table.withUnsafeBufferPointer { t in
            var phase = 0
            for i in 0..<t.count {
                let raw = t[i]
                phase += 1
                let isBitmap = phase == per
                if isBitmap { phase = 0 }
                let st = raw & 7
                if st == 4 { bad = (i, raw, 0); return }
                if st == 6 || st == 7 {
                    let len = isBitmap ? VhdxLayout.mb : bs
                    let off = raw & ~UInt64(0xFFFFF)
                    let (blockEnd, o) = off.addingReportingOverflow(len)
                    if off < VhdxLayout.mb || o || blockEnd > sizeNow { bad = (i, raw, len); return }
                    if blockEnd > end { end = blockEnd }
                }
            }
        }
        if let bad {
            let entry = VhdxBatEntry(raw: bad.raw)
            if entry.state == nil {
                throw BlockError(.corruptImage, "vhdx: BAT entry \(bad.index) has the reserved state 4", path: path, hostOffset: batRegion.fileOffset + UInt64(bad.index) * 8, operation: "open")
            }
            throw BlockError(.corruptImage, "vhdx: BAT entry \(bad.index) points to \(hex(entry.fileOffset)) (length \(hex(bad.length))), beyond the end of the file (size \(hex(sizeNow))) or inside the header section", path: path, hostOffset: entry.fileOffset, operation: "open")
        }
        bat = table
        nextFree = end
        if !seq.isEmpty && writable {
            var h = header
            h.logGuid = .zero
            try writeHeaders(h)
        }
    }


    static func read(_ file: SystemFile, _ overlay: [UInt64: [UInt8]], _ off: UInt64, _ n: Int) throws(BlockError) -> [UInt8] {
        var b = try file.readBytes(at: off, count: n)
        if overlay.isEmpty { return b }
        var page = off / VhdxLog.sector * VhdxLog.sector
        while page < off + UInt64(n) {
            if let p = overlay[page] {
                for i in 0..<Int(VhdxLog.sector) {
                    let at = Int64(page) + Int64(i) - Int64(off)
                    if at >= 0 && at < Int64(n) { b[Int(at)] = p[i] }
                }
            }
            page += VhdxLog.sector
        }
        return b
    }

    /// The current header (a copy).
    public var currentHeader: VhdxHeader { lock.run { header } }

    /// A copy of the BAT (raw 64-bit entries).
    public func batSnapshot() -> [UInt64] { lock.run { bat } }

    /// Payload entries of the virtual size (sector bitmap entries and the padding of a
    /// differencing disk's last chunk skipped) by the state bits 0-7, counted under
    /// the lock without copying the BAT.
    public func payloadStateCounts() -> [Int] {
        lock.run {
            var byState = [Int](repeating: 0, count: 8)
            let per = Int(geometry.chunkRatio + 1)
            var phase = 0, payloads: UInt64 = 0
            for raw in bat where payloads < geometry.dataBlocks {
                phase += 1
                if phase == per { phase = 0; continue }
                byState[Int(raw & 7)] += 1
                payloads += 1
            }
            return byState
        }
    }

    /// The run of payload blocks from `block` (at most `limit` of them, at least one) whose
    /// entries have the same state bits, and that state; one pass under the lock, no copy.
    /// `map` walks a 64 TiB image's two million entries run by run this way.
    public func payloadRun(from block: UInt64, limit: UInt64) -> (state: UInt8, count: UInt64) {
        lock.run {
            let first = UInt8(bat[geometry.payloadIndex(block)] & 7)
            var n: UInt64 = 1
            while n < limit, UInt8(bat[geometry.payloadIndex(block + n)] & 7) == first { n += 1 }
            return (first, n)
        }
    }

    /// The raw BAT entry at `index` (`0..<geometry.totalEntries`), under the lock.
    public func batRaw(_ index: Int) -> UInt64 { lock.run { bat[index] } }

    /// The entry of payload block `block` (under the lock).
    public func payloadEntry(_ block: UInt64) -> VhdxBatEntry { lock.run { VhdxBatEntry(raw: bat[geometry.payloadIndex(block)]) } }

    /// Host regions for a guest read; ZERO/UNMAPPED/UNDEFINED read as zeroes, NOT_PRESENT as
    /// zeroes or (differencing) the parent, PARTIALLY_PRESENT split by the sector bitmap.
    package func mapBlocksForRead(_ offset: UInt64, _ length: UInt64) throws(BlockError) -> [BlockRegion] {
        try lock.locked { () throws(BlockError) in try mapLocked(offset, length) }
    }

    /// The host offset of `[offset, offset + length)` when it lies inside one FULLY_PRESENT
    /// block, else nil. With `write`, also nil before the write session has started (the
    /// first write goes through ``mapBlocksForWrite(_:_:queue:request:sink:)``, which updates
    /// the headers). Takes the lock once; allocates nothing.
    public func presentHostOffset(_ offset: UInt64, _ length: UInt64, write: Bool) -> UInt64? {
        let bs = geometry.blockSize
        let inBlock = offset % bs
        guard length > 0, length <= bs - inBlock else { return nil }
        let block = offset / bs
        return lock.run { () -> UInt64? in
            if write && !sessionStarted { return nil }
            let entry = VhdxBatEntry(raw: bat[geometry.payloadIndex(block)])
            return entry.state == .fullyPresent ? entry.fileOffset + inBlock : nil
        }
    }

    private func mapLocked(_ offset: UInt64, _ length: UInt64) throws(BlockError) -> [BlockRegion] {
        var out: [BlockRegion] = []
        try forEachBlockPiece(offset: offset, length: length, blockSize: geometry.blockSize) { (block, inBlock, pos, n) throws(BlockError) in
            let entry = VhdxBatEntry(raw: bat[geometry.payloadIndex(block)])
            switch entry.state {
            case .fullyPresent:
                BlockRegion.append(BlockRegion(guestOffset: pos, length: n, kind: .data(host: entry.fileOffset + inBlock)), to: &out)
            case .notPresent:
                BlockRegion.append(BlockRegion(guestOffset: pos, length: n, kind: items.hasParent ? .parent : .zero), to: &out)
            case .partiallyPresent:
                guard items.hasParent else {
                    throw BlockError(.corruptImage, "vhdx: block \(block) is PARTIALLY_PRESENT in a disk without a parent", path: file.path, guestOffset: pos, operation: "read")
                }
                for r in try partialRegions(block: block, entry: entry, pos: pos, length: n) { BlockRegion.append(r, to: &out) }
            default:
                BlockRegion.append(BlockRegion(guestOffset: pos, length: n, kind: .zero), to: &out)
            }
        }
        return out
    }

    /// Splits a PARTIALLY_PRESENT block range by its sector bitmap bits (LSB first; 1 = here).
    private func partialRegions(block: UInt64, entry: VhdxBatEntry, pos: UInt64, length: UInt64) throws(BlockError) -> [BlockRegion] {
        let sector = geometry.logicalSectorSize
        let chunkSize = (1 << 23) * sector
        let chunk = pos / chunkSize
        let bitmap = try loadBitmap(chunk)
        var out: [BlockRegion] = []
        var p = pos
        while p < pos + length {
            let s = (p % chunkSize) / sector
            let present = bitmap[Int(s / 8)] & (1 << UInt8(s % 8)) != 0
            let n = min(sector - p % sector, pos + length - p)
            let kind: BlockRegion.Kind = present ? .data(host: entry.fileOffset + p % geometry.blockSize) : .parent
            BlockRegion.append(BlockRegion(guestOffset: p, length: n, kind: kind), to: &out)
            p += n
        }
        return out
    }

    private func loadBitmap(_ chunk: UInt64) throws(BlockError) -> [UInt8] {
        if let b = bitmaps[chunk] { return b }
        let idx = geometry.bitmapIndex(chunk)
        let e = VhdxBatEntry(raw: idx < bat.count ? bat[idx] : 0)
        guard e.state == .fullyPresent else {
            throw BlockError(.corruptImage, "vhdx: sector bitmap block \(chunk) (BAT entry \(idx)) is not present but a block of its chunk is PARTIALLY_PRESENT", path: file.path, operation: "read")
        }
        let b = try VhdxMetadata.read(file, overlay, e.fileOffset, Int(VhdxLayout.mb))
        bitmaps[chunk] = b
        return b
    }

    /// Host regions for a guest write, allocating blocks as needed (all results are `.data`).
    ///
    /// New blocks go at the end of the file, 1 MiB aligned (the file is extended first, so
    /// the rest of a new block reads as zeroes). In a differencing disk a block that is not
    /// fully present is first filled from the parent and becomes FULLY_PRESENT. The BAT pages
    /// that changed are written through the log before the lock is released.
    package func mapBlocksForWrite(_ offset: UInt64, _ length: UInt64, queue: Int32 = 0, request: UInt64 = 0, sink: (any IoEventSink)? = nil) throws(BlockError) -> [BlockRegion] {
        try lock.locked { () throws(BlockError) in
            try startSession()
            var out: [BlockRegion] = []
            var changed: [(index: Int, old: UInt64)] = []
            var events: [IoEvent] = []
            let bs = geometry.blockSize
            do throws(BlockError) {
                try forEachBlockPiece(offset: offset, length: length, blockSize: bs) { (block, inBlock, pos, n) throws(BlockError) in
                    let idx = geometry.payloadIndex(block)
                    var entry = VhdxBatEntry(raw: bat[idx])
                    if entry.state != .fullyPresent {
                        let old = entry.raw
                        let host: UInt64
                        do throws(BlockError) { host = try allocate(block: block, entry: entry) } catch {
                            // Keep the file's BAT equal to memory for the blocks already allocated
                            // (when that commit fails too, the catch below takes them back).
                            if !changed.isEmpty, (try? commitBat(changed)) != nil {
                                changed = []
                                for e in events { sink?.publish(e) }
                            }
                            throw error.withGuestOffset(pos)
                        }
                        entry = VhdxBatEntry(state: .fullyPresent, fileOffset: host)
                        bat[idx] = entry.raw
                        changed.append((idx, old))
                        events.append(IoEvent(queue: queue, request: request, .allocated(guestOffset: block * bs, hostOffset: host, length: bs)))
                        events.append(IoEvent(queue: queue, request: request, .tableUpdate(table: .bat, index: UInt64(idx), old: old, new: entry.raw)))
                    }
                    BlockRegion.append(BlockRegion(guestOffset: pos, length: n, kind: .data(host: entry.fileOffset + inBlock)), to: &out)
                }
                if !changed.isEmpty { try commitBat(changed) }
            } catch {
                // A BAT update that did not reach the file is taken back in memory too: were
                // the entry left FULLY_PRESENT, later writes to the block would go to its host
                // offset and report success while the file's BAT still says the block is not
                // there, so they would read back as zeroes after a reopen (found by
                // vhdx-write). The host space stays taken (a leak, never a reuse).
                undo(changed)
                throw error
            }
            for e in events { sink?.publish(e) }
            return out
        }
    }

    /// Puts back the entries of a BAT update that failed (newest first).
    private func undo(_ changed: [(index: Int, old: UInt64)]) {
        for c in changed.reversed() { bat[c.index] = c.old }
    }

    /// Finds host space for `block` and fills it with what the block reads as now.
    private func allocate(block: UInt64, entry: VhdxBatEntry) throws(BlockError) -> UInt64 {
        let bs = geometry.blockSize
        let host = nextFree
        nextFree += bs
        if try file.size() < nextFree { try file.truncate(to: nextFree) }
        if items.hasParent && (entry.state == .notPresent || entry.state == .partiallyPresent) {
            // Materialise: copy what the block reads as now (parent and present sectors).
            let regions = try mapLocked(block * bs, min(bs, items.virtualSize - block * bs))
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(bs), alignment: 4096)
            defer { buf.deallocate() }
            buf.initializeMemory(as: UInt8.self, repeating: 0)
            for r in regions {
                let s = Int(r.guestOffset - block * bs)
                let sub = UnsafeMutableRawBufferPointer(rebasing: buf[s..<(s + Int(r.length))])
                switch r.kind {
                case let .data(h): try file.read(into: sub, at: h)
                case .zero: break
                case .parent: try readFromParent(parent, into: sub, at: r.guestOffset)
                }
            }
            try file.write(UnsafeRawBufferPointer(buf), at: host)
        }
        return host
    }

    /// Sets whole blocks to ZERO (or NOT_PRESENT, to expose a parent on discard) through the log.
    public func setBlocks(_ blocks: Range<UInt64>, state: VhdxBlockState) throws(BlockError) {
        try lock.locked { () throws(BlockError) in
            try startSession()
            var changed: [(index: Int, old: UInt64)] = []
            for b in blocks {
                let idx = geometry.payloadIndex(b)
                let e = VhdxBatEntry(state: state, fileOffset: 0)
                if bat[idx] != e.raw { changed.append((idx, bat[idx])); bat[idx] = e.raw }
            }
            if changed.isEmpty { return }
            do throws(BlockError) { try commitBat(changed) } catch {
                undo(changed)
                throw error
            }
        }
    }

    /// Writes the 4 KiB BAT pages holding `indices` through the log.
    private func commitBat(_ changed: [(index: Int, old: UInt64)]) throws(BlockError) {
        let perPage = Int(VhdxLog.sector) / 8
        var pagesIdx = Array(Set(changed.map { $0.index / perPage })).sorted()
        var pages: [(offset: UInt64, bytes: [UInt8])] = []
        for p in pagesIdx {
            var b = [UInt8](repeating: 0, count: Int(VhdxLog.sector))
            for i in 0..<perPage where p * perPage + i < bat.count { ByteField.putLE(&b, i * 8, bat[p * perPage + i], width: 8) }
            pages.append((batRegion.fileOffset + UInt64(p) * VhdxLog.sector, b))
        }
        pagesIdx.removeAll()
        guard let log else { throw BlockError(.readOnly, "vhdx: metadata update without a log session", path: file.path) }
        try log.update(pages)
    }

    /// Starts a write session on the first write: new FileWriteGuid, DataWriteGuid and LogGuid
    /// in both headers (written alternately, synced), and a log writer.
    private func startSession() throws(BlockError) {
        if sessionStarted { return }
        guard writable else {
            throw BlockError(.readOnly, "image is open read-only: cannot modify it", path: file.path, operation: "write")
        }
        if header.logLength == 0 || header.logOffset < VhdxLayout.mb {
            throw BlockError(.corruptImage, "vhdx: the image has no log region; blockscope writes metadata only through the log", path: file.path, operation: "write")
        }
        try checkLogRegion()
        var h = header
        h.fileWriteGuid = .random()
        h.dataWriteGuid = .random()
        h.logGuid = .random()
        try writeHeaders(h)
        log = VhdxLogWriter(file: file, logOffset: h.logOffset, logLength: UInt64(h.logLength), guid: h.logGuid)
        sessionStarted = true
    }

    /// Refuses, before anything is written, a log region the writer could not use: past the
    /// end of the file (or of any file: a LogOffset near 2^64), misaligned, or overlapping
    /// the BAT or metadata region. A clean log is never read, so open accepts such a header
    /// (as qemu-img does); writing through it would fail at the first metadata update after
    /// the headers already name a new LogGuid, leaving a file no reader opens (QEMU's state
    /// after the same writes). The error names the header slot, the field and its value.
    private func checkLogRegion() throws(BlockError) {
        let offset = header.logOffset, length = UInt64(header.logLength)
        let slot = VhdxLayout.headerOffsets[headerSlot]
        let field = "the current header (at \(hex(slot))) has LogOffset \(hex(offset)), LogLength \(hex(length))"
        let fail = { (why: String) -> BlockError in
            BlockError(.corruptImage, "vhdx: \(field): \(why); blockscope writes metadata only through the log, so the image cannot be written",
                       path: self.file.path, hostOffset: slot + 72, operation: "write")
        }
        let fileSize = try file.size()
        let (end, overflow) = offset.addingReportingOverflow(length)
        if overflow || end > fileSize {
            throw fail("the log lies beyond the end of the file (size \(hex(fileSize)))")
        }
        if offset % VhdxLayout.mb != 0 || length % VhdxLayout.mb != 0 {
            throw fail("the log is not aligned to 1 MiB")
        }
        for (name, r) in [("BAT", batRegion), ("metadata", metadataRegion)] {
            let rEnd = r.fileOffset &+ UInt64(r.length)
            if offset < rEnd && r.fileOffset < end {
                throw fail("the log overlaps the \(name) region at \(hex(r.fileOffset)) (length \(hex(UInt64(r.length))))")
            }
        }
    }

    /// Writes `h` into both header slots with increasing sequence numbers, the stale slot first.
    ///
    /// The sequence number wraps at 2^64 as QEMU's `vhdx_update_header` does (it adds 1 to a
    /// `uint64_t`): a current header at 0xFFFFFFFFFFFFFFFF is followed by 0, then 1.
    private func writeHeaders(_ h: VhdxHeader) throws(BlockError) {
        var h = h
        for step in 0..<2 {
            h.sequenceNumber = header.sequenceNumber &+ 1
            let slot = 1 - headerSlot
            try file.writeBytes(h.encode(), at: VhdxLayout.headerOffsets[slot])
            try file.sync(dataOnly: true)
            header = h
            headerSlot = slot
            _ = step
        }
    }

    /// The log position an fsync starting now covers (pass it to ``flushCompleted(_:)``).
    public func flushMark() -> UInt64 { lock.run { log?.mark() ?? 0 } }

    /// After an fsync that started at `mark` completed: the log entries before it are durable.
    public func flushCompleted(_ mark: UInt64) { lock.run { log?.markFlushed(mark) } }

    /// Ends a write session: syncs, then clears the log GUID in both headers (clean log).
    public func close() throws(BlockError) {
        try lock.locked { () throws(BlockError) in
            if sessionStarted {
                try file.sync(dataOnly: true)
                var h = header
                h.logGuid = .zero
                try writeHeaders(h)
                sessionStarted = false
                log = nil
            }
        }
    }

    /// Log entries written in this session.
    public var logEntriesWritten: Int { lock.run { log?.entries ?? 0 } }

    /// Both header slots as they are in the file now (for views and `check`).
    public func headerSlots() throws(BlockError) -> [VhdxHeaderSlot] {
        let current = lock.run { headerSlot }
        var out: [VhdxHeaderSlot] = []
        for (i, off) in VhdxLayout.headerOffsets.enumerated() {
            let h = VhdxHeader.parse(try file.readBytes(at: off, count: VhdxLayout.headerSize))
            out.append(VhdxHeaderSlot(offset: off, header: h, current: i == current))
        }
        return out
    }
}

/// One VHDX header slot as read from the file.
public struct VhdxHeaderSlot: Sendable, Equatable {
    /// File offset (64 KiB or 128 KiB).
    public var offset: UInt64
    /// The parsed header, or nil when its signature or CRC-32C is wrong.
    public var header: VhdxHeader?
    /// Whether this slot holds the header in use.
    public var current: Bool
}

/// Asks for transparent huge pages over the 2 MiB-aligned part of a large table about to be
/// filled whole (a 64 TiB VHDX's 16 MiB BAT): 8 page faults instead of 4,096, with the same
/// memory, since every byte is read and checked at open. Advice only; ignored when THP is off.
func adviseHugePages(_ bytes: UnsafeMutableRawBufferPointer) {
    #if os(Linux)
    let huge = 2 << 20
    guard let base = bytes.baseAddress, bytes.count >= 2 * huge else { return }
    let start = (Int(bitPattern: base) + huge - 1) & ~(huge - 1)
    let end = (Int(bitPattern: base) + bytes.count) & ~(huge - 1)
    guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(p, end - start, MADV_HUGEPAGE)
    #endif
}

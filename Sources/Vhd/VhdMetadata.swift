import BlockIO
import BlockMap
import BlockInspect

/// The shared metadata of an open dynamic or differencing VHD: footer, dynamic header and
/// BAT behind one lock.
///
/// BAT entries are big-endian 512-byte sector numbers of a block's bitmap; the block's data
/// follows its bitmap; 0xFFFFFFFF means unallocated. New blocks replace the footer at the end
/// of the file (bitmap, zeroed data, then the footer again), and the BAT sector is written
/// after the block is in place.
public final class VhdMetadata: @unchecked Sendable {
    /// The image file.
    public let file: SystemFile
    /// The footer as read at open.
    public let footer: VhdFooter
    /// The dynamic header.
    public let dynamic: VhdDynamicHeader
    /// Whether writes are allowed.
    public let writable: Bool
    /// Guest size.
    public let virtualSize: UInt64
    /// The parent disk (differencing), set by ``VhdDisk``.
    var parent: (any DiskFile)?

    private let lock = MetadataLock()
    private var bat: [UInt32]
    private var footerOffset: UInt64
    private var fullBlocks: Set<Int> = []

    /// Unallocated BAT entry.
    public static let unallocated: UInt32 = 0xFFFF_FFFF

    /// Why the BAT shares bytes with the dynamic header or the footer copy at offset 0, if
    /// it does (`check` counts it as a corruption; a writable open is refused).
    let batOverlap: String?

    /// The words for a BAT at `bat..<end` that overlaps the dynamic header at `header` (1,024
    /// bytes) or the footer copy at 0 (512 bytes); nil when it overlaps neither.
    static func overlap(bat: UInt64, end: UInt64, header: UInt64) -> String? {
        if bat < header &+ 1024 && header < end {
            return "BAT at \(hex(bat))..\(hex(end)) overlaps the dynamic header at \(hex(header))..\(hex(header &+ 1024))"
        }
        if bat < 512 {
            return "BAT at \(hex(bat))..\(hex(end)) overlaps the footer copy at 0x0..0x200"
        }
        return nil
    }

    /// Reads the dynamic header and BAT; checks that allocated blocks lie inside the file.
    public init(file: SystemFile, footer: VhdFooter, footerOffset: UInt64, writable: Bool) throws(BlockError) {
        self.file = file
        self.footer = footer
        self.writable = writable
        self.footerOffset = footerOffset
        let path = file.path
        let size = try file.size()
        let (hdrEnd, hdrOverflow) = footer.dataOffset.addingReportingOverflow(1024)
        if hdrOverflow || hdrEnd > size {
            throw BlockError(.corruptImage, "vpc: dynamic header offset \(hex(footer.dataOffset)) lies beyond the end of the file (size \(hex(size)))", path: path, hostOffset: footer.dataOffset, operation: "open")
        }
        dynamic = try VhdDynamicHeader.parse(try file.readBytes(at: footer.dataOffset, count: 1024), path: path, at: footer.dataOffset)
        virtualSize = footer.virtualSize
        let bs = UInt64(dynamic.blockSize)
        let needed = (virtualSize + bs - 1) / bs
        if UInt64(dynamic.maxTableEntries) < needed {
            throw BlockError(.corruptImage, "vpc: BAT has \(dynamic.maxTableEntries) entries but the disk needs \(needed)", path: path, hostOffset: dynamic.tableOffset, operation: "open")
        }
        let batBytes = UInt64(dynamic.maxTableEntries) * 4
        let (end, o) = dynamic.tableOffset.addingReportingOverflow(batBytes)
        if o || end > size || dynamic.maxTableEntries > (1 << 28) {
            throw BlockError(.corruptImage, "vpc: BAT at \(hex(dynamic.tableOffset)) (\(dynamic.maxTableEntries) entries) lies beyond the end of the file (size \(hex(size)))", path: path, hostOffset: dynamic.tableOffset, operation: "open")
        }
        batOverlap = VhdMetadata.overlap(bat: dynamic.tableOffset, end: end, header: footer.dataOffset)
        // A BAT that shares bytes with the dynamic header or the footer copy: updating an
        // entry would rewrite the header (and break its checksum), so such an image is not
        // written; read-only it opens, and check counts it as a corruption.
        if writable, let overlap = batOverlap {
            throw BlockError(.corruptImage, "vpc: \(overlap); the image cannot be written", path: path, hostOffset: dynamic.tableOffset, operation: "open")
        }
        let raw = try file.readBytes(at: dynamic.tableOffset, count: Int(batBytes))
        let entries = ByteReader(raw, what: "vpc BAT", path: path)
        var decoded = [UInt32]()
        decoded.reserveCapacity(Int(dynamic.maxTableEntries))
        for i in 0..<Int(dynamic.maxTableEntries) { decoded.append(try entries.be32(i * 4)) }
        bat = decoded
        let span = dynamic.bitmapSize + bs
        // Where the next new block goes: at the footer, but never inside the dynamic header,
        // the BAT or an allocated block, and on a sector boundary (as qemu's first free data
        // block offset). A footer that shares bytes with one of them (a damaged or crafted
        // file) would otherwise have the first new block overwrite that structure.
        func sectorUp(_ v: UInt64) -> UInt64 { v % 512 == 0 ? v : v - v % 512 + 512 }
        var next = max(sectorUp(footerOffset), sectorUp(hdrEnd), sectorUp(end))
        for (i, e) in bat.enumerated() where e != VhdMetadata.unallocated {
            if UInt64(e) * 512 + span > size {
                throw BlockError(.corruptImage, "vpc: BAT entry \(i) points to \(hex(UInt64(e) * 512)), beyond the end of the file (size \(hex(size)))", path: path, hostOffset: UInt64(e) * 512, operation: "open")
            }
            next = max(next, UInt64(e) * 512 + span)
        }
        self.footerOffset = next
    }

    /// The BAT entry at `index` (`0..<dynamic.maxTableEntries`; a sector number or
    /// ``unallocated``), under the lock.
    public func batRaw(_ index: Int) -> UInt32 { lock.run { bat[index] } }

    /// A copy of the BAT.
    public func batSnapshot() -> [UInt32] { lock.run { bat } }

    /// Host regions for a guest read: allocated blocks are data (differencing: per sector by
    /// the bitmap, MSB first), unallocated blocks zero or parent.
    package func mapForRead(_ offset: UInt64, _ length: UInt64) throws(BlockError) -> [BlockRegion] {
        try lock.locked { () throws(BlockError) in try mapLocked(offset, length) }
    }

    private func mapLocked(_ offset: UInt64, _ length: UInt64) throws(BlockError) -> [BlockRegion] {
        var out: [BlockRegion] = []
        let bs = UInt64(dynamic.blockSize)
        let diff = footer.diskType == .differencing
        try forEachBlockPiece(offset: offset, length: length, blockSize: bs) { (b, _, pos, n) throws(BlockError) in
            let block = Int(b)
            let e = bat[block]
            if e == VhdMetadata.unallocated {
                BlockRegion.append(BlockRegion(guestOffset: pos, length: n, kind: diff ? .parent : .zero), to: &out)
            } else {
                let data = UInt64(e) * 512 + dynamic.bitmapSize
                if !diff || fullBlocks.contains(block) {
                    BlockRegion.append(BlockRegion(guestOffset: pos, length: n, kind: .data(host: data + pos % bs)), to: &out)
                } else {
                    let bitmap = try file.readBytes(at: UInt64(e) * 512, count: Int(dynamic.bitmapSize))
                    var p = pos
                    while p < pos + n {
                        let s = Int((p % bs) / 512)
                        let present = bitmap[s / 8] & (0x80 >> UInt8(s % 8)) != 0
                        let m = min(512 - p % 512, pos + n - p)
                        BlockRegion.append(BlockRegion(guestOffset: p, length: m, kind: present ? .data(host: data + p % bs) : .parent), to: &out)
                        p += m
                    }
                }
            }
        }
        return out
    }

    /// Host regions for a guest write, allocating blocks at the end of the file. In a
    /// differencing disk a block is first filled from the parent and its bitmap set to ones.
    package func mapForWrite(_ offset: UInt64, _ length: UInt64, queue: Int32, request: UInt64, sink: (any IoEventSink)?) throws(BlockError) -> [BlockRegion] {
        try lock.locked { () throws(BlockError) in
            guard writable else { throw BlockError(.readOnly, "image is open read-only: cannot modify it", path: file.path, operation: "write") }
            var out: [BlockRegion] = []
            let bs = UInt64(dynamic.blockSize)
            let diff = footer.diskType == .differencing
            try forEachBlockPiece(offset: offset, length: length, blockSize: bs) { (b, _, pos, n) throws(BlockError) in
                let block = Int(b)
                if bat[block] == VhdMetadata.unallocated || (diff && !fullBlocks.contains(block)) {
                    try materialize(block, queue: queue, request: request, sink: sink)
                }
                let data = UInt64(bat[block]) * 512 + dynamic.bitmapSize
                BlockRegion.append(BlockRegion(guestOffset: pos, length: n, kind: .data(host: data + pos % bs)), to: &out)
            }
            return out
        }
    }

    /// Allocates `block` (or completes a partial differencing block) so that all of it is here.
    private func materialize(_ block: Int, queue: Int32, request: UInt64, sink: (any IoEventSink)?) throws(BlockError) {
        let bs = UInt64(dynamic.blockSize)
        let ones = [UInt8](repeating: 0xff, count: Int(dynamic.bitmapSize))
        var content: UnsafeMutableRawBufferPointer?
        defer { content?.deallocate() }
        if footer.diskType == .differencing {
            let start = UInt64(block) * bs
            let regions = try mapLocked(start, min(bs, virtualSize - start))
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(bs), alignment: 4096)
            buf.initializeMemory(as: UInt8.self, repeating: 0)
            content = buf
            for r in regions {
                let s = Int(r.guestOffset - start)
                let sub = UnsafeMutableRawBufferPointer(rebasing: buf[s..<(s + Int(r.length))])
                switch r.kind {
                case let .data(h): try file.read(into: sub, at: h)
                case .zero: break
                case .parent: try readFromParent(parent, into: sub, at: r.guestOffset)
                }
            }
        }
        if bat[block] == VhdMetadata.unallocated {
            let host = footerOffset
            let newFooter = host + dynamic.bitmapSize + bs
            if host % 512 != 0 || host / 512 >= UInt64(VhdMetadata.unallocated) {
                throw BlockError(.overflow, "vpc: the file is too large to address a new block at \(hex(host))", path: file.path, hostOffset: host, operation: "write")
            }
            try file.writeBytes(footer.encode(), at: newFooter)
            try file.writeBytes(ones, at: host)
            if let content { try file.write(UnsafeRawBufferPointer(content), at: host + dynamic.bitmapSize) }
            footerOffset = newFooter
            let old = bat[block], new = UInt32(host / 512)
            var sector = [UInt8](repeating: 0, count: 4)
            ByteField.putBE(&sector, 0, UInt64(new), width: 4)
            // The file's BAT first: an entry set in memory but not in the file would send later
            // writes of the block to space that reads back as unallocated after a reopen.
            try file.writeBytes(sector, at: dynamic.tableOffset + UInt64(block) * 4)
            bat[block] = new
            sink?.publish(IoEvent(queue: queue, request: request, .allocated(guestOffset: UInt64(block) * bs, hostOffset: host + dynamic.bitmapSize, length: bs)))
            sink?.publish(IoEvent(queue: queue, request: request, .tableUpdate(table: .bat, index: UInt64(block), old: UInt64(old), new: UInt64(new))))
        } else if let content {
            let host = UInt64(bat[block]) * 512
            try file.write(UnsafeRawBufferPointer(content), at: host + dynamic.bitmapSize)
            try file.writeBytes(ones, at: host)
        }
        fullBlocks.insert(block)
    }
}

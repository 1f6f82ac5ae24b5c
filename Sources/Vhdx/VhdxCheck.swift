import BlockIO
import BlockMap
import BlockInspect

extension VhdxDisk {
    /// qemu-img info's keys for VHDX (`cluster-size` is the block size) plus a `blockscope` object
    /// with the header, log and BAT state counts.
    public func info() throws(BlockError) -> JSONValue {
        let m = metadata
        let h = m.currentHeader
        // Counted in place, an array per state: a 64 TiB image has a million payload entries.
        var counts: [String: UInt64] = [:]
        for (v, n) in m.payloadStateCounts().enumerated() where n > 0 { counts[VhdxBlockState(rawValue: UInt8(v))?.name ?? "RESERVED", default: 0] += UInt64(n) }
        var bs: [(String, JSONValue)] = [
            ("block-size", .size(UInt64(m.items.blockSize))),
            ("logical-sector-size", .int(Int64(m.items.logicalSectorSize))),
            ("physical-sector-size", .int(Int64(m.items.physicalSectorSize))),
            ("chunk-ratio", .size(m.geometry.chunkRatio)),
            ("bat-entries", .size(m.geometry.totalEntries)),
            ("bat-offset", .size(m.batRegion.fileOffset)),
            ("metadata-offset", .size(m.metadataRegion.fileOffset)),
            ("log-offset", .size(h.logOffset)),
            ("log-length", .size(UInt64(h.logLength))),
            ("log-guid", .string(h.logGuid.description)),
            ("log-entries-replayed", .int(Int64(m.replayedEntries))),
            ("log-replayed-in-memory", .bool(m.replayedInMemory)),
            ("header-sequence", .size(h.sequenceNumber)),
            ("data-write-guid", .string(h.dataWriteGuid.description)),
            ("leave-blocks-allocated", .bool(m.items.leaveBlocksAllocated)),
            ("differencing", .bool(m.items.hasParent)),
            ("block-states", .object(counts.keys.sorted().map { ($0, .size(counts[$0]!)) })),
        ]
        if let id = m.items.diskId { bs.append(("disk-id", .string(id.description))) }
        bs.append(("headers", .array(try m.headerSlots().map { slot in
            .object([("offset", .size(slot.offset)), ("valid", .bool(slot.header != nil)),
                     ("sequence", slot.header.map { .size($0.sequenceNumber) } ?? .null), ("current", .bool(slot.current))])
        })))
        var kv: [(String, JSONValue)] = [
            ("virtual-size", .size(logicalSize)), ("filename", .string(path)),
            ("cluster-size", .size(UInt64(m.items.blockSize))), ("format", .string("vhdx")),
            ("actual-size", .size(try physicalSize())), ("dirty-flag", .bool(false)),
        ]
        if let parentPath {
            kv.append(("backing-filename", .string(parentPath)))
            if let parent { kv.append(("backing-filename-format", .string(parent.format.rawValue))) }
        }
        kv.append(("blockscope", .object(bs)))
        return .object(kv)
    }

    /// false: QEMU 7.2's VHDX driver has no block-status callback, so an image over a VHDX
    /// sees it as data over its whole size.
    public var reportsBlockStatus: Bool { false }

    /// One extent per block run, with the BAT state as detail; parent ranges at depth 1.
    public func mapExtents() throws(BlockError) -> [MapExtent] {
        let m = metadata
        let bsz = UInt64(m.items.blockSize)
        var out: [MapExtent] = []
        let parentExtents: [MapExtent] = (parent as? InspectableDisk).map { p in (try? p.mapExtents()) ?? [] } ?? []
        // Run by run of blocks in one state (the detail), each run mapped by one call.
        var b: UInt64 = 0
        while b < m.geometry.dataBlocks {
            let run = m.payloadRun(from: b, limit: m.geometry.dataBlocks - b)
            let start = b * bsz
            let len = min(run.count * bsz, logicalSize - start)
            b += run.count
            let state = VhdxBlockState(rawValue: run.state)
            let detail = state?.name ?? "RESERVED"
            for r in try mapForRead(start, len) {
                switch r.kind {
                case let .data(host):
                    appendMerging(&out, MapExtent(start: r.guestOffset, length: r.length, depth: 0, present: true, zero: false, data: true, offset: host, detail: detail))
                case .zero:
                    appendMerging(&out, MapExtent(start: r.guestOffset, length: r.length, depth: 0, present: state != .notPresent, zero: true, data: false, detail: detail))
                case .parent:
                    let pe = parentExtents.filter { $0.start < r.guestOffset + r.length && $0.start + $0.length > r.guestOffset }
                    if pe.isEmpty {
                        appendMerging(&out, MapExtent(start: r.guestOffset, length: r.length, depth: 1, present: false, zero: true, data: false, detail: detail))
                    }
                    for var x in pe {
                        let s = max(x.start, r.guestOffset), end = min(x.start + x.length, r.guestOffset + r.length)
                        if let o = x.offset { x.offset = o + (s - x.start) }
                        x.start = s; x.length = end - s; x.depth += 1; x.detail = detail
                        appendMerging(&out, x)
                    }
                }
            }
        }
        return out
    }

    /// Checks header/region/BAT consistency: reserved states, blocks past EOF, blocks overlapping
    /// each other or the header section, log, BAT and metadata regions, and the log state.
    ///
    /// Repair is limited to the log (replayed by a writable open); other problems are reported.
    public func check(repair: RepairMode?) throws(BlockError) -> CheckReport {
        let m = metadata
        var r = CheckReport()
        let size = try file.size()
        let h = m.currentHeader
        if m.replayedEntries > 0 {
            if m.replayedInMemory {
                r.corruptions += 1
                r.messages.append("the log holds \(m.replayedEntries) entries that have not been replayed into the file")
                if repair != nil { r.repairActions.append("a writable open replays the log") }
            } else {
                r.corruptionsFixed += 1
                r.repairActions.append("replayed \(m.replayedEntries) log entries")
            }
        }
        for slot in try m.headerSlots() where slot.header == nil {
            r.messages.append("header at \(hex(slot.offset)) has a bad signature or CRC-32C checksum (the other header is in use; the next update rewrites it)")
        }
        var used: [(start: UInt64, end: UInt64, what: String)] = [
            (0, VhdxLayout.mb, "header section"),
            (m.batRegion.fileOffset, m.batRegion.fileOffset + UInt64(m.batRegion.length), "BAT"),
            (m.metadataRegion.fileOffset, m.metadataRegion.fileOffset + UInt64(m.metadataRegion.length), "metadata region"),
        ]
        // A clean log is never read, so a log region past the end of the file (even past 2^64:
        // found by the vhdx fuzz target, an overflow trap here) opens, as in qemu-img, whose
        // check reports nothing. Said here, not counted: only writes need the log.
        let (logEnd, logOverflow) = h.logOffset.addingReportingOverflow(UInt64(h.logLength))
        if logOverflow || logEnd > size {
            r.messages.append("the log region (header LogOffset \(hex(h.logOffset)), LogLength \(hex(UInt64(h.logLength)))) lies beyond the end of the file (size \(hex(size))): the log is clean, but the image cannot be written")
        } else {
            used.append((h.logOffset, logEnd, "log"))
        }
        let bat = m.batSnapshot()
        let g = m.geometry
        r.totalClusters = g.dataBlocks
        var lastHost: UInt64?
        for (i, raw) in bat.enumerated() {
            let e = VhdxBatEntry(raw: raw)
            let isBitmap = (UInt64(i) + 1) % (g.chunkRatio + 1) == 0
            guard let st = e.state else {
                r.corruptions += 1
                r.messages.append("BAT entry \(i) has the reserved state 4")
                continue
            }
            guard st == .fullyPresent || st == .partiallyPresent else { continue }
            let len = isBitmap ? VhdxLayout.mb : g.blockSize
            let (blockEnd, o) = e.fileOffset.addingReportingOverflow(len)
            if o || blockEnd > size {
                r.corruptions += 1
                r.messages.append("BAT entry \(i) offset \(hex(e.fileOffset)) points after the end of the file (size \(hex(size)))")
            }
            if o { continue }
            used.append((e.fileOffset, blockEnd, "BAT entry \(i)"))
            if !isBitmap {
                r.allocatedClusters += 1
                if let l = lastHost, l != e.fileOffset { r.fragmentedClusters += 1 }
                lastHost = e.fileOffset + len
            }
        }
        used.sort { $0.start < $1.start }
        var maxEnd: UInt64 = 0
        for i in 0..<used.count {
            if i > 0 && used[i].start < used[i - 1].end && used[i].end > used[i].start {
                r.corruptions += 1
                r.messages.append("\(used[i].what) at \(hex(used[i].start)) overlaps \(used[i - 1].what) (ending at \(hex(used[i - 1].end)))")
            }
            maxEnd = max(maxEnd, used[i].end)
        }
        r.imageEndOffset = maxEnd
        return r
    }
}

import BlockIO
import BlockMap
import BlockInspect

extension VhdDisk {
    /// qemu-img info's keys for vpc (`cluster-size` for dynamic disks) plus a `blockscope` object.
    public func info() throws(BlockError) -> JSONValue {
        var kv: [(String, JSONValue)] = [("virtual-size", .size(logicalSize)), ("filename", .string(path))]
        if let m = metadata { kv.append(("cluster-size", .size(UInt64(m.dynamic.blockSize)))) }
        kv += [("format", .string("vpc")), ("actual-size", .size(try physicalSize())), ("dirty-flag", .bool(false))]
        if let parentPath {
            kv.append(("backing-filename", .string(parentPath)))
            if let parent { kv.append(("backing-filename-format", .string(parent.format.rawValue))) }
        }
        let chs = UInt64(footer.cylinders) * UInt64(footer.heads) * UInt64(footer.sectorsPerTrack)
        var bs: [(String, JSONValue)] = [
            ("subformat", .string(footer.diskType.name)),
            ("creator", .string(footer.creator)),
            ("current-size", .size(footer.currentSize)),
            ("chs", .string("\(footer.cylinders)/\(footer.heads)/\(footer.sectorsPerTrack)")),
            ("chs-size", .size(chs * 512)),
            ("size-source", .string(logicalSize == footer.currentSize && chs * 512 != logicalSize ? "current_size" : "chs")),
        ]
        if let m = metadata {
            let bat = m.batSnapshot()
            bs.append(("bat-offset", .size(m.dynamic.tableOffset)))
            bs.append(("bat-entries", .size(UInt64(bat.count))))
            bs.append(("allocated-blocks", .size(UInt64(bat.filter { $0 != VhdMetadata.unallocated }.count))))
        }
        kv.append(("blockscope", .object(bs)))
        return .object(kv)
    }

    /// Extents per block: allocated data with host offsets, unallocated as zero (or parent at depth 1).
    /// A fixed disk reports the file's holes (`SEEK_HOLE`) as zero data, as qemu-img map does.
    public func mapExtents() throws(BlockError) -> [MapExtent] {
        if metadata == nil {
            var out: [MapExtent] = []
            var pos: UInt64 = 0
            while pos < logicalSize {
                guard let d = file.nextData(from: pos), d < logicalSize else {
                    appendMerging(&out, MapExtent(start: pos, length: logicalSize - pos, depth: 0, present: true, zero: true, data: true, offset: pos))
                    break
                }
                if d > pos { appendMerging(&out, MapExtent(start: pos, length: d - pos, depth: 0, present: true, zero: true, data: true, offset: pos)) }
                let h = min(file.nextHole(from: d) ?? logicalSize, logicalSize)
                appendMerging(&out, MapExtent(start: d, length: h - d, depth: 0, present: true, zero: false, data: true, offset: d))
                pos = h
            }
            return out
        }
        let bsz = UInt64(metadata?.dynamic.blockSize ?? UInt32(min(logicalSize, 1 << 30)))
        var out: [MapExtent] = []
        var pos: UInt64 = 0
        while pos < logicalSize {
            let n = min(bsz - pos % bsz, logicalSize - pos)
            for r in try mapForRead(pos, n) {
                switch r.kind {
                case let .data(h): appendMerging(&out, MapExtent(start: r.guestOffset, length: r.length, depth: 0, present: true, zero: false, data: true, offset: h))
                case .zero: appendMerging(&out, MapExtent(start: r.guestOffset, length: r.length, depth: 0, present: true, zero: true, data: false))
                case .parent: appendMerging(&out, MapExtent(start: r.guestOffset, length: r.length, depth: 1, present: parent != nil, zero: false, data: parent != nil))
                }
            }
            pos += n
        }
        return out
    }

    /// Checks the BAT: blocks past EOF, blocks overlapping each other or the BAT, misaligned entries.
    public func check(repair: RepairMode?) throws(BlockError) -> CheckReport {
        var r = CheckReport()
        guard let m = metadata else { return r }
        let size = try file.size()
        let bat = m.batSnapshot()
        let span = m.dynamic.bitmapSize + UInt64(m.dynamic.blockSize)
        r.totalClusters = (logicalSize + UInt64(m.dynamic.blockSize) - 1) / UInt64(m.dynamic.blockSize)
        if let overlap = m.batOverlap {
            r.corruptions += 1
            r.messages.append(overlap)
        }
        var used: [(UInt64, UInt64, Int)] = []
        var last: UInt64?
        for (i, e) in bat.enumerated() where e != VhdMetadata.unallocated {
            let off = UInt64(e) * 512
            r.allocatedClusters += 1
            if off + span > size - 512 {
                r.corruptions += 1
                r.messages.append("BAT entry \(i) points to \(hex(off)), past the end of the data area (footer at \(hex(size - 512)))")
            }
            if off < m.dynamic.tableOffset + UInt64(bat.count) * 4 {
                r.corruptions += 1
                r.messages.append("BAT entry \(i) points to \(hex(off)), inside the headers or the BAT")
            }
            if let l = last, l != off { r.fragmentedClusters += 1 }
            last = off + span
            used.append((off, off + span, i))
        }
        used.sort { $0.0 < $1.0 }
        for i in 1..<max(1, used.count) where used[i].0 < used[i - 1].1 {
            r.corruptions += 1
            r.messages.append("block of BAT entry \(used[i].2) at \(hex(used[i].0)) overlaps the block of BAT entry \(used[i - 1].2)")
        }
        r.imageEndOffset = size
        return r
    }
}

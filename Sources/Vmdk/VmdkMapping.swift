import BlockIO
import BlockInspect
import BlockMap

#if canImport(Glibc)
import Glibc
#endif

extension VmdkDisk {
    /// Host regions for a guest read; never allocates. Takes the metadata lock.
    public func mapForRead(_ offset: UInt64, _ length: UInt64) throws(BlockError) -> [VmdkRegion] {
        try lock.locked { () throws(BlockError) in try mapLocked(offset, length) }
    }

    /// Calls `body(extentIndex, pieceStart, pieceLength)` for each extent piece of a range.
    func forEachExtentPiece(_ offset: UInt64, _ length: UInt64, _ body: (Int, UInt64, UInt64) throws(BlockError) -> Void) throws(BlockError) {
        var pos = offset
        let end = offset + length
        var i = extentIndex(offset)
        while pos < end && i < extents.count {
            let e = extents[i]
            let n = min(e.guestEnd, end) - pos
            if n > 0 { try body(i, pos, n) }
            pos += n
            i += 1
        }
    }

    func mapLocked(_ offset: UInt64, _ length: UInt64) throws(BlockError) -> [VmdkRegion] {
        var out: [VmdkRegion] = []
        try forEachExtentPiece(offset, length) { (i, pos, n) throws(BlockError) in
            let e = extents[i]
            guard let g = e.grains else {
                if e.file == nil { VmdkRegion.append(VmdkRegion(guestOffset: pos, length: n, kind: .zero), to: &out) } else {
                    VmdkRegion.append(VmdkRegion(guestOffset: pos, length: n, kind: .data(extent: i, host: e.flatOffset + pos - e.guestStart)), to: &out)
                }
                return
            }
            var p = pos
            while p < pos + n {
                let rel = p - e.guestStart
                let inGrain = rel % g.grainBytes
                let m = min(g.grainBytes - inGrain, pos + n - p)
                let kind: VmdkRegion.Kind
                switch try g.state(rel / g.grainBytes) {
                case .unallocated: kind = parent == nil ? .zero : .parent
                case .zero: kind = .zero
                case let .data(host): kind = .data(extent: i, host: host + inGrain)
                case let .compressed(host): kind = .compressed(extent: i, host: host, inGrain: inGrain)
                }
                VmdkRegion.append(VmdkRegion(guestOffset: p, length: m, kind: kind), to: &out)
                p += m
            }
        }
        return out
    }

    /// Host regions for a guest write (only `.data`): allocates the grains the range needs
    /// under the metadata lock. Order per allocation (ADR 0019): the new grain's old content
    /// (the parent's bytes, or a hole that reads as zeroes) is written and the file is
    /// `fdatasync`ed, then the grain table entry and its redundant copy are written; the
    /// guest data then goes to the grain like any in-place write. The first write after an
    /// open changes the descriptor's CID, as qemu does.
    public func mapForWrite(_ offset: UInt64, _ length: UInt64, queue: Int32, request: UInt64, sink: (any IoEventSink)?) throws(BlockError) -> [VmdkRegion] {
        try lock.locked { () throws(BlockError) in
            guard isWritable else { throw BlockError(.readOnly, "image is open read-only: cannot modify it", path: path, operation: "write") }
            // The first write's CID rewrite is checked before anything is written: a
            // descriptor that overlaps a grain table refuses the write with the file as it was
            // (committing the entries first wrote the redundant table over the descriptor).
            let cid = cidUpdated ? nil : try prepareCID()
            var out: [VmdkRegion] = []
            var pending: [(extent: Int, grain: UInt64, host: UInt64)] = []
            try forEachExtentPiece(offset, length) { (i, pos, n) throws(BlockError) in
                let e = extents[i]
                guard let g = e.grains else {
                    if e.file == nil {
                        throw BlockError(.unsupportedFeature, "vmdk: guest range at \(hex(pos)) lies in a ZERO extent (descriptor line \(e.line.line)), which has no file to write to", path: path, guestOffset: pos, operation: "write")
                    }
                    VmdkRegion.append(VmdkRegion(guestOffset: pos, length: n, kind: .data(extent: i, host: e.flatOffset + pos - e.guestStart)), to: &out)
                    return
                }
                var p = pos
                while p < pos + n {
                    let rel = p - e.guestStart
                    let grain = rel / g.grainBytes
                    let inGrain = rel % g.grainBytes
                    let m = min(g.grainBytes - inGrain, pos + n - p)
                    var host: UInt64
                    switch try g.state(grain) {
                    case let .data(h):
                        if let what = g.metadataOverlap(h, g.grainBytes) {
                            throw BlockError(.corruptImage, "vmdk: grain \(grain) at \(hex(h)) overlaps \(what); writing it would corrupt the image", path: e.path, guestOffset: p, hostOffset: h, operation: "write")
                        }
                        host = h
                    case let .compressed(h): throw BlockError(.unsupportedFeature, "vmdk: grain at \(hex(h)) is compressed and cannot be rewritten", path: e.path, guestOffset: p, operation: "write")
                    case let s:
                        if let done = pending.first(where: { $0.extent == i && $0.grain == grain }) { host = done.host } else {
                            host = try allocate(extent: i, grain: grain, fromParent: s == .unallocated, queue: queue, request: request, sink: sink)
                            pending.append((i, grain, host))
                        }
                    }
                    VmdkRegion.append(VmdkRegion(guestOffset: p, length: m, kind: .data(extent: i, host: host + inGrain)), to: &out)
                    p += m
                }
            }
            if !pending.isEmpty { try commit(pending, queue: queue, request: request, sink: sink) }
            if let cid { try applyCID(cid) }
            return out
        }
    }

    /// Reserves a grain for `grain` of extent `i` and writes its old content: the parent's
    /// bytes when the grain was unallocated and there is a parent; otherwise the new grain is
    /// a hole of the grown file and reads as zeroes already.
    private func allocate(extent i: Int, grain: UInt64, fromParent: Bool, queue: Int32, request: UInt64, sink: (any IoEventSink)?) throws(BlockError) -> UInt64 {
        let e = extents[i]
        let g = e.grains!
        let ti = Int(grain / UInt64(g.tableEntries))
        try refuseClash(g, extent: e, guest: e.guestStart + grain * g.grainBytes)
        if !g.hasTable(ti) {
            throw BlockError(.unsupportedFeature, "vmdk: grain table \(ti) is not allocated (grain directory entry 0); blockscope does not add grain tables", path: e.path, guestOffset: e.guestStart + grain * g.grainBytes, operation: "write")
        }
        let host = try g.allocateGrain()
        let start = e.guestStart + grain * g.grainBytes
        if fromParent, let parent, start < parent.logicalSize {
            let n = Int(min(g.grainBytes, e.guestEnd - start, parent.logicalSize - start))
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 4096)
            defer { buf.deallocate() }
            try readParent(into: buf, at: start)
            try e.file!.write(UnsafeRawBufferPointer(buf), at: host)
        }
        sink?.publish(IoEvent(queue: queue, request: request, .allocated(guestOffset: start, hostOffset: host, length: g.grainBytes)))
        return host
    }

    /// Refuses a table entry write into an extent whose metadata structures share bytes
    /// (``VmdkGrainMap/metadataClash``): qemu-img check finds nothing there, and qemu's own
    /// write changes the other structure too (a fuzz input's grain table 0 lay inside the
    /// grain directory, so grain 0's new entry became directory entry 128).
    private func refuseClash(_ g: VmdkGrainMap, extent e: VmdkExtent, guest: UInt64) throws(BlockError) {
        if let clash = g.metadataClash {
            throw BlockError(.corruptImage, "vmdk: \(clash); writing a grain table entry would corrupt the image", path: e.path, guestOffset: guest, operation: "write")
        }
    }

    /// Makes the new grains stable, then points their grain table entries (and the redundant
    /// ones) at them.
    private func commit(_ pending: [(extent: Int, grain: UInt64, host: UInt64)], queue: Int32, request: UInt64, sink: (any IoEventSink)?) throws(BlockError) {
        var synced: Set<Int> = []
        for p in pending where !synced.contains(p.extent) {
            synced.insert(p.extent)
            try extents[p.extent].file!.sync(dataOnly: true)
        }
        for p in pending {
            let g = extents[p.extent].grains!
            try g.setEntry(p.grain, sector: UInt32(p.host / 512))
            sink?.publish(IoEvent(queue: queue, request: request, .tableUpdate(table: .l2, index: p.grain, old: 0, new: p.host / 512)))
        }
    }

    /// Zeroes what needs no data write: returns true when the whole range now reads as zero
    /// without one (no parent and nothing allocated; or whole grains turned into zeroed
    /// grains where the extent supports them).
    func zeroInPlace(_ offset: UInt64, _ length: UInt64) throws(BlockError) -> Bool {
        try lock.locked { () throws(BlockError) in
            var all = true
            var zeroGrains: [(Int, UInt64)] = []
            try forEachExtentPiece(offset, length) { (i, pos, n) throws(BlockError) in
                let e = extents[i]
                guard let g = e.grains else { if e.file != nil { all = false }; return }
                var p = pos
                while p < pos + n {
                    let rel = p - e.guestStart
                    let grain = rel / g.grainBytes
                    let inGrain = rel % g.grainBytes
                    let m = min(g.grainBytes - inGrain, pos + n - p)
                    let s = try g.state(grain)
                    if s == .zero || (s == .unallocated && parent == nil) {
                    } else if g.zeroedGrains && inGrain == 0 && m == g.grainBytes && g.hasTable(Int(grain / UInt64(g.tableEntries))) {
                        zeroGrains.append((i, grain))
                    } else { all = false }
                    p += m
                }
            }
            guard all else { return false }
            for (i, grain) in zeroGrains { try refuseClash(extents[i].grains!, extent: extents[i], guest: extents[i].guestStart + grain * extents[i].grains!.grainBytes) }
            if !zeroGrains.isEmpty && !cidUpdated, let cid = try prepareCID() { try applyCID(cid) }
            for (i, grain) in zeroGrains { try extents[i].grains!.setEntry(grain, sector: 1) }
            return true
        }
    }

    /// The descriptor text with a new random CID (the first write after an open changes it,
    /// as qemu does: a child made over this image then no longer matches it) and where it
    /// goes, checked before anything is written. nil when the disk has no descriptor to
    /// rewrite. Throws, leaving the file and ``cidUpdated`` as they were, when the text no
    /// longer fits or an embedded descriptor overlaps the image's metadata: the write is then
    /// refused, and so is every later one.
    func prepareCID() throws(BlockError) -> CIDRewrite? {
        guard let place = descriptorPlace else { return nil }
        var d = descriptor
        d.cid = UInt32.random(in: 1...UInt32.max - 1)
        var text = Array(d.text().utf8)
        if UInt64(text.count) > place.capacity {
            throw BlockError(.overflow, "vmdk: the descriptor (\(text.count) bytes) no longer fits its \(place.capacity) bytes", path: path, hostOffset: place.offset, operation: "write")
        }
        let first4 = try file.readBytes(at: 0, count: 4)
        if place.offset == 0 && !VmdkSparseHeader.isSparse(first4) { return CIDRewrite(descriptor: d, bytes: text, offset: 0, separate: true) }
        // Only the old text is replaced (padded with zeroes to its length), not the whole
        // region the header declares: a region that runs over the grain directories or
        // tables (a damaged header's descriptor size) must not zero them. qemu likewise
        // writes back only the bytes it read as the descriptor.
        let size = try file.size()
        let old = place.offset < size ? try file.readBytes(at: place.offset, count: Int(min(place.capacity, size - place.offset))) : []
        let oldLength = old.firstIndex(of: 0) ?? old.count
        if oldLength > text.count { text += [UInt8](repeating: 0, count: oldLength - text.count) }
        // A longer text ends in a NUL of its own (room allowing: a text that fills the
        // region ends with it): the bytes after the old text's NUL are not text, and the
        // reader would take them as more lines (a fuzz input's descriptor then no longer
        // parsed). qemu writes back its whole zero-terminated descriptor buffer.
        if UInt64(text.count) < place.capacity && text.last != 0 { text.append(0) }
        if let g = extents.first(where: { $0.file === file })?.grains,
           let what = g.metadataOverlap(place.offset, UInt64(text.count), besidesDescriptor: true) {
            throw BlockError(.corruptImage, "vmdk: the embedded descriptor at \(hex(place.offset)) (\(text.count) bytes of text) overlaps \(what); rewriting its CID would corrupt the image", path: path, hostOffset: place.offset, operation: "write")
        }
        return CIDRewrite(descriptor: d, bytes: text, offset: place.offset, separate: false)
    }

    /// Writes what ``prepareCID()`` made (a descriptor file is rewritten whole and cut to
    /// its new length) and marks the CID updated for this open.
    func applyCID(_ r: CIDRewrite) throws(BlockError) {
        try file.writeBytes(r.bytes, at: r.offset)
        if r.separate { try file.truncate(to: UInt64(r.bytes.count)) }
        cidUpdated = true
        descriptor = r.descriptor
    }
}

/// A descriptor rewrite ready to be written: the descriptor with its new CID, the bytes and
/// their offset, and whether the file is a descriptor file of its own (cut to the new text).
struct CIDRewrite {
    let descriptor: VmdkDescriptor
    let bytes: [UInt8]
    let offset: UInt64
    let separate: Bool
}

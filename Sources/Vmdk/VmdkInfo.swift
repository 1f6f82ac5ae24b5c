import BlockIO
import BlockInspect
import BlockMap

extension VmdkDisk {
    /// Visits grains `0..<grains` of sparse extent map `g` a grain table at a time: each
    /// table's states are read and decoded at once under the disk's lock (not a lock and a
    /// lookup per grain: a 5.7 GiB stream-optimized disk is 94,000 grains), then
    /// `body(first, states)` runs without it for grains `first..<first + states.count`; `nil`
    /// states mean the directory has no table there, so all of `first..<end` is unallocated
    /// (`end` is the table's end, clamped to `grains`). A grain whose entry cannot be decoded
    /// ends the walk after the states before it: `failed(grain, error)` runs then. `body`
    /// returning false stops the walk. `map`, `check` and the structure walk go through here.
    func forEachGrainTable(_ g: VmdkGrainMap, grains: UInt64,
                           _ body: (_ first: UInt64, _ end: UInt64, _ states: [VmdkGrainState]?) throws(BlockError) -> Bool,
                           failed: (_ grain: UInt64, _ error: BlockError) throws(BlockError) -> Void) throws(BlockError) {
        let per = UInt64(g.tableEntries)
        var first: UInt64 = 0
        while first < grains {
            let end = min(grains, (first / per + 1) * per), from = first
            let t = lock.run { g.tableStates(from, end) }
            first = end
            guard try body(from, end, t.noTable ? nil : t.states) else { return }
            if let (grain, error) = t.failure { try failed(grain, error); return }
        }
    }
    /// qemu-img info's keys for vmdk (`format-specific.data`: cid, parent-cid, create-type,
    /// extents) plus a `blockscope` object with each extent's grain directory.
    public func info() throws(BlockError) -> JSONValue {
        var kv: [(String, JSONValue)] = [("virtual-size", .size(logicalSize)), ("filename", .string(path))]
        let first = extents[0]
        let sameKind = extents.allSatisfy { ($0.grains == nil) == (first.grains == nil) && $0.grains?.compressed == first.grains?.compressed
            && (first.grains == nil || $0.grains?.grainBytes == first.grains?.grainBytes) }
        if sameKind, let g = first.grains { kv.append(("cluster-size", .size(g.grainBytes))) }
        kv += [("format", .string("vmdk")), ("actual-size", .size(try physicalSize()))]
        if let hint = descriptor.parentFileNameHint {
            kv.append(("backing-filename", .string(hint)))
            kv.append(("full-backing-filename", .string(parentPath ?? hint)))
            kv.append(("backing-filename-format", .string("vmdk")))
        }
        var list: [JSONValue] = []
        var bs: [JSONValue] = []
        for e in extents {
            var x: [(String, JSONValue)] = []
            if let g = e.grains, g.compressed { x.append(("compressed", .bool(true))) }
            x += [("virtual-size", .size(e.length)), ("filename", .string(e.path ?? "")), ]
            if let g = e.grains { x.append(("cluster-size", .size(g.grainBytes))) }
            x.append(("format", .string(e.typeName)))
            list.append(.object(x))
            var b: [(String, JSONValue)] = [("type", .string(e.line.type.rawValue)), ("guest-start", .size(e.guestStart))]
            if let g = e.grains {
                b += [("grain-directory-offset", .size(g.directoryOffset)), ("grain-directory-entries", .size(UInt64(g.directory.count))),
                      ("grain-table-entries", .size(UInt64(g.tableEntries)))]
                if let h = g.header { b += [("version", .size(UInt64(h.version))), ("flags", .size(UInt64(h.flags)))] }
                if g.redundantDirectory != nil, let h = g.header { b.append(("redundant-grain-directory-offset", .size(h.rgdOffset * 512))) }
            } else if e.file != nil {
                b.append(("offset", .size(e.flatOffset)))
            }
            bs.append(.object(b))
        }
        let data: [(String, JSONValue)] = [("cid", .size(UInt64(descriptor.cid))), ("parent-cid", .size(UInt64(descriptor.parentCID))),
                                           ("create-type", .string(createType)), ("extents", .array(list))]
        kv.append(("format-specific", .object([("type", .string("vmdk")), ("data", .object(data))])))
        kv.append(("dirty-flag", .bool(false)))
        kv.append(("blockscope", .object([("extents", .array(bs))])))
        return .object(kv)
    }

    /// Extents as qemu-img map reports them: grains of this image at depth 0 with host
    /// offsets in their extent file, flat extents split where the file has holes (zero data,
    /// as qemu's recursion into flat extents reports them), compressed grains without offsets, zeroed grains as zero, unallocated ranges
    /// from the parent one level deeper (or absent at depth 0 without one).
    public func mapExtents() throws(BlockError) -> [MapExtent] {
        var out: [MapExtent] = []
        var parentMap: [MapExtent]?
        func fromParent(_ start: UInt64, _ n: UInt64) throws(BlockError) {
            guard let parent else {
                appendMerging(&out, MapExtent(start: start, length: n, depth: 0, present: false, zero: true, data: false))
                return
            }
            if parentMap == nil { parentMap = try (parent as? any InspectableDisk)?.mapExtents() ?? [MapExtent(start: 0, length: parent.logicalSize, depth: 0, present: true, zero: false, data: true)] }
            var pos = start
            let end = start + n
            // The parent's map is in guest order: start at its first extent ending past `pos`.
            let pm = parentMap!
            for pe in pm[firstExtentIndex(endingAfter: pos, in: pm)...] {
                if pe.start >= end { break }
                let s = max(pe.start, pos), t = min(pe.start + pe.length, end)
                var x = pe
                x.start = s
                x.length = t - s
                x.depth += 1
                if let o = pe.offset { x.offset = o + (s - pe.start) }
                appendMerging(&out, x)
                pos = t
            }
            if pos < end { appendMerging(&out, MapExtent(start: pos, length: end - pos, depth: 1, present: false, zero: true, data: false)) }
        }
        func data(_ f: SystemFile, _ start: UInt64, _ n: UInt64, _ host: UInt64) {
            var p: UInt64 = 0
            while p < n {
                let h = host + p
                if let d = f.nextData(from: h), d == h {
                    let end = min(f.nextHole(from: h) ?? (host + n), host + n)
                    appendMerging(&out, MapExtent(start: start + p, length: end - h, depth: 0, present: true, zero: false, data: true, offset: h))
                    p += end - h
                } else {
                    let d = min(f.nextData(from: h) ?? (host + n), host + n)
                    appendMerging(&out, MapExtent(start: start + p, length: d - h, depth: 0, present: true, zero: true, data: true, offset: h))
                    p += d - h
                }
            }
        }
        for e in extents {
            guard let g = e.grains else {
                if let f = e.file { data(f, e.guestStart, e.length, e.flatOffset) } else {
                    appendMerging(&out, MapExtent(start: e.guestStart, length: e.length, depth: 0, present: true, zero: true, data: false))
                }
                continue
            }
            // A grain table at a time (``forEachGrainTable``); a table the directory lacks is
            // one unallocated span.
            let grains = (e.guestEnd - e.guestStart + g.grainBytes - 1) / g.grainBytes
            try forEachGrainTable(g, grains: grains, { (first, end, states) throws(BlockError) -> Bool in
                let start = e.guestStart + first * g.grainBytes
                guard let states else {
                    try fromParent(start, min(e.guestEnd, e.guestStart + end * g.grainBytes) - start)
                    return true
                }
                for (k, state) in states.enumerated() {
                    let pos = start + UInt64(k) * g.grainBytes
                    let n = min(g.grainBytes, e.guestEnd - pos)
                    switch state {
                    case .unallocated: try fromParent(pos, n)
                    case .zero: appendMerging(&out, MapExtent(start: pos, length: n, depth: 0, present: true, zero: true, data: false))
                    case let .data(host):
                        // qemu looks into the file's holes for flat extents only (BDRV_BLOCK_RECURSE).
                        appendMerging(&out, MapExtent(start: pos, length: n, depth: 0, present: true, zero: false, data: true, offset: host))
                    case .compressed: appendMerging(&out, MapExtent(start: pos, length: n, depth: 0, present: true, zero: false, data: true, detail: "compressed"))
                    }
                }
                return true
            }, failed: { (_, error) throws(BlockError) in throw error })
        }
        return out
    }

    /// What `qemu-img check` checks on vmdk: every allocated grain of every sparse extent lies
    /// before the end of its file (and every grain table can be read). qemu stops at the first
    /// problem, counts one corruption and fails the check (exit 1); so does this, naming the
    /// grain. Grains are counted.
    public func check(repair: RepairMode?) throws(BlockError) -> CheckReport {
        if repair != nil {
            throw BlockError(.unsupportedFeature, "vmdk: check has no repair (qemu-img check -r refuses vmdk too)", path: path, operation: "check")
        }
        var r = CheckReport()
        outer: for e in extents {
            guard let g = e.grains else { continue }
            let size = try e.file!.size()
            let grains = (e.length + g.grainBytes - 1) / g.grainBytes
            r.totalClusters += grains
            var last: UInt64?
            var stop = false
            // A grain table at a time (``forEachGrainTable``).
            try forEachGrainTable(g, grains: grains, { (from, _, states) throws(BlockError) -> Bool in
                for (k, state) in (states ?? []).enumerated() {
                    let grain = from + UInt64(k)
                    switch state {
                    case let .data(h), let .compressed(h):
                        r.allocatedClusters += 1
                        if case .compressed = state { r.compressedClusters += 1 }
                        if h >= size {
                            r.corruptions += 1
                            r.checkErrors += 1
                            r.messages.append("\(e.path ?? path): grain \(grain) (guest \(hex(e.guestStart + grain * g.grainBytes))) points to \(hex(h)), after the end of the file (\(hex(size)))")
                            stop = true
                            return false
                        }
                        if let l = last, l != h { r.fragmentedClusters += 1 }
                        last = h + g.grainBytes
                    default: break
                    }
                }
                return true
            }, failed: { (grain, err) throws(BlockError) in
                // qemu-img stops here with "Check failed" (exit 1) after counting one corruption.
                r.corruptions += 1
                r.checkErrors += 1
                r.messages.append("\(e.path ?? path): grain \(grain) (guest \(hex(e.guestStart + grain * g.grainBytes))): \(err.message)")
                stop = true
            })
            if stop { break outer }
        }
        // qemu-img check reports no image end offset for vmdk (several files); neither does this.
        return r
    }
}

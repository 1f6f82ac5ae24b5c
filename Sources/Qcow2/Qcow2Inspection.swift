import BlockIO
import BlockInspect

/// QCOW2 through the format-neutral inspection model (``ImageInspector``): L1 and L2 as a
/// directory and leaf tables, refcounts as the host-unit panel, the header, extensions,
/// snapshots and bitmaps as overview sections, all from the structure model
/// (``Qcow2Structure``: the parsers and the reference walk `check` uses).
///
/// Lazy and bounded: opening reads the header, extensions, snapshot table, L1 and refcount
/// table; an L2 table is read when shown (the last 8 are kept); stored refcounts come from
/// the metadata's refcount-block cache row by row; the whole-image use map is built on a
/// background thread (``InspectWalker``) the first time something asks for it.
public final class Qcow2Inspection: ImageInspector {
    /// The structure model (replaced on reload).
    public private(set) var structure: Qcow2Structure
    private let live: QcowMetadata?
    package var walker: InspectWalker<HostUseMap>
    private let host: SystemFile?
    private var l2Cache: [(index: Int, table: [Qcow2L2Entry])] = []
    private var regionCache: [HostRegion]?
    /// The histogram of expected refcounts, per finished walk.
    package var histogramCache: (generation: Int, bars: [(UInt64, Int)])?

    /// Where the backing chain holds data (the open disk's answer), asked once on first use.
    private let chainSource: (() -> BackingAllocation?)?
    private var chainCache: BackingAllocation??

    /// Reads the image at `path`; with `live` (the open disk's metadata, active view) tables
    /// come from memory, so allocations show before they are flushed. `backing` answers where
    /// the open backing chain holds data; without it the chain's content is unknown.
    public init(path: String, live: QcowMetadata? = nil, backing: (() -> BackingAllocation?)? = nil) throws(BlockError) {
        let l = live?.snapshot == nil ? live : nil
        self.live = l
        chainSource = backing
        if let l { structure = Qcow2Structure(metadata: l) } else { structure = try Qcow2Structure(path: path) }
        host = try? SystemFile(path: path, writable: false)
        walker = Qcow2Inspection.walker(structure)
    }

    /// The registry's factory: a QCOW2 image (open or not) gets this inspector; `disk`'s
    /// live metadata is used when it is an open QCOW2 disk.
    package static func make(path: String, disk: (any DiskFile)?) throws(BlockError) -> InspectorHandle? {
        let q = disk as? Qcow2Disk
        var chain: (() -> BackingAllocation?)?
        if let q { chain = { q.backingAllocation } }
        let i = try Qcow2Inspection(path: path, live: q?.liveQcow2Structure()?.metadata, backing: chain)
        return InspectorHandle(inspector: i, words: Qcow2EventWords(clusterBits: Int(i.structure.header?.clusterBits ?? 16), l2Entries: i.structure.header.map { Int($0.l2Entries) }))
    }

    private static func walker(_ s: Qcow2Structure) -> InspectWalker<HostUseMap> {
        InspectWalker { progress in try s.walk(progress: progress) }
    }

    /// "qcow2".
    public var formatName: String { ImageFormat.qcow2.rawValue }
    /// "L1/L2" for the directory and its leaf tables.
    public func tabTitle(_ role: InspectTableRole) -> String? { role == .allocation ? nil : "L1/L2" }
    /// Guest size (0 when the header is unreadable).
    public var guestSize: UInt64 { structure.header?.size ?? 0 }
    /// Host file size.
    public var hostSize: UInt64 { structure.fileSize }
    /// Cluster size in bytes (64 KiB when the header is unreadable, to lay out the host map).
    public var clusterSize: UInt64 { structure.header?.clusterSize ?? 65536 }
    /// L2 entries per table.
    package var l2Entries: Int { Int(structure.header?.l2Entries ?? 0) }
    /// Whether L2 entries carry subcluster bitmaps.
    package var extendedL2: Bool { structure.header?.extendedL2 ?? false }
    /// Refcount width in bits.
    package var refcountBits: Int { Int(structure.header?.refcountBits ?? 16) }
    /// The active L1 table (empty when unreadable).
    package var l1: [UInt64] { structure.l1 }
    /// The refcount table (empty when unreadable).
    package var refcountTable: [UInt64] { structure.metadata?.refcountTable ?? [] }
    /// Host clusters: the use map's, or the file's size in clusters before the walk is done.
    package var hostClusters: Int { usage?.count ?? Int((hostSize + clusterSize - 1) / clusterSize) }
    /// The Overview shows the header's fields and the snapshots itself.
    public var showsFormatInfoFields: Bool { true }

    /// The whole-image use map when the background walk has finished (starts it on first ask).
    public var usage: HostUseMap? {
        if !walker.started && structure.metadata != nil { walker.start() }
        return walker.result
    }

    /// The walk's state in words while there is no use map to show ("walking host clusters
    /// 42%", or why it failed); nil once it is there and no walk runs.
    package var usageStatus: String? {
        if let p = walker.progress { return "walking host clusters \(Int(p * 100))%" + (walker.result != nil ? " (showing the previous walk)" : "") }
        if let e = walker.error { return "walk failed: \(e)" }
        if walker.cancelled { return "walk cancelled (x walks again)" + (walker.result != nil ? "; showing the previous walk" : "") }
        if structure.metadata == nil { return "tables unreadable: " + structure.problems.map(\.label).joined(separator: "; ") }
        return walker.result == nil ? "walk not started" : nil
    }

    /// True once after each finished background walk.
    public func pollBackground() -> Bool { walker.takeFinished() }

    /// Starts the walk if none ran and waits until it is done (tests, scripts).
    public func waitForBackground() {
        _ = usage
        walker.waitUntilIdle()
    }

    /// Blocks until the background walk (if any) is done and returns the use map (tests).
    package func waitForUsage() -> HostUseMap? {
        waitForBackground()
        return walker.result
    }

    /// Rereads the header and tables; the use map is rebuilt in the background (the old one
    /// stays shown until then).
    public func reload() {
        if let live { structure = Qcow2Structure(metadata: live) } else if let s = try? Qcow2Structure(path: structure.path) { structure = s }
        l2Cache.removeAll()
        regionCache = nil
        if walker.started && !walker.cancelled {
            if live != nil { walker.start() } else { walker.cancel(); walker = Qcow2Inspection.walker(structure); walker.start() }
        }
    }

    /// The running walk over the host clusters.
    public var backgroundProgress: InspectProgress? {
        walker.progress.map { InspectProgress(what: "host clusters", fraction: $0, total: Int((hostSize + clusterSize - 1) / clusterSize)) }
    }

    /// Holds or releases the background walk.
    public func holdBackground(_ on: Bool) { walker.hold(on) }

    /// Stops the running walk, or walks again after a cancelled one.
    public func toggleBackground() -> String? {
        if walker.progress != nil {
            walker.cancel()
            return "walk of the host clusters cancelled: views keep \(walker.result != nil ? "the previous walk" : "no use map") (x walks again)"
        }
        if walker.cancelled || (!walker.started && structure.metadata != nil) {
            walker.start()
            return "walking the host clusters again"
        }
        return nil
    }

    /// Cancels the background walk and waits for it to stop.
    public func stopBackground() {
        walker.cancel()
        walker.waitUntilIdle()
    }

    /// The L2 table under L1 entry `index` (the last 8 read are kept).
    package func l2Table(l1Index index: Int) -> [Qcow2L2Entry]? {
        if let k = l2Cache.firstIndex(where: { $0.index == index }) { return l2Cache[k].table }
        guard let t = structure.l2Table(l1Index: index) else { return nil }
        l2Cache.append((index, t))
        if l2Cache.count > 8 { l2Cache.removeFirst() }
        return t
    }

    /// Why the tables could not be read (the structure model's problems), nil when they were.
    package var tablesUnreadable: String? {
        structure.metadata == nil ? structure.problems.map(\.label).joined(separator: "; ") : nil
    }

    /// Why the L2 table under L1 entry `index` cannot be read (nil when it reads or is absent).
    package func l2ReadError(l1Index index: Int) -> String? {
        guard index < l1.count, l2TableOffset(l1[index]) != 0, l2Table(l1Index: index) == nil else { return nil }
        return structure.l2ReadError(l1Index: index) ?? "read failed"
    }

    /// Host offset of the L2 table an L1 entry points to (0 when unallocated).
    package func l2TableOffset(_ l1Entry: UInt64) -> UInt64 { l1Entry & Qcow2Entry.offsetMask }
    /// Host offset of the L1 table (0 when the header is unreadable).
    package var l1TableOffset: UInt64 { structure.header?.l1TableOffset ?? 0 }
    /// Host offset of the refcount table (0 when the header is unreadable).
    package var refcountTableOffset: UInt64 { structure.header?.refcountTableOffset ?? 0 }
    /// True when the image names a backing file.
    package var hasBacking: Bool { structure.backingFile != nil }

    /// The stored refcount of the cluster at host offset `offset` (nil when unreadable).
    package func refcount(ofClusterAt offset: UInt64) -> UInt64? {
        structure.storedRefcount(cluster: offset / clusterSize)
    }

    /// The L2 entry that maps guest offset `offset` (nil when its table is absent).
    package func l2Entry(forGuest offset: UInt64) -> Qcow2L2Entry? {
        let per = UInt64(max(1, l2Entries))
        let c = offset / clusterSize
        return l2Table(l1Index: Int(c / per)).map { $0[Int(c % per)] }
    }

    /// How an L2 entry reads as a whole (the parser's classification).
    package func type(of e: Qcow2L2Entry) -> Qcow2SubclusterType {
        e.clusterType(extendedL2: extendedL2, externalData: structure.header?.hasExternalData ?? false)
    }

    /// Host offset and length of a compressed entry's data.
    package func compressedExtent(_ e: Qcow2L2Entry) -> (offset: UInt64, length: UInt64) {
        let d = Qcow2CompressedDescriptor(entry: e.entry & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: structure.header?.clusterBits ?? 16)
        return (d.hostOffset, UInt64(d.length))
    }

    /// Where the backing chain holds data (nil: no backing file, or not known).
    private var chain: BackingAllocation? {
        if let c = chainCache { return c }
        let c = chainSource?()
        chainCache = .some(c)
        return c
    }

    /// How guest range `[start, start+length)` reads where this image maps nothing: from the
    /// backing file only where the chain holds data there (qemu-img map's `data` at depth 1
    /// and beyond); elsewhere it reads as zeroes, and says so.
    package func unallocatedState(_ start: UInt64, _ length: UInt64) -> InspectCell {
        guard structure.backingFile != nil else { return InspectCell(.free, "unallocated (reads zeroes)") }
        guard let c = chain else { return InspectCell(.backing, "unallocated here: the backing file decides (its map could not be read)") }
        if c.holdsData(start, length) { return InspectCell(.backing, "unallocated here: read from the backing file, which holds data here") }
        return InspectCell(.free, "unallocated here and in the backing chain: reads as zeroes")
    }

    /// How guest cluster `cluster` reads.
    package func guestState(cluster: UInt64) -> InspectCell {
        let unalloc = unallocatedState(cluster * clusterSize, clusterSize)
        guard let e = l2Entry(forGuest: cluster * clusterSize) else { return unalloc }
        switch type(of: e) {
        case .compressed:
            let c = compressedExtent(e)
            return InspectCell(.compressed, "compressed, \(c.length) bytes at host \(hex(c.offset))")
        case .zeroAlloc: return InspectCell(.zero, "zero cluster (preallocated at \(hex(e.hostOffset)))")
        case .zeroPlain: return InspectCell(.zero, "zero cluster")
        case .unallocatedPlain, .unallocatedAlloc: return unalloc
        case .invalid: return InspectCell(.error, "invalid subcluster bitmap \(hex(e.bitmap))")
        case .normal: return InspectCell(.data, "data at host \(hex(e.hostOffset))\(e.entry & Qcow2Entry.copied != 0 ? " COPIED" : "")")
        }
    }

    /// Guest cluster state (the dominant one when a cell spans several clusters; at most 64 probes).
    public func guestCell(_ start: UInt64, _ length: UInt64) -> InspectCell {
        if let why = tablesUnreadable { return InspectCell(.error, "unreadable (the L1 table could not be read): \(why)") }
        let cs = clusterSize
        let first = start / cs, last = (start + max(length, 1) - 1) / cs
        let rank: [InspectTone: Int] = [.free: 0, .backing: 1, .zero: 2, .data: 3, .compressed: 4, .error: 5]
        var best: InspectCell?
        func consider(_ s: InspectCell) {
            if best == nil || rank[s.tone, default: 0] > rank[best!.tone, default: 0] { best = s }
        }
        var c = first
        var probes = 0
        let per = UInt64(max(1, l2Entries))
        while c <= last && probes < 64 {
            let l1i = Int(c / per)
            if l1i >= l1.count || l2TableOffset(l1[l1i]) == 0 {
                let next = min((c / per + 1) * per, last + 1)
                consider(unallocatedState(c * cs, (next - c) * cs))
                c = (c / per + 1) * per
                continue
            }
            if l2Table(l1Index: l1i) == nil {
                consider(InspectCell(.error, "unreadable: L2 table at \(hex(l2TableOffset(l1[l1i]))) (L1[\(l1i)]): \(structure.l2ReadError(l1Index: l1i) ?? "read failed")"))
                c = (c / per + 1) * per
                continue
            }
            consider(guestState(cluster: c))
            c += max(1, (last - first + 1) / 64)
            probes += 1
        }
        return best ?? InspectCell(.free, "unallocated")
    }

    /// Host cluster use: from the use map, or from the named regions until the walk is done.
    public func hostCell(_ start: UInt64, _ length: UInt64) -> InspectCell {
        let cs = clusterSize
        let first = Int(start / cs), end = Int((start + max(length, 1) - 1) / cs) + 1
        if let u = usage {
            guard first < u.count else { return InspectCell(.free, "beyond end of file") }
            // The use map only: no refcount-block read per cell (the refcount panel reads those).
            let d = u.dominant(first, end)
            let refs = u.expectedRefcount(first).map { ", referenced \($0)x" } ?? ""
            if d.kind == .leaked, let bad = u.unreadable.first {
                return InspectCell(.warning, "cluster \(first): refcount above the references the walk could read; references unknown: \(bad.label)")
            }
            if !d.mismatched, u.releasePending(first, end) {
                return InspectCell(.warning, "cluster \(first): \(InspectWords.releasePending): \(d.kind.name)\(refs)")
            }
            return InspectCell(d.mismatched ? .error : d.kind.tone, "cluster \(first): \(d.kind.name)\(refs)\(d.mismatched ? ", stored refcount differs" : "")")
        }
        let e = start + max(length, 1)
        let r = regions.last(where: { $0.offset < e && $0.offset + max($0.length, 1) > start })
        let note = usageStatus.map { " (\($0))" } ?? ""
        return r.map { InspectCell($0.kind.tone, "\($0.label) at \(hex($0.offset))" + note) } ?? InspectCell(.free, "not a table" + note)
    }

    /// The named regions (header, tables, problems), read once per reload.
    package var regions: [HostRegion] {
        if let r = regionCache { return r }
        let r = structure.hostRegions()
        regionCache = r
        return r
    }

    /// Guest offset to host offset through L1/L2.
    public func mapGuest(_ offset: UInt64) -> InspectMapping {
        let cs = clusterSize
        let per = UInt64(max(1, l2Entries))
        let cluster = offset / cs
        let l1i = cluster / per, l2i = cluster % per
        if let err = l2ReadError(l1Index: Int(l1i)) { return InspectMapping(host: nil, "L1[\(l1i)] -> L2 \(hex(l2TableOffset(l1[Int(l1i)]))) unreadable: \(err)") }
        guard let e = l2Entry(forGuest: offset) else { return InspectMapping(host: nil, "L1[\(l1i)] empty: unallocated") }
        let path = "L1[\(l1i)] -> L2 \(hex(l2TableOffset(l1[Int(l1i)])))[\(l2i)] = \(hex(e.entry))"
        switch type(of: e) {
        case .compressed: return InspectMapping(host: nil, path + ": compressed at \(hex(compressedExtent(e).offset))")
        case .zeroAlloc, .zeroPlain: return InspectMapping(host: nil, path + ": zero cluster")
        case .unallocatedAlloc, .unallocatedPlain: return InspectMapping(host: nil, path + ": unallocated")
        case .invalid: return InspectMapping(host: nil, path + ": invalid subcluster bitmap")
        case .normal:
            let h = e.hostOffset + offset % cs
            return InspectMapping(host: h, path + " -> host \(hex(h))")
        }
    }

    /// Reads host bytes.
    public func readHost(at offset: UInt64, count: Int) -> [UInt8] {
        (try? host?.readBytes(at: offset, count: count)) ?? []
    }
}

import BlockCore
import Foundation

/// The QCOW2 inspector: L1/L2, refcounts, snapshots and the host layout from ``Qcow2Layout``.
///
/// The usage scan (who uses each host cluster) runs on first need and again after
/// ``reload()``; the header and L1 table are read on open, L2 tables on demand.
public final class Qcow2Inspector: LayoutInspector {
    /// The decoded metadata (replaced on reload).
    public private(set) var layout: Qcow2Layout
    private var usageCache: Qcow2Usage?

    /// Decodes the image at `path`; with `live` (the open disk's metadata) tables come from
    /// memory, so allocations show before they are flushed.
    public init(path: String, live: QcowMetadata? = nil) throws(BlockError) {
        layout = try Qcow2Layout(path: path, live: live)
    }

    /// "qcow2".
    public var formatName: String { "qcow2" }
    /// Guest size.
    public var guestSize: UInt64 { layout.header.size }
    /// Host file size.
    public var hostSize: UInt64 { layout.fileSize }

    /// Who uses each host cluster (computed lazily, cached until reload).
    public var usage: Qcow2Usage {
        if let u = usageCache { return u }
        let u = layout.usage()
        usageCache = u
        return u
    }

    /// Rereads the header and tables.
    public func reload() {
        if let l = try? Qcow2Layout(path: layout.path, live: layout.live) { layout = l }
        usageCache = nil
    }

    /// Header fields, features, extensions, backing chain and snapshots.
    public func overviewSections() -> [InfoSection] {
        let h = layout.header
        var header: [(String, String, Role)] = [
            ("version", "\(h.version)", .normal),
            ("cluster size", "\(layout.clusterSize) (cluster_bits \(h.clusterBits))", .normal),
            ("L1 table", "\(h.l1Size) entries at \(hex(h.l1TableOffset))", .l1),
            ("refcount table", "\(h.refcountTableClusters) cluster(s) at \(hex(h.refcountTableOffset)), \(layout.refcountBits)-bit refcounts", .refcount),
            ("L2 entries", "\(layout.l2Entries) per table\(layout.extendedL2 ? " (extended L2, 32 subclusters)" : "")", .l2),
            ("compression", h.compressionType == 1 ? "zstd" : "zlib", .normal),
            ("encryption", ["none", "aes", "luks"][Int(min(h.cryptMethod, 2))], .normal),
        ]
        header.append(("features", layout.featureNames.isEmpty ? "none" : layout.featureNames.joined(separator: ", "),
                       layout.featureNames.contains("corrupt") ? .error : layout.featureNames.contains("dirty") ? .warning : .normal))
        var sections = [InfoSection("QCOW2 header", header)]
        let ext = h.extensions.map { ("\(hex(UInt64($0.type)))", "\($0.name) (\($0.length) bytes)", Role.normal) }
        sections.append(InfoSection("Header extensions", ext.isEmpty ? [("-", "none", .dim)] : ext))
        var chain: [(String, String, Role)] = []
        if let b = h.backingFile {
            chain.append(("backing file", b, .backing))
            chain.append(("backing format", h.backingFormat ?? "(probed)", .backing))
        } else {
            chain.append(("backing file", "none", .dim))
        }
        sections.append(InfoSection("Backing chain", chain))
        let snaps = layout.snapshots.map { s -> (String, String, Role) in
            let date = Date(timeIntervalSince1970: TimeInterval(s.date))
            return ("\(s.id) \(s.name)", "L1 \(s.l1Size) entries at \(hex(s.l1TableOffset)), vm state \(s.vmStateSize), \(date)", .snapshot)
        }
        sections.append(InfoSection("Snapshots (\(layout.snapshots.count))", snaps.isEmpty ? [("-", "none", .dim)] : snaps))
        let u = usage
        var counts = [HostUse: Int]()
        for x in u.uses { counts[x, default: 0] += 1 }
        let leaks = u.leaked.count, over = u.overReferenced.count
        sections.append(InfoSection("Host clusters (\(u.uses.count))", [
            ("data", "\(counts[.data, default: 0]) data, \(counts[.compressed, default: 0]) compressed", .data),
            ("metadata", "\(counts[.l2, default: 0]) L2, \(counts[.refcountBlock, default: 0]) refcount blocks, \(counts[.snapshot, default: 0]) snapshot", .l2),
            ("free", "\(counts[.free, default: 0])", .free),
            ("check", leaks == 0 && over == 0 ? "clean: every refcount matches its references" : "\(leaks) leaked, \(over) over-referenced clusters", leaks + over == 0 ? .ok : .error),
        ]))
        return sections
    }

    /// Guest cluster state (the dominant one when a cell spans several clusters).
    public func guestCell(_ start: UInt64, _ length: UInt64) -> (Role, String) {
        let cs = layout.clusterSize
        let first = start / cs, last = (start + max(length, 1) - 1) / cs
        let rank: [Role: Int] = [.free: 0, .backing: 1, .zero: 2, .data: 3, .compressed: 4]
        var best: (Role, String) = (.free, "unallocated")
        var c = first
        var probes = 0
        while c <= last && probes < 64 {
            // Skip whole L2 tables whose L1 entry is empty.
            let per = UInt64(layout.l2Entries)
            let l1i = Int(c / per)
            if l1i >= layout.l1.count || Qcow2Layout.l2Offset(layout.l1[l1i]) == 0 {
                if best.0 == .free && layout.header.backingFile != nil { best = (.backing, "unallocated: read from backing file") }
                c = (c / per + 1) * per
                continue
            }
            let s = layout.guestState(cluster: c)
            if rank[s.role, default: 0] > rank[best.0, default: 0] { best = s }
            c += max(1, (last - first + 1) / 64)
            probes += 1
        }
        return best
    }

    /// Host cluster use.
    public func hostCell(_ start: UInt64, _ length: UInt64) -> (Role, String) {
        let cs = layout.clusterSize
        let u = usage
        let first = Int(start / cs), last = Int((start + max(length, 1) - 1) / cs)
        guard first < u.uses.count else { return (.free, "beyond end of file") }
        let rank: [HostUse: Int] = [.free: 0, .data: 1, .compressed: 2, .snapshot: 3, .l2: 4, .refcountBlock: 5, .refcountTable: 6, .l1: 7, .header: 8, .leaked: 9]
        var best = HostUse.free
        var bestIndex = first
        for i in first...min(last, u.uses.count - 1) where rank[u.uses[i], default: 0] > rank[best, default: 0] {
            best = u.uses[i]; bestIndex = i
        }
        let rc = u.stored[bestIndex].map { "\($0)" } ?? "?"
        return (best.role, "cluster \(bestIndex): \(best.name), refcount \(rc)")
    }

    /// Guest offset to host offset through L1/L2.
    public func mapGuest(_ offset: UInt64) -> (host: UInt64?, text: String) {
        let cs = layout.clusterSize
        let cluster = offset / cs
        let l1i = cluster / UInt64(layout.l2Entries), l2i = cluster % UInt64(layout.l2Entries)
        guard let e = layout.l2Entry(forGuest: offset) else {
            return (nil, "L1[\(l1i)] empty: unallocated")
        }
        let path = "L1[\(l1i)] -> L2 \(hex(Qcow2Layout.l2Offset(layout.l1[Int(l1i)])))[\(l2i)] = \(hex(e.raw))"
        if e.compressed { return (nil, path + ": compressed at \(hex(layout.compressedExtent(e).offset))") }
        if e.zero { return (nil, path + ": zero cluster") }
        if e.unallocated { return (nil, path + ": unallocated") }
        let host = layout.dataOffset(e) + offset % cs
        return (host, path + " -> host \(hex(host))")
    }

    /// Decodes the structure at a host offset.
    public func describeHost(_ offset: UInt64) -> String { layout.describeHost(offset, usage: usage) }

    /// Reads host bytes.
    public func readHost(at offset: UInt64, count: Int) -> [UInt8] { layout.readHost(at: offset, count: count) }
}

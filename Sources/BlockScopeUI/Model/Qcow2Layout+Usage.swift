import BlockCore

/// What a host cluster of a QCOW2 file holds.
public enum HostUse: UInt8, Sendable, CaseIterable {
    /// Not referenced and refcount 0.
    case free
    /// The header (and its extensions).
    case header
    /// The active L1 table.
    case l1
    /// An L2 table.
    case l2
    /// The refcount table.
    case refcountTable
    /// A refcount block.
    case refcountBlock
    /// A guest data cluster.
    case data
    /// Compressed guest data.
    case compressed
    /// The snapshot table or a snapshot's L1 table.
    case snapshot
    /// Refcount above zero but referenced by nothing (leaked).
    case leaked

    /// The colour role the map draws this use in.
    public var role: Role {
        switch self {
        case .free: return .free
        case .header: return .header
        case .l1: return .l1
        case .l2: return .l2
        case .refcountTable, .refcountBlock: return .refcount
        case .data: return .data
        case .compressed: return .compressed
        case .snapshot: return .snapshot
        case .leaked: return .error
        }
    }

    /// A short name for legends and the cursor line.
    public var name: String {
        switch self {
        case .refcountTable: return "refcount table"
        case .refcountBlock: return "refcount block"
        case .l1: return "L1 table"
        case .l2: return "L2 table"
        default: return "\(self)"
        }
    }
}

/// Who uses every host cluster, with expected and stored refcounts (a `qemu-img check` in small).
public struct Qcow2Usage: Sendable {
    /// Use per host cluster.
    public var uses: [HostUse]
    /// References found per host cluster (what the refcount should be).
    public var expected: [UInt32]
    /// Refcount stored per host cluster (nil where the refcount block is missing).
    public var stored: [UInt64?]
    /// Clusters whose stored refcount exceeds the references (leaks).
    public var leaked: [Int] { stored.indices.filter { (stored[$0] ?? 0) > UInt64(expected[$0]) } }
    /// Clusters referenced more often than their refcount says (corruption).
    public var overReferenced: [Int] { stored.indices.filter { UInt64(expected[$0]) > (stored[$0] ?? 0) } }
}

extension Qcow2Layout {
    /// Most host clusters the usage scan walks (larger files are summarised by their first part).
    public static let maxScannedClusters = 1 << 22

    /// Walks every table and returns who uses each host cluster, with refcounts.
    public func usage() -> Qcow2Usage {
        let cs = clusterSize
        let n = Int(min((fileSize + cs - 1) / cs, UInt64(Qcow2Layout.maxScannedClusters)))
        var uses = [HostUse](repeating: .free, count: n)
        var expected = [UInt32](repeating: 0, count: n)
        func mark(_ offset: UInt64, _ length: UInt64, _ use: HostUse, countOnce: Bool = true) {
            guard length > 0 else { return }
            var c = offset / cs
            let last = (offset + length - 1) / cs
            while c <= last && c < UInt64(n) {
                let i = Int(c)
                if uses[i] == .free || use != .data { uses[i] = use }
                expected[i] &+= 1
                c += 1
            }
        }
        mark(0, cs, .header)
        mark(header.l1TableOffset, UInt64(header.l1Size) * 8, .l1)
        mark(header.refcountTableOffset, UInt64(header.refcountTableClusters) * cs, .refcountTable)
        for e in refcountTable where e & ~UInt64(0x1ff) != 0 { mark(e & ~UInt64(0x1ff), cs, .refcountBlock) }
        if header.snapshotCount > 0 { mark(header.snapshotsOffset, snapshotTableSize, .snapshot) }
        var tables: [[UInt64]] = [l1]
        for s in snapshots {
            mark(s.l1TableOffset, UInt64(s.l1Size) * 8, .snapshot)
            let b = readHost(at: s.l1TableOffset, count: Int(min(s.l1Size, 1 << 24)) * 8)
            tables.append((0..<(b.count / 8)).map { be64(b, $0 * 8) })
        }
        // Only the entries that map the guest size count; an L2 offset that is unaligned or
        // past the end of the file is corruption, not a table to walk.
        let needed = Int((header.size + cs * UInt64(l2Entries) - 1) / (cs * UInt64(l2Entries)))
        for t in tables {
            for e in t.prefix(needed) {
                let l2o = Qcow2Layout.l2Offset(e)
                guard l2o != 0, l2o % cs == 0, l2o + cs <= fileSize else { continue }
                mark(l2o, cs, .l2)
                guard let l2 = l2Table(at: l2o) else { continue }
                for d in l2 {
                    if d.compressed {
                        let (o, len) = compressedExtent(d)
                        mark(o, len, .compressed)
                    } else if !d.unallocated, dataOffset(d) != 0 {
                        mark(dataOffset(d), cs, .data)
                    }
                }
            }
        }
        var stored = [UInt64?](repeating: nil, count: n)
        for i in 0..<n {
            stored[i] = refcount(ofClusterAt: UInt64(i) * cs)
            if uses[i] == .free, let r = stored[i], r > 0 { uses[i] = .leaked }
        }
        return Qcow2Usage(uses: uses, expected: expected, stored: stored)
    }

    /// The L2 entry that maps a guest offset (nil when its L1 entry is empty or out of range).
    public func l2Entry(forGuest offset: UInt64) -> L2Entry? {
        let cs = clusterSize
        let cluster = offset / cs
        let l1i = Int(cluster / UInt64(l2Entries))
        guard l1i < l1.count, let t = l2Table(at: Qcow2Layout.l2Offset(l1[l1i])) else { return nil }
        return t[Int(cluster % UInt64(l2Entries))]
    }

    /// How a guest cluster reads: the colour role and a description for the map cursor.
    public func guestState(cluster: UInt64) -> (role: Role, text: String) {
        let backing = header.backingFile != nil
        guard let e = l2Entry(forGuest: cluster * clusterSize) else {
            return backing ? (.backing, "unallocated: read from backing file") : (.free, "unallocated (reads zeroes)")
        }
        if e.compressed {
            let (o, len) = compressedExtent(e)
            return (.compressed, "compressed, \(len) bytes at host \(hex(o))")
        }
        if e.zero { return (.zero, "zero cluster" + (dataOffset(e) != 0 ? " (preallocated at \(hex(dataOffset(e))))" : "")) }
        if e.unallocated { return backing ? (.backing, "unallocated: read from backing file") : (.free, "unallocated (reads zeroes)") }
        return (.data, "data at host \(hex(dataOffset(e)))\(e.copied ? " COPIED" : "")")
    }

    /// Names of the set incompatible, compatible and autoclear feature bits.
    public var featureNames: [String] {
        var out: [String] = []
        let inc = ["dirty", "corrupt", "external data file", "compression type", "extended L2"]
        for (i, n) in inc.enumerated() where header.incompatible & (1 << UInt64(i)) != 0 { out.append(n) }
        if header.compatible & 1 != 0 { out.append("lazy refcounts") }
        if header.autoclear & 1 != 0 { out.append("bitmaps") }
        if header.autoclear & 2 != 0 { out.append("raw external data") }
        return out
    }

    /// Decodes the structure at a host offset, for the hex view ("L2[3] of table 0x30000: ...").
    public func describeHost(_ offset: UInt64, usage: Qcow2Usage?) -> String {
        let cs = clusterSize
        if offset < 112 {
            let fields: [(Int, Int, String)] = [(0, 4, "magic"), (4, 4, "version"), (8, 8, "backing_file_offset"), (16, 4, "backing_file_size"),
                (20, 4, "cluster_bits"), (24, 8, "size"), (32, 4, "crypt_method"), (36, 4, "l1_size"), (40, 8, "l1_table_offset"),
                (48, 8, "refcount_table_offset"), (56, 4, "refcount_table_clusters"), (60, 4, "nb_snapshots"), (64, 8, "snapshots_offset"),
                (72, 8, "incompatible_features"), (80, 8, "compatible_features"), (88, 8, "autoclear_features"), (96, 4, "refcount_order"),
                (100, 4, "header_length"), (104, 1, "compression_type")]
            if let f = fields.last(where: { UInt64($0.0) <= offset }) {
                let b = readHost(at: UInt64(f.0), count: f.1)
                let v = b.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                return "header field \(f.2) @\(f.0) = \(hex(v)) (\(v))"
            }
        }
        if offset >= header.l1TableOffset && offset < header.l1TableOffset + UInt64(header.l1Size) * 8 {
            let i = (offset - header.l1TableOffset) / 8
            guard Int(i) < l1.count else { return "L1[\(i)] beyond the end of the file" }
            let e = l1[Int(i)]
            return "L1[\(i)] = \(hex(e)): L2 table at \(hex(Qcow2Layout.l2Offset(e)))\(e >> 63 != 0 ? " COPIED" : "")"
        }
        let c = Int(offset / cs)
        if let usage, c < usage.uses.count {
            switch usage.uses[c] {
            case .l2:
                let base = UInt64(c) * cs
                let width: UInt64 = extendedL2 ? 16 : 8
                let i = Int((offset - base) / width)
                if let t = l2Table(at: base), i < t.count {
                    let e = t[i]
                    let kind = e.compressed ? "compressed" : e.zero ? "zero" : e.unallocated ? "unallocated" : "data at \(hex(dataOffset(e)))"
                    return "L2[\(i)] of table \(hex(base)) = \(hex(e.raw)): \(kind)\(e.copied ? " COPIED" : "")"
                }
            case .refcountTable:
                let i = (offset - header.refcountTableOffset) / 8
                return "refcount table[\(i)] = refcount block at \(hex(Int(i) < refcountTable.count ? refcountTable[Int(i)] : 0))"
            case let u:
                let rc = usage.stored[c].map { "\($0)" } ?? "?"
                return "cluster \(c) (\(u.name)), refcount \(rc), referenced \(usage.expected[c])x"
            }
        }
        return "host offset \(hex(offset)) beyond the scanned clusters"
    }
}

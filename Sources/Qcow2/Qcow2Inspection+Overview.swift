import BlockIO
import BlockInspect
import Foundation

extension Qcow2Inspection {
    /// Header fields, features, extensions, backing chain, snapshots, bitmaps, host clusters
    /// and what could not be read; an unreadable part says so with the parser's reason.
    public func overviewSections() -> [InspectSection] {
        let st = structure
        var sections: [InspectSection] = []
        if !st.problems.isEmpty {
            sections.append(InspectSection("Unreadable", st.problems.map { InspectRow("at \(hex($0.offset))", $0.label, .error) }))
        }
        guard let h = st.header else { return sections }
        let features = h.featureNames(st.extensions)
        let header: [InspectRow] = [
            InspectRow("version", "\(h.version)"),
            InspectRow("cluster size", "\(h.clusterSize) (cluster_bits \(h.clusterBits))"),
            InspectRow("L1 table", "\(h.l1Size) entries at \(hex(h.l1TableOffset))", .table),
            InspectRow("refcount table", "\(h.refcountTableClusters) cluster(s) at \(hex(h.refcountTableOffset)), \(h.refcountBits)-bit refcounts", .counts),
            InspectRow("L2 entries", "\(h.l2Entries) per table\(h.extendedL2 ? " (extended L2, 32 subclusters)" : "")", .subtable),
            InspectRow("compression", h.compressionName),
            InspectRow("encryption", ["none", "aes", "luks"][Int(min(h.cryptMethod, 2))]),
            InspectRow("features", features.isEmpty ? "none" : features.joined(separator: ", "),
                       features.contains("corrupt") ? .error : features.contains("dirty") ? .warning : .normal),
        ]
        sections.append(InspectSection("QCOW2 header", header))
        if let ext = st.extensions {
            let rows = ext.seen.map { InspectRow("\(hex(UInt64($0.type)))", "\(Qcow2Extensions.name(of: $0.type)) (\($0.length) bytes)") }
            sections.append(InspectSection("Header extensions", rows.isEmpty ? [InspectRow("-", "none", .dim)] : rows))
        }
        var chain: [InspectRow] = []
        if let b = st.backingFile {
            chain.append(InspectRow("backing file", b, .backing))
            chain.append(InspectRow("backing format", st.extensions?.backingFormat ?? "(probed)", .backing))
        } else {
            chain.append(InspectRow("backing file", h.backingFileOffset != 0 ? "unreadable name at \(hex(h.backingFileOffset))" : "none", h.backingFileOffset != 0 ? .error : .dim))
        }
        sections.append(InspectSection("Backing chain", chain))
        if let snaps = st.snapshots {
            let rows = snaps.map { s -> InspectRow in
                let date = Date(timeIntervalSince1970: TimeInterval(s.dateSeconds))
                return InspectRow("\(s.id) \(s.name)", "L1 \(s.l1Size) entries at \(hex(s.l1TableOffset)), vm state \(s.vmStateSize), \(date)", .snapshot)
            }
            sections.append(InspectSection("Snapshots (\(snaps.count))", rows.isEmpty ? [InspectRow("-", "none", .dim)] : rows))
        }
        let bms = st.bitmaps()
        if !bms.isEmpty {
            sections.append(InspectSection("Bitmaps (\(bms.count))", bms.map { InspectRow($0.name, "table \($0.tableSize) entries at \(hex($0.tableOffset)), granularity \(1 << Int($0.granularityBits))", .snapshot) }))
        }
        guard let u = usage else {
            sections.append(InspectSection("Host clusters", [InspectRow("walk", usageStatus ?? "", .dim)]))
            return sections
        }
        let c = u.counts()
        let r = u.report ?? CheckReport()
        let meta = (c[.snapshotTable] ?? 0) + (c[.snapshotL1Table] ?? 0)
        var rows: [InspectRow] = [
            InspectRow("data", "\(c[.data] ?? 0) data, \(c[.compressed] ?? 0) compressed", .data),
            InspectRow("metadata", "\(c[.l2Table] ?? 0) L2, \(c[.refcountBlock] ?? 0) refcount blocks, \(meta) snapshot, \((c[.bitmapDirectory] ?? 0) + (c[.bitmapTable] ?? 0) + (c[.bitmapData] ?? 0)) bitmap", .subtable),
            InspectRow("free", "\(c[.free] ?? 0)", .free),
            InspectRow("check", r.leaks + r.corruptions + r.releasesPending == 0 ? "clean: every refcount matches its references" : "\(r.leaks) leaked, \(r.corruptions) corruptions" + (r.releasesPending == 0 ? "" : ", \(r.releasesPending) release\(r.releasesPending == 1 ? "" : "s") pending (next flush)") + " (as check counts them)", r.leaks + r.corruptions == 0 ? (r.releasesPending == 0 ? .ok : .warning) : .error),
        ]
        if let s = usageStatus { rows.append(InspectRow("walk", s, .dim)) }
        sections.append(InspectSection("Host clusters (\(u.count))", rows))
        return sections
    }

    /// What each tone means on a QCOW2 map.
    public var legend: [InspectLegendItem] {
        [InspectLegendItem(.header, "header"), InspectLegendItem(.table, "L1"), InspectLegendItem(.subtable, "L2"),
         InspectLegendItem(.counts, "refcount"), InspectLegendItem(.data, "data"), InspectLegendItem(.compressed, "compressed"),
         InspectLegendItem(.zero, "zero"), InspectLegendItem(.backing, "backing"), InspectLegendItem(.snapshot, "snapshot"),
         InspectLegendItem(.warning, InspectWords.releasePending + " / refs unknown"),
         InspectLegendItem(.error, "leaked/corrupt/unreadable"), InspectLegendItem(.free, "free")]
    }

    /// Decodes the structure at a host offset ("L2[3] of table 0x30000: ..."), from the
    /// structure model's regions, tables and use map.
    public func describeHost(_ offset: UInt64) -> String {
        guard let h = structure.header else { return structure.problems.first?.label ?? "unreadable" }
        let cs = h.clusterSize
        if offset < cs {
            return "header cluster: QCOW2 v\(h.version), cluster_bits \(h.clusterBits), size \(h.size), L1 at \(hex(h.l1TableOffset)), refcount table at \(hex(h.refcountTableOffset))"
        }
        if offset >= h.l1TableOffset && offset < h.l1TableOffset + UInt64(h.l1Size) * 8 {
            let i = Int((offset - h.l1TableOffset) / 8)
            guard i < l1.count else { return "L1[\(i)] unreadable" }
            return "L1[\(i)] = \(hex(l1[i])): L2 table at \(hex(l2TableOffset(l1[i])))\(l1[i] & Qcow2Entry.copied != 0 ? " COPIED" : "")"
        }
        if offset >= h.refcountTableOffset && offset < h.refcountTableOffset + h.refcountTableBytes {
            let i = Int((offset - h.refcountTableOffset) / 8)
            return "refcount table[\(i)] = refcount block at \(hex(i < refcountTable.count ? refcountTable[i] : 0))"
        }
        let c = Int(offset / cs)
        guard let u = usage else { return "cluster \(c): \(usageStatus ?? "")" }
        guard c < u.count else { return "host offset \(hex(offset)) beyond the end of the file" }
        let kind = u.kind(c)
        if kind == .l2Table, let w = try? structure.metadata?.l2TableWords(at: UInt64(c) * cs) {
            let width: UInt64 = h.extendedL2 ? 16 : 8
            let i = Int((offset - UInt64(c) * cs) / width)
            let e = h.extendedL2 ? Qcow2L2Entry(entry: w[2 * i], bitmap: w[2 * i + 1]) : Qcow2L2Entry(entry: w[i], bitmap: 0)
            let t = type(of: e)
            return "L2[\(i)] of table \(hex(UInt64(c) * cs)) = \(hex(e.entry)): \(t == .normal ? "data at \(hex(e.hostOffset))" : t.rawValue)\(e.entry & Qcow2Entry.copied != 0 ? " COPIED" : "")"
        }
        let rc = refcount(ofClusterAt: UInt64(c) * cs).map { "\($0)" } ?? "?"
        return "cluster \(c) (\(kind.name)), refcount \(rc), referenced \(u.expectedRefcount(c) ?? 0)x"
    }
}

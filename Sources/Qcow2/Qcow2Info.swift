import BlockIO
import BlockInspect

/// `info` for QCOW2: qemu-img info's keys, plus a separate `blockscope` object.
extension Qcow2Disk {
    /// Feature names QEMU uses when an image carries no feature-name table.
    static let builtinFeatureNames: [UInt8: [Int: String]] = [
        0: [0: "dirty bit", 1: "corrupt bit", 2: "external data file", 3: "compression type", 4: "extended L2 entries"],
        1: [0: "lazy refcounts"],
        2: [0: "bitmaps", 1: "raw external data"],
    ]

    /// Names of the set bits of feature word `type` (from the image's table, else QEMU's names).
    func featureNames(_ word: UInt64, type: UInt8) -> [JSONValue] {
        (0..<64).filter { word & (1 << UInt64($0)) != 0 }.map { bit in
            if let f = metadata.extensions.featureNames.first(where: { $0.type == type && Int($0.bit) == bit }) { return .string(f.name) }
            return .string(Qcow2Disk.builtinFeatureNames[type]?[bit] ?? "bit \(bit)")
        }
    }

    /// The persistent bitmaps listed in the bitmap directory (empty when unreadable).
    func bitmaps() -> [Qcow2Bitmap] {
        guard let b = metadata.extensions.bitmaps, b.count > 0, b.directorySize <= 64 << 20,
              b.directoryOffset + b.directorySize <= metadata.fileSize,
              let dir = try? file.readBytes(at: b.directoryOffset, count: Int(b.directorySize)) else { return [] }
        return (try? Qcow2Bitmap.parseDirectory(dir, count: b.count, path: path)) ?? []
    }

    /// qemu-img info's keys (virtual-size, cluster-size, actual-size, dirty-flag, snapshots,
    /// backing names, format-specific.data) and a `blockscope` object with the L1 size, the L2
    /// cache, feature names and extensions.
    public func info() throws(BlockError) -> JSONValue {
        let h = header
        var kv: [(String, JSONValue)] = []
        if !metadata.snapshots.isEmpty { kv.append(("snapshots", .array(metadata.snapshots.map(\.json)))) }
        if let bf = metadata.extensions.backingFormat { kv.append(("backing-filename-format", .string(bf))) }
        kv.append(("virtual-size", .size(logicalSize)))
        kv.append(("filename", .string(path)))
        kv.append(("cluster-size", .size(h.clusterSize)))
        kv.append(("format", .string("qcow2")))
        kv.append(("actual-size", .size(try physicalSize())))
        if h.cryptMethod != 0 { kv.append(("encrypted", .bool(true))) }
        var data: [(String, JSONValue)] = [("compat", .string(h.version == 2 ? "0.10" : "1.1")),
                                           ("compression-type", .string(h.compressionName))]
        if h.version == 3 {
            data.append(("lazy-refcounts", .bool(h.lazyRefcounts)))
            let bms = bitmaps()
            if !bms.isEmpty {
                data.append(("bitmaps", .array(bms.map { b in
                    .object([("flags", .array(b.flagNames.map { .string($0) })), ("name", .string(b.name)),
                             ("granularity", .size(1 << UInt64(b.granularityBits)))])
                })))
            }
        }
        data.append(("refcount-bits", .size(UInt64(h.refcountBits))))
        if let df = metadata.extensions.dataFile {
            data.append(("data-file", .string(df)))
            data.append(("data-file-raw", .bool(h.autoclearFeatures & Qcow2Feature.rawExternalData != 0)))
        }
        if h.cryptMethod != 0 { data.append(("encrypt", .object([("format", .string(h.cryptMethod == 1 ? "aes" : "luks"))]))) }
        if h.version == 3 {
            data.append(("corrupt", .bool(h.isCorrupt)))
            data.append(("extended-l2", .bool(h.extendedL2)))
        }
        kv.append(("format-specific", .object([("type", .string("qcow2")), ("data", .object(data))])))
        if let backingName {
            kv.append(("full-backing-filename", .string(backingPath ?? backingName)))
            kv.append(("backing-filename", .string(backingName)))
        }
        kv.append(("dirty-flag", .bool(h.isDirty)))
        kv.append(("blockscope", blockscopeInfo()))
        return .object(kv)
    }

    /// blockscope's own keys: layout, cache and features QEMU does not print.
    func blockscopeInfo() -> JSONValue {
        let h = header
        let c = metadata.cacheStats
        return .object([
            ("version", .size(UInt64(h.version))),
            ("header-length", .size(UInt64(h.version == 2 ? 72 : h.headerLength))),
            ("cluster-bits", .size(UInt64(h.clusterBits))),
            ("l1-size", .size(UInt64(h.l1Size))),
            ("l1-table-offset", .size(h.l1TableOffset)),
            ("l2-entries", .size(h.l2Entries)),
            ("l2-entry-bytes", .size(h.l2EntryBytes)),
            ("subclusters", .size(h.subclustersPerCluster)),
            ("refcount-table-offset", .size(h.refcountTableOffset)),
            ("refcount-table-clusters", .size(UInt64(h.refcountTableClusters))),
            ("refcount-block-entries", .size(Qcow2Refcounts.entriesPerBlock(clusterBits: h.clusterBits, refcountOrder: h.refcountOrder))),
            ("snapshot-table-offset", .size(h.snapshotsOffset)),
            ("view", .string(metadata.snapshot.map { "snapshot " + $0.name } ?? "active")),
            ("l2-cache", .object([("capacity", .size(UInt64(c.capacity))), ("entries", .size(UInt64(c.entries))),
                                  ("hits", .size(c.hits)), ("misses", .size(c.misses))])),
            ("incompatible-features", .array(featureNames(h.incompatibleFeatures, type: 0))),
            ("compatible-features", .array(featureNames(h.compatibleFeatures, type: 1))),
            ("autoclear-features", .array(featureNames(h.autoclearFeatures, type: 2))),
            ("feature-table", .array(metadata.extensions.featureNames.map { f in
                .object([("type", .size(UInt64(f.type))), ("bit", .size(UInt64(f.bit))), ("name", .string(f.name))])
            })),
            ("extensions", .array(metadata.extensions.seen.map { e in
                .object([("type", .string(hex(UInt64(e.type)))), ("name", .string(Qcow2Extensions.name(of: e.type))), ("length", .size(UInt64(e.length)))])
            })),
            ("encryption", .string(["none", "aes", "luks"][Int(min(h.cryptMethod, 2))])),
        ])
    }
}

import BlockIO
import BlockInspect

/// What `create -f qcow2` makes: qemu-img create's qcow2 options.
public struct Qcow2CreateOptions: Sendable, Equatable {
    /// Cluster size in bytes: a power of two from 512 B to 2 MiB (default 64 KiB).
    public var clusterSize: UInt64 = 65536
    /// Refcount width in bits: 1, 2, 4, 8, 16, 32 or 64 (default 16).
    public var refcountBits: Int = 16
    /// 128-bit L2 entries with 32 subclusters (needs clusters of 16 KiB or more).
    public var extendedL2 = false
    /// zstd instead of zlib for compressed clusters (needs compat 1.1).
    public var zstd = false
    /// Lazy refcounts (compatible bit 0; needs compat 1.1).
    public var lazyRefcounts = false
    /// "1.1" (version 3, the default) or "0.10" (version 2).
    public var compat = "1.1"
    /// Backing file name as stored in the header (relative names resolve against the image's directory).
    public var backingFile: String? = nil
    /// Backing file format, stored in the backing-format header extension.
    public var backingFormat: String? = nil

    /// Creates the defaults qemu-img uses.
    public init() {}

    /// Parses qemu-img's `-o` keys: cluster_size, refcount_bits, extended_l2, compression_type,
    /// lazy_refcounts, compat, backing_file, backing_fmt. Unknown keys are refused by name.
    public init(_ kv: [String: String]) throws(BlockError) {
        func flag(_ k: String) throws(BlockError) -> Bool? {
            guard let v = kv[k] else { return nil }
            switch v.lowercased() {
            case "on", "true", "yes", "1": return true
            case "off", "false", "no", "0": return false
            default: throw BlockError(.invalidArgument, "option \(k)=\(v): expected on or off", operation: "create")
            }
        }
        for k in kv.keys where !["cluster_size", "refcount_bits", "extended_l2", "compression_type", "lazy_refcounts", "compat", "backing_file", "backing_fmt"].contains(k) {
            throw BlockError(.invalidArgument, "qcow2 does not support option '\(k)' (supported: cluster_size, refcount_bits, extended_l2, compression_type, lazy_refcounts, compat, backing_file, backing_fmt)", operation: "create")
        }
        if let v = kv["cluster_size"] {
            guard let n = parseByteSize(v) else { throw BlockError(.invalidArgument, "option cluster_size=\(v) is not a size", operation: "create") }
            clusterSize = n
        }
        if let v = kv["refcount_bits"] {
            guard let n = Int(v) else { throw BlockError(.invalidArgument, "option refcount_bits=\(v) is not a number", operation: "create") }
            refcountBits = n
        }
        if let v = kv["compat"] { compat = v == "v3" ? "1.1" : (v == "v2" ? "0.10" : v) }
        if let v = kv["compression_type"] {
            switch v {
            case "zlib": zstd = false
            case "zstd": zstd = true
            default: throw BlockError(.invalidArgument, "option compression_type=\(v): expected zlib or zstd", operation: "create")
            }
        }
        extendedL2 = try flag("extended_l2") ?? false
        lazyRefcounts = try flag("lazy_refcounts") ?? false
        backingFile = kv["backing_file"]
        backingFormat = kv["backing_fmt"]
    }

    /// Refuses the combinations qemu-img refuses, with its reasons.
    func validate() throws(BlockError) {
        func bad(_ m: String) -> BlockError { BlockError(.invalidArgument, m, operation: "create") }
        guard clusterSize >= 512, clusterSize <= 2 << 20, clusterSize & (clusterSize - 1) == 0 else {
            throw bad("cluster_size must be a power of two between 512 and 2M (got \(clusterSize))")
        }
        guard [1, 2, 4, 8, 16, 32, 64].contains(refcountBits) else {
            throw bad("refcount_bits must be a power of two up to 64 (got \(refcountBits))")
        }
        guard compat == "1.1" || compat == "0.10" else { throw bad("compat must be 1.1 or 0.10 (got \(compat))") }
        if compat == "0.10" {
            if refcountBits != 16 { throw bad("compat=0.10 supports only refcount_bits=16") }
            if lazyRefcounts { throw bad("lazy refcounts need compat=1.1") }
            if zstd { throw bad("compression_type=zstd needs compat=1.1") }
            if extendedL2 { throw bad("extended L2 needs compat=1.1") }
        }
        if extendedL2 && clusterSize < 16384 { throw bad("extended L2 needs a cluster size of at least 16 KiB") }
    }
}

extension Qcow2Format {
    /// Creates an empty QCOW2 image laid out as qemu-img lays it out: header cluster (with
    /// the feature-name table when it fits), refcount table, refcount blocks, L1 table.
    ///
    /// Every metadata cluster has refcount 1 and the refcount table covers them all, so
    /// `qemu-img check` finds the new image clean. An existing file is truncated.
    public static func create(path: String, size: UInt64, options o: Qcow2CreateOptions) throws(BlockError) {
        try o.validate()
        let cs = o.clusterSize
        let clusterBits = UInt32(cs.trailingZeroBitCount)
        let l2Entries = cs / (o.extendedL2 ? 16 : 8)
        let (spanPerL1, ov) = cs.multipliedReportingOverflow(by: l2Entries)
        if ov { throw BlockError(.overflow, "cluster size too large", path: path, operation: "create") }
        let l1Entries = (size + spanPerL1 - 1) / spanPerL1
        if l1Entries * 8 > 32 << 20 { throw BlockError(.overflow, "size \(size) needs an L1 table over 32 MiB; use larger clusters", path: path, operation: "create") }
        let l1Clusters = max(1, (l1Entries * 8 + cs - 1) / cs)
        let refsPerBlock = cs * 8 / UInt64(o.refcountBits)
        let v3 = o.compat == "1.1"

        // Fixpoint: refcount blocks and table must cover every metadata cluster, themselves included.
        var rtClusters: UInt64 = 1, rbCount: UInt64 = 1
        while true {
            let total = 1 + rtClusters + rbCount + l1Clusters
            let needRB = (total + refsPerBlock - 1) / refsPerBlock
            let needRT = max(1, (needRB * 8 + cs - 1) / cs)
            if needRB == rbCount && needRT == rtClusters { break }
            rbCount = needRB; rtClusters = needRT
        }
        let rtOffset = cs
        let rbOffset = rtOffset + rtClusters * cs
        let l1Offset = rbOffset + rbCount * cs
        let total = 1 + rtClusters + rbCount + l1Clusters
        let fileEnd = l1Offset + l1Clusters * cs

        // Header cluster.
        var h = [UInt8](repeating: 0, count: Int(cs))
        func put(_ v: UInt64, _ at: Int, _ w: Int) { storeBE(v, into: &h, at: at, width: w) }
        put(UInt64(Qcow2Header.magic), 0, 4)
        put(v3 ? 3 : 2, 4, 4)
        put(UInt64(clusterBits), 20, 4)
        put(size, 24, 8)
        put(l1Entries, 36, 4)
        put(l1Offset, 40, 8)
        put(rtOffset, 48, 8)
        put(rtClusters, 56, 4)
        var pos = 72
        if v3 {
            var incompat: UInt64 = 0
            if o.zstd { incompat |= Qcow2Feature.compressionType }
            if o.extendedL2 { incompat |= Qcow2Feature.extendedL2 }
            put(incompat, 72, 8)
            put(o.lazyRefcounts ? Qcow2Feature.lazyRefcounts : 0, 80, 8)
            put(UInt64(o.refcountBits.trailingZeroBitCount), 96, 4)
            put(112, 100, 4)
            h[104] = o.zstd ? 1 : 0
            pos = 112
        }
        func ext(_ type: UInt32, _ data: [UInt8]) -> Bool {
            let padded = (data.count + 7) & ~7
            if pos + 8 + padded + 8 > Int(cs) { return false }
            put(UInt64(type), pos, 4); put(UInt64(data.count), pos + 4, 4)
            for (i, b) in data.enumerated() { h[pos + 8 + i] = b }
            pos += 8 + padded
            return true
        }
        if let bf = o.backingFormat, o.backingFile != nil {
            if !ext(0xe279_2aca, Array(bf.utf8)) { throw BlockError(.overflow, "backing format name does not fit in the header cluster", path: path, operation: "create") }
        }
        if v3 {
            // Feature-name table (type, bit, 46-byte name), written when it fits in the cluster.
            let names: [(UInt8, UInt8, String)] = [
                (0, 0, "dirty bit"), (0, 1, "corrupt bit"), (0, 2, "external data file"),
                (0, 3, "compression type"), (0, 4, "extended L2 entries"), (1, 0, "lazy refcounts"),
                (2, 0, "bitmaps"), (2, 1, "raw external data"),
            ]
            var table: [UInt8] = []
            for (t, b, n) in names {
                var e = [UInt8](repeating: 0, count: 48)
                e[0] = t; e[1] = b
                for (i, c) in n.utf8.prefix(46).enumerated() { e[2 + i] = c }
                table += e
            }
            let backingLen = o.backingFile.map { $0.utf8.count } ?? 0
            if pos + 8 + table.count + 8 + backingLen <= Int(cs) { _ = ext(0x6803_f857, table) }
        }
        pos += 8 // end-of-extensions marker (already zero)
        if let bf = o.backingFile {
            let b = Array(bf.utf8)
            if b.isEmpty || b.count > 1023 || pos + b.count > Int(cs) {
                throw BlockError(.invalidArgument, "backing file name must be 1..1023 bytes and fit in the header cluster", path: path, operation: "create")
            }
            put(UInt64(pos), 8, 8); put(UInt64(b.count), 16, 4)
            for (i, c) in b.enumerated() { h[pos + i] = c }
        }

        // Refcount table and blocks.
        var rt = [UInt8](repeating: 0, count: Int(rtClusters * cs))
        for i in 0..<Int(rbCount) {
            let off = rbOffset + UInt64(i) * cs
            storeBE(off, into: &rt, at: i * 8, width: 8)
        }
        var rb = [UInt8](repeating: 0, count: Int(rbCount * cs))
        let bits = o.refcountBits
        for c in 0..<Int(total) {
            if bits >= 8 {
                let w = bits / 8
                rb[c * w + w - 1] = 1 // big-endian value 1
            } else {
                let bitPos = c * bits
                rb[bitPos / 8] |= UInt8(1 << (bitPos % 8)) // sub-byte widths packed LSB first
            }
        }

        let f = try SystemFile(path: path, writable: true, create: true, truncate: true)
        defer { f.close() }
        try f.writeBytes(h, at: 0)
        try f.writeBytes(rt, at: rtOffset)
        try f.writeBytes(rb, at: rbOffset)
        try f.truncate(to: fileEnd)
        if !v3 && total > 0 {} // v2 has no extra fields
        try f.sync(dataOnly: false)
    }
}

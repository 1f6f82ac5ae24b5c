import BlockIO
import BlockInspect

/// `explain` for a QCOW2 file whose first cluster holds no header (cloud-hypervisor #8358:
/// guest data over the first 64 KiB): looks for the refcount table and the L1 table by
/// content and says what a header would need to reopen the image. Tries each cluster size
/// from 64 KiB (qemu-img's default) through 512 B..2 MiB; reads at most 1,024 clusters per
/// size. The candidate header is checked with BlockCore's own header parser.
struct Qcow2HeaderRecovery {
    let path: String
    let fileSize: UInt64
    let reason: String

    /// What was found at one cluster size.
    struct Found {
        var clusterBits: UInt32
        var refcountTable: UInt64?
        var l1: UInt64?
        var l1Entries = 0
        var mappedTables = 0
    }

    func report() throws(BlockError) -> ExplainReport {
        let file = try SystemFile(path: path, writable: false)
        let holes = HostHoles(file: file, size: fileSize)
        var report = ExplainReport(format: "qcow2", fileSize: fileSize, allocatedOnDisk: (try? file.allocatedSize()) ?? fileSize, unit: 65536)
        var best: Found?
        // One buffer for every cluster at every size (the largest cluster, or the file).
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(min(UInt64(1) << 21, max(fileSize, 8))), alignment: 8)
        defer { buffer.deallocate() }
        for bits in [16, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21] as [UInt32] {
            let f = search(file, clusterBits: bits, buffer: buffer)
            if f.l1 != nil || f.refcountTable != nil {
                if best == nil || f.mappedTables > best!.mappedTables || (best!.l1 == nil && f.l1 != nil) { best = f }
                if f.l1 != nil && f.refcountTable != nil { break }
            }
        }
        let cs = UInt64(1) << UInt64(best?.clusterBits ?? 16)
        report.unit = cs
        let first = (try? file.readBytes(at: 0, count: Int(min(cs, fileSize)))) ?? []
        let looks: ExplainLooksLike = Qcow2ContentClassifier.isZero(first) ? .zeroes : .guestData
        var known: [(ExplainSpaceKind, UInt64, UInt64)] = [(.header, 0, min(cs, fileSize))]
        // A header that starts with the magic is a QCOW2 header with a field qemu refuses, not
        // guest data over it: saying "overwritten" there would send the user after a cause
        // that did not happen.
        let magic = first.count >= 4 && Array(first[0..<4]) == [0x51, 0x46, 0x49, 0xfb]
        var text = magic
            ? "The first cluster holds a QCOW2 header that does not parse (\(reason)): a damaged field, not guest data over the header. The image no longer opens and `check -r` cannot run. "
            : "The first cluster holds no QCOW2 header (\(reason)); it looks like \(looks == .zeroes ? "zeroes" : "guest data"), as when guest data overwrote the first 64 KiB (cloud-hypervisor #8358). The image no longer opens and `check -r` cannot run. "
        if let b = best {
            if let rt = b.refcountTable { known.append((.refcountTable, rt, cs)); text += "A refcount table was found by content at \(hex(rt)). " }
            if let l1 = b.l1 {
                known.append((.l1, l1, cs))
                text += "An L1 table was found at \(hex(l1)) with \(b.l1Entries) entries (\(b.mappedTables) pointing to valid L2 tables), with \(cs >> 10) KiB clusters. "
            }
            if let l1 = b.l1, let rt = b.refcountTable {
                let window = (cs / 8) * cs
                let header = candidateHeader(clusterBits: b.clusterBits, size: UInt64(b.l1Entries) * window, l1Offset: l1, l1Entries: b.l1Entries, refcountTable: rt)
                if (try? Qcow2Header.parse(header, fileSize: fileSize, path: path)) != nil {
                    text += "A v3 header with cluster_bits \(b.clusterBits), l1_table_offset \(hex(l1)), l1_size \(b.l1Entries), refcount_table_offset \(hex(rt)), 1 refcount table cluster, 16-bit refcounts and a virtual size of at most \(UInt64(b.l1Entries) * window) bytes parses and would reopen the image (write it to a copy, then run `check -r all` there; snapshots, bitmaps and the backing file name are lost with the old header)."
                }
            }
        } else {
            text += "No L1 or refcount table was found by content in the first 1024 clusters at any cluster size: the image cannot be recovered from its own tables."
        }
        report.findings = [ExplainFinding(.headerOverwritten, host: [ExplainRange(0, min(cs, fileSize))], looksLike: looks, clusters: 1, text: text)]
        var by: [ExplainSpaceKind: UInt64] = [:]
        var counted: UInt64 = 0
        for (k, off, len) in known where off < fileSize {
            let l = min(len, fileSize - off)
            by[k, default: 0] += l
            counted += l
        }
        let knownHoles = known.reduce(UInt64(0)) { $0 + ($1.1 < fileSize ? holes.bytes($1.1, min(fileSize, $1.1 + $1.2)) : 0) }
        let allHoles = holes.bytes(0, fileSize)
        by[.holes] = allHoles - knownHoles
        by[.unknown] = fileSize - counted - (allHoles - knownHoles)
        report.space = ExplainSpaceKind.qcow2.map { ($0, by[$0] ?? 0) }
        return report
    }

    /// Scans the first clusters at one cluster size for a refcount table (first entry an
    /// aligned offset of a cluster whose first 16-bit count is 1: the header's) and an L1
    /// table (entries COPIED-flagged aligned offsets inside the file, reserved bits clear,
    /// pointing to clusters that read as L2 tables). `buffer` holds at least one cluster of this
    /// size or the whole file.
    func search(_ file: SystemFile, clusterBits: UInt32, buffer: UnsafeMutableRawBufferPointer) -> Found {
        var f = Found(clusterBits: clusterBits)
        let cs = UInt64(1) << UInt64(clusterBits)
        let n = min((fileSize + cs - 1) / cs, 1024)
        guard n > 1 else { return f }
        // The words are tested where they lie in `buffer`: an array per cluster (and another
        // of its words) was most of a headerless image's cost.
        for k in 1..<n {
            let length = Int(min(cs, fileSize - k * cs))
            guard length >= 8 else { continue }
            let b = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
            guard (try? file.read(into: b, at: k * cs)) != nil else { continue }
            let count = length / 8
            func word(_ i: Int) -> UInt64 { UInt64(bigEndian: b.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
            // Most clusters fail at once (zeroes, or an entry no table holds).
            var nonzero = 0, allCopied = true, aligned = true
            for i in 0..<count {
                let w = word(i)
                if w == 0 { continue }
                if w & (cs - 1) != 0 || w & ~(Qcow2Entry.offsetMask | Qcow2Entry.copied) != 0 || w & Qcow2Entry.offsetMask >= fileSize {
                    aligned = false
                    break
                }
                nonzero += 1
                if w & Qcow2Entry.copied == 0 { allCopied = false }
            }
            guard aligned, nonzero > 0 else { continue }
            let first = word(0)
            if f.refcountTable == nil, first != 0, first & Qcow2Entry.copied == 0,
               let blk = try? file.readBytes(at: first, count: 2), blk.count == 2, blk[0] == 0, blk[1] == 1 {
                f.refcountTable = k * cs
                continue
            }
            if f.l1 == nil, allCopied {
                var tables = 0, seen = 0, last = 0
                for i in 0..<count where word(i) != 0 {
                    last = i
                    if seen < 64 {
                        seen += 1
                        if looksLikeL2(file, at: word(i) & Qcow2Entry.offsetMask, cs: cs) { tables += 1 }
                    }
                }
                if tables * 2 >= min(nonzero, 64) {
                    f.l1 = k * cs
                    f.l1Entries = last + 1
                    f.mappedTables = tables
                }
            }
            if f.l1 != nil && f.refcountTable != nil { break }
        }
        return f
    }

    /// Whether the cluster at `offset` reads as standard L2 entries of this cluster size.
    private func looksLikeL2(_ file: SystemFile, at offset: UInt64, cs: UInt64) -> Bool {
        guard let b = try? file.readBytes(at: offset, count: Int(cs)), b.count == Int(cs) else { return false }
        var mapped = 0
        for e in Qcow2ContentClassifier.words(b) where e != 0 {
            if e & Qcow2Entry.compressed != 0 { mapped += 1; continue }
            let off = e & Qcow2Entry.offsetMask
            if e & 0x3f00_0000_0000_01fe != 0 || off & (cs - 1) != 0 || off >= fileSize { return false }
            mapped += 1
        }
        return mapped > 0
    }

    /// A 104-byte v3 header with the found tables, for the parser to accept or refuse.
    private func candidateHeader(clusterBits: UInt32, size: UInt64, l1Offset: UInt64, l1Entries: Int, refcountTable: UInt64) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 104)
        storeBE(UInt64(Qcow2Header.magic), into: &b, at: 0, width: 4)
        storeBE(3, into: &b, at: 4, width: 4)
        storeBE(UInt64(clusterBits), into: &b, at: 20, width: 4)
        storeBE(size, into: &b, at: 24, width: 8)
        storeBE(UInt64(l1Entries), into: &b, at: 36, width: 4)
        storeBE(l1Offset, into: &b, at: 40, width: 8)
        storeBE(refcountTable, into: &b, at: 48, width: 8)
        storeBE(1, into: &b, at: 56, width: 4)
        storeBE(4, into: &b, at: 96, width: 4)
        storeBE(104, into: &b, at: 100, width: 4)
        return b
    }
}

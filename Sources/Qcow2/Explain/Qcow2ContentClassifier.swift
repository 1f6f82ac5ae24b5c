import BlockIO
import BlockInspect

/// Tells by content what a QCOW2 cluster holds: an L2 table, a refcount block, zeroes or
/// anything else (guest data), from the entry rules in docs/interop/qcow2.txt (see
/// /work/shared/DAMAGE.md's notes): an L2 entry has its reserved bits clear, a standard
/// entry's offset is cluster-aligned and inside the file, a refcount block holds small counts.
struct Qcow2ContentClassifier {
    let header: Qcow2Header
    let fileSize: UInt64
    /// The largest refcount a healthy image holds: every compressed cluster inside one host
    /// cluster (at least 512 bytes each) in every snapshot and the active image, plus slack.
    let refcountBound: UInt64

    init(header: Qcow2Header, fileSize: UInt64, snapshots: Int) {
        self.header = header
        self.fileSize = fileSize
        refcountBound = (header.clusterSize / 512 + 1) * UInt64(snapshots + 1) + 8
    }

    /// Counts of an L2 table's entries: valid ones that map a host cluster (standard or
    /// compressed), valid ones that do not, and entries no QCOW2 writer produces.
    struct L2Census {
        var mapped = 0
        var compressed = 0
        var empty = 0
        var invalid = 0
        /// Valid by content: no invalid entry, or fewer than one in ten of the non-empty ones
        /// (a stray bit flip is reported by check, not called an overwritten table).
        var isTable: Bool { invalid == 0 || invalid * 10 < mapped + compressed + invalid }
    }

    /// The census of `words` read as an L2 table of this image (two words per entry with
    /// extended L2).
    func census(_ words: [UInt64]) -> L2Census {
        var c = L2Census()
        let ext = header.extendedL2
        let step = ext ? 2 : 1
        let n = min(Int(header.l2Entries), words.count / step)
        let cs = header.clusterSize
        let extData = header.hasExternalData
        for i in 0..<n {
            let e = words[i * step]
            let bitmap = ext ? words[i * step + 1] : 0
            if e == 0 && bitmap == 0 { c.empty += 1; continue }
            if e & Qcow2Entry.compressed != 0 {
                let d = Qcow2CompressedDescriptor(entry: e & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: header.clusterBits)
                if e & Qcow2Entry.copied != 0 || bitmap != 0 || extData || d.hostOffset < cs || d.hostOffset >= fileSize { c.invalid += 1 } else { c.compressed += 1 }
                continue
            }
            // Bits 56..61 reserved; bits 1..8 reserved (bit 0 is the zero flag without extended L2).
            let reserved: UInt64 = 0x3f00_0000_0000_0000 | (ext ? 0x1ff : 0x1fe)
            let off = e & Qcow2Entry.offsetMask
            if e & reserved != 0 || off & (cs - 1) != 0 || (!extData && off != 0 && off >= fileSize) || (ext && (bitmap >> 32) & bitmap & Qcow2Entry.allAllocated != 0) {
                c.invalid += 1
            } else if off != 0 || (extData && e & Qcow2Entry.copied != 0) {
                c.mapped += 1
            } else {
                c.empty += 1
            }
        }
        return c
    }

    /// Whether `bytes` hold refcounts of this image's width: at least 4 non-zero counts, at
    /// least half of them 1 (most clusters have one referrer), at most a quarter above
    /// ``refcountBound`` (host clusters full of compressed data). Widths below 8 bits hold any
    /// pattern, so they never match. An old bitmap or L1 table, a few large words among
    /// zeroes, does not match.
    func looksLikeRefcounts(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { looksLikeRefcounts($0) }
    }

    /// ``looksLikeRefcounts(_:)`` of bytes read into a buffer that is reused.
    func looksLikeRefcounts(_ raw: UnsafeRawBufferPointer) -> Bool {
        let order = header.refcountOrder
        guard order >= 3 else { return false }
        let per = Int(Qcow2Refcounts.entriesPerBlock(clusterBits: header.clusterBits, refcountOrder: order))
        let n = min(per, (raw.count * 8) >> Int(order))
        let bound = refcountBound
        // Counts of 1 to 8 bytes read whole, big-endian as Qcow2Refcounts.get reads them
        // (a byte at a time was a tenth of explaining a damaged image).
        func census<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) -> (nonzero: Int, ones: Int, large: Int) {
            var nonzero = 0, ones = 0, large = 0
            for i in 0..<n {
                let v = UInt64(T(bigEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)))
                if v == 0 { continue }
                nonzero += 1
                if v == 1 { ones += 1 } else if v > bound { large += 1 }
            }
            return (nonzero, ones, large)
        }
        let c: (nonzero: Int, ones: Int, large: Int)
        switch order {
        case 3: c = census(UInt8.self)
        case 4: c = census(UInt16.self)
        case 5: c = census(UInt32.self)
        default: c = census(UInt64.self)
        }
        return c.nonzero >= 4 && c.ones * 2 >= c.nonzero && c.large * 4 <= c.nonzero
    }

    /// What `bytes` (one cluster) look like: zeroes, an L2 table mapping at least one cluster,
    /// refcounts, else guest data.
    func looksLike(_ bytes: [UInt8]) -> ExplainLooksLike {
        if Self.isZero(bytes) { return .zeroes }
        let c = census(Self.words(bytes))
        if c.invalid == 0 && c.mapped + c.compressed > 0 { return .l2Table }
        if looksLikeRefcounts(bytes) { return .refcountBlock }
        return .guestData
    }

    /// What an L2 table that is not one (``L2Census/isTable`` false) holds instead.
    func looksLikeInstead(ofL2 words: [UInt64]) -> ExplainLooksLike {
        var bytes = [UInt8](repeating: 0, count: words.count * 8)
        for (k, v) in words.enumerated() { storeBE(v, into: &bytes, at: k * 8, width: 8) }
        return looksLikeRefcounts(bytes) ? .refcountBlock : .guestData
    }

    /// Big-endian words of `bytes`.
    /// Whether every byte of `bytes` is zero, tested eight at a time (a byte at a time, with
    /// the fuzzer's compare hooks, was the header search's largest cost).
    static func isZero(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            let n = raw.count / 8
            var acc: UInt64 = 0
            for i in 0..<n { acc |= raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) }
            for i in (n * 8)..<raw.count { acc |= UInt64(raw[i]) }
            return acc == 0
        }
    }

    static func words(_ bytes: [UInt8]) -> [UInt64] {
        // Whole big-endian loads: a byte at a time was a fifth of explaining a damaged image.
        let n = bytes.count / 8
        return [UInt64](unsafeUninitializedCapacity: n) { out, count in
            bytes.withUnsafeBytes { raw in
                for i in 0..<n { out[i] = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
            }
            count = n
        }
    }
}

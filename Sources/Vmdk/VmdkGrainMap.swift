import BlockIO
import BlockInspect
import BlockMap

/// What one grain table entry says about a grain.
public enum VmdkGrainState: Sendable, Equatable {
    /// Not allocated: reads from the parent, or zeroes without one.
    case unallocated
    /// A zeroed grain (entry 1 with the zeroed-grain flag; seSparse zero or unmapped).
    case zero
    /// Plain grain data at this host byte offset of the extent file.
    case data(host: UInt64)
    /// A compressed grain (with its marker when the extent has markers) at this host offset.
    case compressed(host: UInt64)
}

/// The grain directory and grain tables of one sparse extent (hosted `KDMV` or ESXi
/// seSparse): the one decoder of their entries, shared by reads, writes, map, check and the
/// structure view. Not locked itself: ``VmdkDisk`` calls it under its metadata lock.
///
/// Grain tables are read on first use and kept in a bounded cache (`cacheLimit` tables).
public final class VmdkGrainMap: @unchecked Sendable {
    /// The extent file.
    public let file: SystemFile
    /// Whether this is an ESXi seSparse extent (64-bit entries).
    public let seSparse: Bool
    /// The hosted header (nil for seSparse).
    public let header: VmdkSparseHeader?
    /// The seSparse constant header (nil for hosted sparse extents).
    public let seHeader: VmdkSeSparseHeader?
    /// Guest bytes of the extent.
    public let capacity: UInt64
    /// Bytes per grain.
    public let grainBytes: UInt64
    /// Entries per grain table.
    public let tableEntries: Int
    /// The grain directory: host sector of each grain table (0: no table).
    public private(set) var directory: [UInt64]
    /// The redundant grain directory, when the extent keeps one.
    public private(set) var redundantDirectory: [UInt64]?
    /// The host byte offset of the grain directory.
    public let directoryOffset: UInt64
    /// Grains are deflate-compressed.
    public let compressed: Bool
    /// Grains carry markers.
    public let markers: Bool
    /// Entry 1 means a zeroed grain.
    public let zeroedGrains: Bool
    /// The extent file's size as this map knows it (grows with allocations).
    public private(set) var fileSize: UInt64
    /// The sector where the next grain would be allocated.
    private var nextGrainSector: UInt64
    /// Metadata ranges of the extent file (start, end, name), sorted by start.
    private var metadata: [(UInt64, UInt64, String)] = []
    /// The embedded descriptor's name among the metadata ranges.
    static let descriptorName = "the embedded descriptor"
    /// The longest metadata range: a range starting further than this before a write ends before it.
    private var metadataSpan: UInt64 = 0
    /// Two metadata structures that share bytes (a grain table inside the grain directory,
    /// two directory entries naming one table), if any: a table entry written there changes
    /// the other structure too, so such an extent is never written (see ``VmdkDisk``'s write
    /// path). The embedded descriptor is left out: only its text counts, checked when its CID
    /// is rewritten.
    private(set) var metadataClash: String?
    private var cache: [Int: [UInt64]] = [:]
    private var cacheOrder: [Int] = []
    private let cacheLimit: Int

    /// Reads a hosted sparse extent's directories (the footer's when gdOffset is
    /// ``VmdkSparseHeader/gdAtEnd``). Every offset and size is checked against the file size
    /// before anything is allocated from it.
    public init(file: SystemFile, header h0: VmdkSparseHeader, cacheLimit: Int) throws(BlockError) {
        var h = h0
        let size = try file.size()
        let path = file.path
        if h.gdOffset == VmdkSparseHeader.gdAtEnd {
            if size < 1536 { throw BlockError(.corruptImage, "vmdk: grain directory is at the end but the file (\(size) bytes) has no footer", path: path, operation: "open") }
            let tail = try file.readBytes(at: size / 512 * 512 - 1536, count: 1536)
            let fm = VmdkMarker.parse(Array(tail[0..<16]))
            let eos = VmdkMarker.parse(Array(tail[1024..<1040]))
            guard fm?.size == 0, fm?.type == VmdkMarker.MarkerType.footer.rawValue, eos?.value == 0, eos?.size == 0,
                  eos?.type == VmdkMarker.MarkerType.endOfStream.rawValue else {
                throw BlockError(.corruptImage, "vmdk: grain directory is at the end but no footer marker, footer and end-of-stream marker close the file", path: path, hostOffset: size / 512 * 512 - 1536, operation: "open")
            }
            h = try VmdkSparseHeader.parse(Array(tail[512..<1024]), path: path, at: size / 512 * 512 - 1024)
            if h.gdOffset == VmdkSparseHeader.gdAtEnd { throw BlockError(.corruptImage, "vmdk: the footer's grain directory offset is 'at end' too", path: path, operation: "open") }
        }
        // qemu's rule: the file holds at least the header's overhead (its grain offset). A
        // shorter file has grains allocated past its end, where a new grain (placed after the
        // last byte) would overlap them: a write to one then overwrote the other.
        let (minimum, tooLarge) = h.overHead.multipliedReportingOverflow(by: 512)
        if tooLarge || size < minimum {
            throw BlockError(.corruptImage, "vmdk: file truncated: the header's overhead is \(h.overHead) sectors, so the file must hold at least \(tooLarge ? "2^64" : String(minimum)) bytes, and it has \(size) (qemu refuses it too)", path: path, operation: "open")
        }
        self.file = file
        seSparse = false
        header = h
        seHeader = nil
        capacity = h.capacity * 512
        grainBytes = h.grainBytes
        tableEntries = Int(h.numGTEsPerGT)
        compressed = h.isCompressed
        markers = h.hasMarkers
        zeroedGrains = h.hasZeroedGrains
        fileSize = size
        self.cacheLimit = max(1, cacheLimit)
        let entries = h.directoryEntries
        func readDirectory(_ sector: UInt64, _ what: String) throws(BlockError) -> [UInt64] {
            let (off, o1) = sector.multipliedReportingOverflow(by: 512)
            let (end, o2) = off.addingReportingOverflow(entries * 4)
            if o1 || o2 || end > size || entries > 32 << 20 {
                throw BlockError(.corruptImage, "vmdk: \(what) at sector \(sector) (\(entries) entries) lies beyond the end of the file (size \(hex(size)))", path: path, hostOffset: off, operation: "open")
            }
            let r = ByteReader(try file.readBytes(at: off, count: Int(entries * 4)), what: "vmdk \(what)", path: path)
            return try (0..<Int(entries)).map { (i) throws(BlockError) in UInt64(try r.le32(i * 4)) }
        }
        directory = try readDirectory(h.gdOffset, "grain directory")
        directoryOffset = h.gdOffset * 512
        redundantDirectory = h.hasRedundantGD ? try readDirectory(h.rgdOffset, "redundant grain directory") : nil
        // Metadata a grain must never overlap when it is written: header, embedded descriptor,
        // both directories and every table they name.
        var meta: [(UInt64, UInt64, String)] = [(0, 512, "the sparse header")]
        if h.descriptorOffset != 0 && h.descriptorOffset < (UInt64(1) << 48) && h.descriptorSize < (UInt64(1) << 32) {
            meta.append((h.descriptorOffset * 512, (h.descriptorOffset + h.descriptorSize) * 512, Self.descriptorName))
        }
        meta.append((directoryOffset, directoryOffset + entries * 4, "the grain directory"))
        for (i, t) in directory.enumerated() where t != 0 && t < (UInt64(1) << 48) { meta.append((t * 512, t * 512 + h.tableBytes, "grain table \(i)")) }
        if let r = redundantDirectory {
            meta.append((h.rgdOffset * 512, h.rgdOffset * 512 + entries * 4, "the redundant grain directory"))
            for (i, t) in r.enumerated() where t != 0 && t < (UInt64(1) << 48) { meta.append((t * 512, t * 512 + h.tableBytes, "redundant grain table \(i)")) }
        }
        metadata = meta.sorted { $0.0 < $1.0 }
        metadataSpan = meta.map { $0.1 - $0.0 }.max() ?? 0
        var reach: (end: UInt64, name: String)?
        for m in metadata where m.2 != Self.descriptorName && m.1 > m.0 {
            if let r = reach, m.0 < r.end { metadataClash = "\(m.2) at \(hex(m.0)) overlaps \(r.name)"; break }
            if reach == nil || m.1 > reach!.end { reach = (m.1, m.2) }
        }
        // After the last byte of the file (a partial last sector counts, as qemu counts it),
        // rounded up to a whole grain: a new grain is a hole and reads as zeroes.
        let g = h.grainSize
        nextGrainSector = ((size + 511) / 512 + g - 1) / g * g
    }

    /// Reads an ESXi seSparse extent's volatile header and grain directory.
    public init(file: SystemFile, seHeader h: VmdkSeSparseHeader, cacheLimit: Int) throws(BlockError) {
        let size = try file.size()
        let path = file.path
        let (vo, ov) = h.volatileHeaderOffset.multipliedReportingOverflow(by: 512)
        if ov || vo + 512 > size { throw BlockError(.corruptImage, "vmdk: seSparse volatile header at sector \(h.volatileHeaderOffset) lies beyond the end of the file (size \(hex(size)))", path: path, operation: "open") }
        try VmdkSeSparseHeader.checkVolatile(try file.readBytes(at: vo, count: 512), path: path, at: vo)
        self.file = file
        seSparse = true
        header = nil
        seHeader = h
        capacity = h.capacity * 512
        grainBytes = h.grainSize * 512
        tableEntries = Int(h.grainTableSize * 512 / 8)
        compressed = false
        markers = false
        zeroedGrains = true
        fileSize = size
        nextGrainSector = 0
        self.cacheLimit = max(1, cacheLimit)
        let coverage = UInt64(tableEntries) * grainBytes
        let needed = (capacity + coverage - 1) / coverage
        let entries = h.grainDirSize * 512 / 8
        if entries < needed {
            throw BlockError(.corruptImage, "vmdk: seSparse grain directory has \(entries) entries but the capacity needs \(needed)", path: path, operation: "open")
        }
        let (off, o1) = h.grainDirOffset.multipliedReportingOverflow(by: 512)
        let (end, o2) = off.addingReportingOverflow(needed * 8)
        if o1 || o2 || end > size || needed > 32 << 20 {
            throw BlockError(.corruptImage, "vmdk: seSparse grain directory at sector \(h.grainDirOffset) lies beyond the end of the file (size \(hex(size)))", path: path, hostOffset: off, operation: "open")
        }
        directoryOffset = off
        let raw = ByteReader(try file.readBytes(at: off, count: Int(needed * 8)), what: "vmdk seSparse grain directory", path: path)
        var dir: [UInt64] = []
        dir.reserveCapacity(Int(needed))
        for i in 0..<Int(needed) {
            let e = try raw.le64(i * 8)
            if e == 0 { dir.append(0); continue }
            if e & 0xffff_ffff_0000_0000 != 0x1000_0000_0000_0000 {
                throw BlockError(.corruptImage, "vmdk: seSparse grain directory entry \(i) is \(hex(e)): not 0 and not an allocated table (0x10000000xxxxxxxx)", path: path, hostOffset: off + UInt64(i) * 8, operation: "open")
            }
            let (sector, o) = h.grainTablesOffset.addingReportingOverflow((e & 0xffff_ffff) * h.grainTableSize)
            if o || sector > (UInt64(1) << 54) {
                throw BlockError(.corruptImage, "vmdk: seSparse grain directory entry \(i): grain table \(e & 0xffff_ffff) lies beyond 2^63 bytes (tables at sector \(h.grainTablesOffset))", path: path, hostOffset: off + UInt64(i) * 8, operation: "open")
            }
            dir.append(sector)
        }
        directory = dir
        redundantDirectory = nil
    }

    /// Guest bytes one grain table covers.
    public var tableCoverage: UInt64 { UInt64(tableEntries) * grainBytes }
    /// Bytes of one grain table's entries.
    var tableEntryBytes: Int { tableEntries * (seSparse ? 8 : 4) }

    /// The raw entries of grain table `index` (empty when the directory has no table there).
    public func table(_ index: Int) throws(BlockError) -> [UInt64] {
        if let t = cache[index] { return t }
        let sector = directory[index]
        if sector == 0 { return [] }
        let (off, o1) = sector.multipliedReportingOverflow(by: 512)
        let (end, o2) = off.addingReportingOverflow(UInt64(tableEntryBytes))
        if o1 || o2 || end > fileSize {
            throw BlockError(.corruptImage, "vmdk: grain table \(index) at sector \(sector) lies beyond the end of the file (size \(hex(fileSize)))", path: file.path, hostOffset: off, operation: "read")
        }
        let raw = ByteReader(try file.readBytes(at: off, count: tableEntryBytes), what: "vmdk grain table \(index)", path: file.path)
        let t: [UInt64] = seSparse ? try (0..<tableEntries).map { (i) throws(BlockError) in try raw.le64(i * 8) }
                                   : try (0..<tableEntries).map { (i) throws(BlockError) in UInt64(try raw.le32(i * 4)) }
        if cache.count >= cacheLimit, let victim = cacheOrder.first {
            cacheOrder.removeFirst()
            cache[victim] = nil
        }
        cache[index] = t
        cacheOrder.append(index)
        return t
    }

    /// The state of grain `grain` (counted from the extent's start).
    public func state(_ grain: UInt64) throws(BlockError) -> VmdkGrainState {
        let t = try tableHolding(grain)
        if t.isEmpty { return .unallocated }
        return try decode(t[Int(grain % UInt64(tableEntries))], grain: grain)
    }

    /// The raw entries of the grain table that holds grain `grain` (empty when the directory
    /// has none there); fails past the directory.
    func tableHolding(_ grain: UInt64) throws(BlockError) -> [UInt64] {
        let ti = Int(grain / UInt64(tableEntries))
        if ti >= directory.count { throw BlockError(.outOfBounds, "vmdk: grain \(grain) is past the grain directory", path: file.path, operation: "read") }
        return try table(ti)
    }

    /// What ``state(_:)`` says of each grain of `first..<end`, which lie in one grain table,
    /// read and decoded in one go (`map` and `check` walked a 5.7 GiB disk a grain and a lock
    /// at a time: 94,000 steps): `noTable` when the directory has no table there (every grain
    /// unallocated); else the states in order up to the first grain that fails, whose error is
    /// `failure`.
    func tableStates(_ first: UInt64, _ end: UInt64) -> (states: [VmdkGrainState], noTable: Bool, failure: (grain: UInt64, error: BlockError)?) {
        let t: [UInt64]
        do throws(BlockError) { t = try tableHolding(first) } catch { return ([], false, (first, error)) }
        if t.isEmpty { return ([], true, nil) }
        var out: [VmdkGrainState] = []
        out.reserveCapacity(Int(end - first))
        let per = UInt64(tableEntries)
        for grain in first..<end {
            do throws(BlockError) { out.append(try decode(t[Int(grain % per)], grain: grain)) } catch { return (out, false, (grain, error)) }
        }
        return (out, false, nil)
    }

    /// The raw entry of grain `grain` (nil when its grain table is not allocated).
    public func rawEntry(_ grain: UInt64) throws(BlockError) -> UInt64? {
        let t = try table(Int(grain / UInt64(tableEntries)))
        return t.isEmpty ? nil : t[Int(grain % UInt64(tableEntries))]
    }

    /// Decodes one raw grain table entry of grain `grain`.
    public func decode(_ e: UInt64, grain: UInt64) throws(BlockError) -> VmdkGrainState {
        let host: UInt64
        if seSparse {
            switch e >> 60 {
            case 0:
                if e != 0 { throw corrupt(grain, e, "an unallocated seSparse entry with bits set") }
                return .unallocated
            case 1, 2: return .zero
            case 3:
                let index = ((e & 0x0fff_0000_0000_0000) >> 48) | ((e & 0x0000_ffff_ffff_ffff) << 12)
                let h = seHeader!
                let (s, o) = index.multipliedReportingOverflow(by: h.grainSize)
                let (sector, o2) = h.grainsOffset.addingReportingOverflow(s)
                if o || o2 || sector > (UInt64(1) << 54) { throw corrupt(grain, e, "grain index \(index) in the grains area at sector \(h.grainsOffset) is out of range") }
                host = sector * 512
            default: throw corrupt(grain, e, "unknown seSparse entry type \(e >> 60)")
            }
        } else {
            if e == 0 { return .unallocated }
            if e == 1 && zeroedGrains { return .zero }
            host = e * 512
        }
        if host >= fileSize { throw corrupt(grain, e, "grain at \(hex(host)) lies beyond the end of the file (size \(hex(fileSize)))") }
        return compressed ? .compressed(host: host) : .data(host: host)
    }

    private func corrupt(_ grain: UInt64, _ e: UInt64, _ what: String) -> BlockError {
        BlockError(.corruptImage, "vmdk: grain table entry of grain \(grain) (\(hex(e))): \(what)", path: file.path, guestOffset: grain * grainBytes, operation: "read")
    }

    /// Reserves a new grain at the end of the file (whole grains, as qemu places them) and
    /// grows the file to hold it; returns its host byte offset. The caller fills it, makes it
    /// stable, then sets the entry (``setEntry(_:sector:)``).
    ///
    /// A grain table the directory places at or past the end of the file (it reads as zeroes
    /// there) is stepped over, not written over: the new grain goes after it. qemu allocates
    /// at the end of the file regardless, writing the grain's data into that table (a fuzz
    /// input's write at guest 0 became grain 65536's entry, "0xa1a1a1a1").
    func allocateGrain() throws(BlockError) -> UInt64 {
        var sector = nextGrainSector
        let perGrain = grainBytes / 512
        while sector < UInt64(1) << 32, let m = metadataOverlapping(sector * 512, grainBytes) {
            sector = (m.end + grainBytes - 1) / grainBytes * perGrain
        }
        if sector >= UInt64(1) << 32 { throw BlockError(.overflow, "vmdk: the extent is full (grain sectors past 2^32)", path: file.path, operation: "write") }
        nextGrainSector = sector + perGrain
        let end = sector * 512 + grainBytes
        if end > fileSize {
            try file.truncate(to: end)
            fileSize = end
        }
        return sector * 512
    }

    /// Writes grain `grain`'s entry (`sector`, or 1 for a zeroed grain) into its grain table
    /// and into the redundant one, then updates the cache. The table must exist.
    func setEntry(_ grain: UInt64, sector: UInt32) throws(BlockError) {
        let ti = Int(grain / UInt64(tableEntries))
        let i = Int(grain % UInt64(tableEntries))
        var b = [UInt8](repeating: 0, count: 4)
        ByteField.putLE(&b, 0, UInt64(sector), width: 4)
        try file.writeBytes(b, at: directory[ti] * 512 + UInt64(i) * 4)
        if let r = redundantDirectory, r[ti] != 0 {
            try file.writeBytes(b, at: r[ti] * 512 + UInt64(i) * 4)
        }
        if cache[ti] != nil { cache[ti]![i] = UInt64(sector) }
    }

    /// The metadata structure that host bytes `[host, host + length)` overlap, if any: a write
    /// there would rewrite a table or the header (a damaged grain table can point a grain
    /// at them), so the write is refused.
    /// With `besidesDescriptor` the embedded descriptor itself does not count (its own
    /// rewrite asks what else it would overwrite).
    func metadataOverlap(_ host: UInt64, _ length: UInt64, besidesDescriptor: Bool = false) -> String? {
        metadataOverlapping(host, length, besidesDescriptor: besidesDescriptor)?.name
    }

    /// The metadata structure (its byte range and name) that `[host, host + length)` overlaps.
    private func metadataOverlapping(_ host: UInt64, _ length: UInt64, besidesDescriptor: Bool = false) -> (start: UInt64, end: UInt64, name: String)? {
        var lo = 0, hi = metadata.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if metadata[mid].0 < host + length { lo = mid + 1 } else { hi = mid }
        }
        // Ranges starting before the write's end; any of them may reach into it.
        var i = lo - 1
        while i >= 0 {
            if metadata[i].1 > host && !(besidesDescriptor && metadata[i].2 == Self.descriptorName) { return metadata[i] }
            if metadata[i].0 + metadataSpan <= host { break }
            i -= 1
        }
        return nil
    }

    /// Whether grain table `index` exists (a write into a missing table is refused).
    func hasTable(_ index: Int) -> Bool { directory[index] != 0 }
}

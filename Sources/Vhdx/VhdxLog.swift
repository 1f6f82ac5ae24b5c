import BlockIO
import BlockMap
import BlockInspect

/// One parsed VHDX log entry (`loge`) with its descriptors resolved to writes.
public struct VhdxLogEntry: Sendable {
    /// Offset of the entry within the log.
    public var offset: UInt64
    /// Entry length in bytes (multiple of 4 KiB).
    public var length: UInt64
    /// Offset within the log of the oldest entry of this entry's sequence.
    public var tail: UInt64
    /// Sequence number.
    public var sequence: UInt64
    /// File size the entry requires (the file is truncated when smaller).
    public var flushedFileOffset: UInt64
    /// File size after the entry is applied.
    public var lastFileOffset: UInt64
    /// Writes the entry makes: (file offset, bytes); zero descriptors carry zero bytes.
    public var writes: [(offset: UInt64, bytes: [UInt8])]
    /// Zero descriptors: (file offset, length).
    public var zeroes: [(offset: UInt64, length: UInt64)]
}

/// The VHDX metadata log (MS-VHDX 2.3): finding the active sequence, replaying it, and
/// writing new entries for metadata updates.
public enum VhdxLog {
    /// Log sector size.
    public static let sector: UInt64 = 4096

    /// Parses and validates the entry at `off` of the in-memory log `log` (wrapping at its end).
    static func entry(in log: [UInt8], at off: UInt64, guid: VhdxGuid) -> VhdxLogEntry? {
        do {
            let n = UInt64(log.count)
            func bytes(_ o: UInt64, _ len: Int) -> [UInt8] {
                var out = [UInt8](); out.reserveCapacity(len)
                var p = o % n
                for _ in 0..<len { out.append(log[Int(p)]); p += 1; if p == n { p = 0 } }
                return out
            }
            let h = bytes(off, 64)
            let r = ByteReader(h, what: "vhdx log entry header")
            guard ByteField.hasTag(h, 0, "loge") else { return nil }
            let length = UInt64(try r.le32(8)), tail = UInt64(try r.le32(12))
            let seq = try r.le64(16), count = UInt64(try r.le32(24))
            guard length >= sector, length % sector == 0, length <= n, tail % sector == 0, tail < n, seq != 0,
                  VhdxGuid(h, at: 32) == guid else { return nil }
            let descArea = (64 + count * 32 + sector - 1) / sector * sector
            guard descArea <= length else { return nil }
            let all = bytes(off, Int(length))
            let a = ByteReader(all, what: "vhdx log entry")
            guard Crc32c.checksum(all, zeroingFieldAt: 4) == (try r.le32(4)) else { return nil }
            var e = VhdxLogEntry(offset: off, length: length, tail: tail, sequence: seq,
                                 flushedFileOffset: try r.le64(48), lastFileOffset: try r.le64(56), writes: [], zeroes: [])
            var dataSector = Int(descArea)
            for i in 0..<Int(count) {
                let d = 64 + i * 32
                if ByteField.hasTag(all, d, "zero") {
                    let zoff = try a.le64(d + 16), zlen = try a.le64(d + 8)
                    guard try a.le64(d + 24) == seq, zoff % sector == 0, zlen % sector == 0,
                          !zoff.addingReportingOverflow(zlen).overflow, zoff + zlen <= 1 << 56 else { return nil }
                    e.zeroes.append((zoff, zlen))
                } else if ByteField.hasTag(all, d, "desc") {
                    guard try a.le64(d + 24) == seq, dataSector + Int(sector) <= all.count,
                          try a.le64(d + 16) % sector == 0, try a.le64(d + 16) < 1 << 56 else { return nil }
                    let s = dataSector
                    guard ByteField.hasTag(all, s, "data"), try a.le32(s + 4) == UInt32(seq >> 32),
                          try a.le32(s + 4092) == UInt32(truncatingIfNeeded: seq) else { return nil }
                    var page = [UInt8](repeating: 0, count: Int(sector))
                    ByteField.putLE(&page, 0, try a.le64(d + 8), width: 8)
                    page[8..<4092] = all[(s + 8)..<(s + 4092)]
                    ByteField.putLE(&page, 4092, UInt64(try a.le32(d + 4)), width: 4)
                    e.writes.append((try a.le64(d + 16), page))
                    dataSector += Int(sector)
                } else {
                    return nil
                }
            }
            return e
        } catch {
            return nil   // a field past the end: not a valid structure
        }
    }

    /// Finds the active sequence (tail to head) by the scan MS-VHDX 2.3.3 describes; empty when none.
    public static func activeSequence(_ log: [UInt8], guid: VhdxGuid) -> [VhdxLogEntry] {
        let n = UInt64(log.count)
        guard n >= sector else { return [] }
        var candidate: [VhdxLogEntry] = []
        var candidateSeq: UInt64 = 0
        var curTail: UInt64 = 0, oldTail: UInt64 = 0
        var rounds = 0
        while rounds <= Int(n / sector) + 1 {
            rounds += 1
            var seq: [VhdxLogEntry] = []
            var head = curTail
            while seq.count <= Int(n / sector), let e = entry(in: log, at: head, guid: guid),
                  seq.isEmpty || e.sequence == seq.last!.sequence + 1 {
                seq.append(e)
                head = (head + e.length) % n
            }
            var valid = false
            if let last = seq.last, let t = seq.firstIndex(where: { $0.offset == last.tail }) {
                valid = true
                if last.sequence > candidateSeq { candidate = Array(seq[t...]); candidateSeq = last.sequence }
            }
            curTail = valid ? head : (curTail + sector) % n
            if curTail <= oldTail && !(curTail == 0 && oldTail == 0 && rounds == 1) { break }
            oldTail = curTail
        }
        return candidate
    }

    /// Reads the log region and returns its active sequence; empty when the header's log GUID is zero.
    ///
    /// Throws when the file is shorter than the head entry's FlushedFileOffset (truncated).
    public static func load(_ file: SystemFile, header: VhdxHeader, fileSize: UInt64) throws(BlockError) -> [VhdxLogEntry] {
        if header.logGuid.isZero || header.logLength == 0 { return [] }
        if header.logVersion != 0 {
            throw BlockError(.unsupportedFeature, "vhdx: log version \(header.logVersion) (only 0 is defined)", path: file.path, operation: "open")
        }
        let (end, o) = header.logOffset.addingReportingOverflow(UInt64(header.logLength))
        if o || end > fileSize || header.logOffset % VhdxLayout.mb != 0 || header.logLength % UInt32(VhdxLayout.mb) != 0 {
            throw BlockError(.corruptImage, "vhdx: log at \(hex(header.logOffset)) (length \(hex(UInt64(header.logLength)))) is misaligned or lies beyond the end of the file (size \(hex(fileSize)))", path: file.path, hostOffset: header.logOffset, operation: "open")
        }
        let log = try file.readBytes(at: header.logOffset, count: Int(header.logLength))
        let seq = activeSequence(log, guid: header.logGuid)
        if let head = seq.last, fileSize < head.flushedFileOffset {
            throw BlockError(.corruptImage, "vhdx: file is truncated: size \(hex(fileSize)) is below the log's flushed file offset \(hex(head.flushedFileOffset))", path: file.path, operation: "open")
        }
        return seq
    }

    /// The pages the sequence writes, applied in order: a map from 4 KiB file offset to bytes
    /// (zero descriptors become all-zero pages, up to 64 MiB of them; larger zero ranges are ignored
    /// because they never cover metadata in practice).
    ///
    /// Used for the in-memory replay of a read-only open: metadata reads consult it first.
    public static func overlay(_ seq: [VhdxLogEntry]) -> [UInt64: [UInt8]] {
        var pages: [UInt64: [UInt8]] = [:]
        let zeroPage = [UInt8](repeating: 0, count: Int(sector))
        for e in seq {
            for z in e.zeroes where z.length <= 64 << 20 {
                var p = z.offset
                while p < z.offset + z.length { pages[p] = zeroPage; p += sector }
            }
            for w in e.writes { pages[w.offset] = w.bytes }
        }
        return pages
    }

    /// Replays the sequence into the file: writes every descriptor, then grows the file to the
    /// head's LastFileOffset, then syncs.
    public static func replay(_ seq: [VhdxLogEntry], into file: SystemFile) throws(BlockError) {
        for e in seq {
            for z in e.zeroes { try file.writeZeroes(at: z.offset, length: z.length) }
            for w in e.writes { try file.writeBytes(w.bytes, at: w.offset) }
        }
        if let head = seq.last, try file.size() < head.lastFileOffset { try file.truncate(to: head.lastFileOffset) }
        try file.sync(dataOnly: false)
    }

    /// Builds one entry that writes the 4 KiB `pages` (file offset, bytes).
    public static func buildEntry(pages: [(offset: UInt64, bytes: [UInt8])], sequence: UInt64, tail: UInt64,
                                  guid: VhdxGuid, fileSize: UInt64) -> [UInt8] {
        let descArea = Int((64 + UInt64(pages.count) * 32 + sector - 1) / sector * sector)
        var b = [UInt8](repeating: 0, count: descArea + pages.count * Int(sector))
        b[0..<4] = ArraySlice("loge".utf8)
        ByteField.putLE(&b, 8, UInt64(b.count), width: 4)
        ByteField.putLE(&b, 12, tail, width: 4)
        ByteField.putLE(&b, 16, sequence, width: 8)
        ByteField.putLE(&b, 24, UInt64(pages.count), width: 4)
        b[32..<48] = ArraySlice(guid.bytes)
        ByteField.putLE(&b, 48, fileSize, width: 8)
        ByteField.putLE(&b, 56, fileSize, width: 8)
        for (i, p) in pages.enumerated() {
            let d = 64 + i * 32, s = descArea + i * Int(sector)
            b[d..<(d + 4)] = ArraySlice("desc".utf8)
            ByteField.putLE(&b, d + 4, UInt64((try? ByteReader(p.bytes, what: "vhdx log page").le32(4092)) ?? 0), width: 4)
            ByteField.putLE(&b, d + 8, (try? ByteReader(p.bytes, what: "vhdx log page").le64(0)) ?? 0, width: 8)
            ByteField.putLE(&b, d + 16, p.offset, width: 8)
            ByteField.putLE(&b, d + 24, sequence, width: 8)
            b[s..<(s + 4)] = ArraySlice("data".utf8)
            ByteField.putLE(&b, s + 4, sequence >> 32, width: 4)
            b[(s + 8)..<(s + 4092)] = p.bytes[8..<4092]
            ByteField.putLE(&b, s + 4092, sequence & 0xFFFF_FFFF, width: 4)
        }
        Crc32c.seal(&b, fieldOffset: 4)
        return b
    }
}

/// Writes metadata updates through the log: entry, sync, then the final locations.
///
/// Not thread-safe: the owning ``VhdxMetadata`` calls it under its lock. Entries are never
/// split across the end of the log: when one does not fit, the file is synced (so every
/// applied update is durable) and the log restarts at offset 0.
final class VhdxLogWriter {
    let file: SystemFile
    let logOffset: UInt64
    let logLength: UInt64
    let guid: VhdxGuid
    private var sequence: UInt64 = 1
    private var head: UInt64 = 0
    private var tail: UInt64 = 0
    private var generation: UInt64 = 0
    /// Entries written this session.
    private(set) var entries = 0

    init(file: SystemFile, logOffset: UInt64, logLength: UInt64, guid: VhdxGuid) {
        self.file = file
        self.logOffset = logOffset
        self.logLength = logLength
        self.guid = guid
    }

    /// Logs `pages` (4 KiB each, 4 KiB-aligned file offsets), syncs, then writes them in place.
    ///
    /// Large updates are split into several entries so each fits in the log.
    func update(_ pages: [(offset: UInt64, bytes: [UInt8])]) throws(BlockError) {
        let perEntry = max(1, Int(logLength / VhdxLog.sector) / 2 - 1)
        var i = 0
        while i < pages.count {
            let chunk = Array(pages[i..<min(pages.count, i + perEntry)])
            let size = UInt64(try file.size())
            var entryLen = (64 + UInt64(chunk.count) * 32 + VhdxLog.sector - 1) / VhdxLog.sector * VhdxLog.sector
            entryLen += UInt64(chunk.count) * VhdxLog.sector
            if head + entryLen > logLength {
                try file.sync(dataOnly: true)
                head = 0; tail = 0
                generation += 1
            }
            let entry = VhdxLog.buildEntry(pages: chunk, sequence: sequence, tail: tail, guid: guid, fileSize: size)
            try file.writeBytes(entry, at: logOffset + head)
            try file.sync(dataOnly: true)
            for p in chunk { try file.writeBytes(p.bytes, at: p.offset) }
            head += entryLen
            sequence += 1
            entries += 1
            i += chunk.count
        }
    }

    /// The log position an fsync starting now will make durable (generation and head).
    func mark() -> UInt64 { generation << 32 | head }

    /// Called after an fsync that started at `mark` completed: every entry applied before it is
    /// durable, so later entries need not replay them. Marks from before a wrap are ignored.
    func markFlushed(_ mark: UInt64) {
        guard mark >> 32 == generation else { return }
        let h = mark & 0xFFFF_FFFF
        if h > tail { tail = h == logLength ? 0 : h }
    }
}

import BlockCore

/// What an explanation needs to know about the image beyond the event: its format (how a
/// BAT entry is encoded) and QCOW2's cluster size (refcount indices are host clusters,
/// compressed descriptors depend on it).
public struct ExplainContext: Sendable {
    /// The image format.
    public var format: ImageFormat
    /// log2 of the QCOW2 cluster size (16 for 64 KiB); nil for other formats.
    public var clusterBits: Int?

    /// Creates a context.
    public init(format: ImageFormat = .raw, clusterBits: Int? = nil) {
        self.format = format
        self.clusterBits = clusterBits
    }
}

/// One-line explanations of events, for step mode and the event log, in plain words with
/// the image's real region kinds and metadata entries decoded.
public enum Explain {
    /// What the views call a refcount decrease ADR 0006 defers (the old cluster of a
    /// copy-on-write, a copied L2 table, a discarded cluster): the stored refcount stays
    /// above the references until a flush applies it, and that is not a leak.
    public static let releasePending = "release pending (next flush)"

    /// An id as shown everywhere (step mode, In-flight, Completions, the event log): a
    /// request's id (`req 0x4`) and a ring's user_data (`user_data 0x8000000000000003`) are
    /// both printed in hexadecimal, `0x…`, so the one form reads the same in every view.
    public static func tag(_ v: UInt64) -> String { hex(v) }

    /// A request as every view names it: `req 0x4`.
    public static func req(_ v: UInt64) -> String { "req \(hex(v))" }

    /// Explains an event: what happened, to which request, with offsets in hex. `op` is what
    /// the request is (from its `guestRequest` event, when known): a read's mapping is
    /// explained as a read, and a refcount drop inside a flush as a release that flush applies.
    public static func line(_ e: IoEvent, _ c: ExplainContext = ExplainContext(), op: GuestOp? = nil) -> String {
        let r = e.request != 0 ? "\(req(e.request)): " : ""
        switch e.payload {
        case let .guestRequest(op, offset, length):
            return "\(r)guest \(op) \(hex(offset))+\(length) accepted by queue \(e.queue)"
        case let .mappingResolved(offset, length, regions, kind, hostOffset):
            return "\(r)mapping \(hex(offset))+\(length): \(regions) region\(regions == 1 ? "" : "s"), \(mappingWords(kind, hostOffset, c, op: op))"
        case let .regionBefore(guestOffset, length, kind, hostOffset, refcount):
            return "\(r)region \(hex(guestOffset))+\(length) before this request: \(regionWords(kind, hostOffset, refcount))"
        case let .copyOnWrite(guestOffset, length, source, from, into):
            return "\(r)copy-on-write for guest \(hex(guestOffset))+\(length): \(cowWords(source, from, into, length))"
        case let .allocated(guestOffset, hostOffset, length):
            let unit = c.format == .vhdx ? "payload block" : c.format == .vpc ? "block" : "host cluster"
            return "\(r)allocate a new \(unit) at \(hex(hostOffset)) (\(length) bytes) for guest \(hex(guestOffset))"
        case let .tableUpdate(table, index, old, new):
            return r + tableWords(table, index, old, new, c, inFlush: op == .fsync)
        case let .sqeSubmitted(opcode, userData, hostOffset, length):
            return "\(r)SQE \(opcode) user_data \(tag(userData)) host \(hex(hostOffset))+\(length) submitted"
        case let .cqeReaped(opcode, userData, result, latencyNs):
            let res = result >= 0 ? "\(result) bytes" : "error \(errnoWords(-result))"
            return "\(r)CQE user_data \(tag(userData)) (\(opcode)): \(res) after \(formatDuration(latencyNs))"
        case let .cqDrain(batch):
            return "CQ drained: \(batch) completion\(batch == 1 ? "" : "s") at once"
        case let .fsyncPhase(phase):
            return r + phaseWords(phase)
        case let .pendingCreated(_, subOps):
            return "\(r)PendingIo tracks \(subOps) sub-operation\(subOps == 1 ? "" : "s") (\(e.request != 0 ? req(e.request) : "the request").1…\(subOps))"
        case let .pendingFinished(_, result):
            return "\(r)PendingIo finished: \(result == 0 ? "ok" : errnoWords(-result))"
        case let .guestCompleted(op, userData, result, latencyNs):
            let took = "in \(formatDuration(latencyNs)) (time held in step mode not counted)"
            if op == .fsync && result < 0 {
                return "\(req(userData)): flush FAILED with \(errnoWords(-result)) \(took): data and metadata are not known to be stable (the dirty tables stay dirty for the next flush)"
            }
            let res = result >= 0 ? "ok" : "FAILED with \(errnoWords(-result))"
            return "\(req(userData)): guest \(op) completed \(res) \(took)"
        }
    }

    /// An errno with its symbolic name and text: "ENOSPC (No space left on device)".
    public static func errnoWords(_ code: Int32) -> String {
        let names: [Int32: String] = [1: "EPERM", 2: "ENOENT", 4: "EINTR", 5: "EIO", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
                                      14: "EFAULT", 16: "EBUSY", 22: "EINVAL", 27: "EFBIG", 28: "ENOSPC", 30: "EROFS", 95: "EOPNOTSUPP",
                                      122: "EDQUOT", 125: "ECANCELED"]
        return "\(names[code] ?? "errno \(code)") (\(BlockError.errnoText(code)))"
    }

    /// The mapping a request found, in words: a read says where it reads from, a write where
    /// it writes; VHDX and VHD in their BAT's words, RAW as the identity mapping.
    static func mappingWords(_ kind: RegionKind, _ host: UInt64, _ c: ExplainContext = ExplainContext(), op: GuestOp? = nil) -> String {
        let reading = op == .read
        switch c.format {
        case .vhdx:
            switch kind {
            case .allocated, .shared:
                return "BAT: payload block at host \(hex(host)) (PAYLOAD_BLOCK_FULLY_PRESENT, or PARTIALLY_PRESENT with these sectors marked in the sector bitmap)" + (reading ? ": read from there" : op == nil ? "" : ": written there in place")
            case .zero: return "BAT: no payload here (PAYLOAD_BLOCK_NOT_PRESENT, ZERO, UNMAPPED or UNDEFINED): reads as zeroes"
            case .unallocated, .backing: return "BAT: PAYLOAD_BLOCK_PARTIALLY_PRESENT or NOT_PRESENT in a differencing image: these sectors come from the parent"
            case .compressed, .mixed: return "several BAT states (one per block), first at host \(hex(host))"
            }
        case .vpc:
            switch kind {
            case .allocated, .shared:
                return "VHD BAT entry: block data at host \(hex(host)) (its sector bitmap marks these sectors)" + (reading ? ": read from there" : op == nil ? "" : ": written there in place")
            case .zero: return "VHD BAT entry 0xFFFFFFFF (no block): reads as zeroes"
            case .unallocated, .backing: return "VHD BAT entry: sectors not in this image: read from the parent"
            case .compressed, .mixed: return "several blocks, first at host \(hex(host))"
            }
        case .raw:
            if kind == .allocated { return "RAW: guest offset = host offset \(hex(host))" + (reading ? ", read from there" : op == nil ? "" : ", written in place") }
        case .qcow2, .vmdk:
            break
        }
        switch kind {
        case .allocated:
            if reading { return "allocated in this image at host \(hex(host)) (its own cluster): the read goes to host \(hex(host))" }
            if op == nil { return "allocated in this image at host \(hex(host)) (its own cluster, refcount 1)" }
            return "allocated in this image at host \(hex(host)) (its own cluster, refcount 1: a write goes in place)"
        case .shared:
            if reading { return "shared at host \(hex(host)) (refcount > 1: a snapshot uses it too): the read goes to host \(hex(host))" }
            return "shared at host \(hex(host)) (refcount > 1: a snapshot uses it too, so a write copies it first)"
        case .backing: return "not allocated in this image: the backing file holds the data" + (reading ? ", so the read goes to the backing file" : "")
        case .unallocated: return "unallocated in this image and in its backing chain: reads as zeroes"
        case .zero: return "reads as zeroes (zero cluster)"
        case .compressed: return "compressed cluster at host \(hex(host))" + (reading ? ": the read decompresses it" : "")
        case .mixed: return "several kinds (one line per region follows), first at host \(hex(host))"
        }
    }

    /// One region's state before a write, zero or discard, in words.
    static func regionWords(_ kind: RegionKind, _ host: UInt64, _ refcount: UInt64) -> String {
        switch kind {
        case .allocated: return "allocated at host \(hex(host)), refcount \(refcount), COPIED (this image's own cluster)"
        case .shared: return "shared — host \(hex(host)) has refcount \(refcount) (a snapshot references it too; no COPIED flag)"
        case .backing: return "unallocated here; the backing file has the data"
        case .unallocated: return "unallocated here and in the backing chain (reads as zeroes)"
        case .zero: return "zero cluster (reads as zeroes, no data)"
        case .compressed: return "compressed, stored at host \(hex(host))"
        case .mixed: return "mixed"
        }
    }

    /// A copy-on-write fill, in words.
    static func cowWords(_ source: RegionKind, _ from: UInt64, _ into: UInt64, _ length: UInt64) -> String {
        switch source {
        case .backing: return "read \(length) bytes at guest \(hex(from)) from the backing file into host \(hex(into)) (backing read)"
        case .shared: return "copy \(length) bytes from the shared cluster at host \(hex(from)) to host \(hex(into)) (the snapshot keeps the old cluster)"
        case .allocated: return "copy \(length) bytes from host \(hex(from)) to host \(hex(into))"
        case .compressed: return "decompress the cluster at host \(hex(from)) and copy \(length) bytes of it to host \(hex(into))"
        case .zero, .unallocated, .mixed: return "fill \(length) bytes at host \(hex(into)) with zeroes"
        }
    }

    /// A metadata entry change, decoded. An L1 or L2 change that stops referencing a host
    /// cluster says its release is pending (docs/adr/0006); `inFlush`: a refcount drop in a
    /// flush is such a release, applied now.
    static func tableWords(_ table: MetadataTable, _ index: UInt64, _ old: UInt64, _ new: UInt64, _ c: ExplainContext, inFlush: Bool = false) -> String {
        switch table {
        case .refcount:
            let at = c.clusterBits.map { " at \(hex(index << UInt64($0)))" } ?? ""
            var why: String
            if new > old { why = old == 0 ? "newly allocated" : "one more reference" }
            else if new == 0 { why = "freed: nothing references it any more" }
            else { why = "one reference dropped, \(new) left" }
            if inFlush && new < old { why += "; the release that was pending, applied by this flush (the change that dropped the reference is stable)" }
            return "refcount of host cluster \(index)\(at): \(old) -> \(new) (\(why))"
        case .l1:
            let release = Qcow2DroppedReference.l2Table(old: old, new: new).map { "; old L2 table \(hex($0)): refcount \(releasePending)" } ?? ""
            return "L1[\(index)]: \(l1Words(old)) -> \(l1Words(new))\(release)"
        case .l2:
            return "L2[\(index)]: \(l2Words(old, c)) -> \(l2Words(new, c))\(l2Release(old, new, c))"
        case .refcountTable:
            return "refcount table[\(index)]: \(old == 0 ? "empty" : hex(old)) -> new refcount block at \(hex(new))"
        case .bat:
            return "BAT[\(index)]: \(batWords(old, c)) -> \(batWords(new, c))"
        case .header:
            return index == 48 ? "header: refcount table moved from \(hex(old)) to \(hex(new))" : "header field at byte \(index): \(hex(old)) -> \(hex(new))"
        }
    }

    /// "; old cluster 0x50000: refcount release pending (next flush)" when an L2 change stops
    /// referencing a host cluster (or a compressed cluster's bytes); empty otherwise.
    static func l2Release(_ old: UInt64, _ new: UInt64, _ c: ExplainContext) -> String {
        guard let d = Qcow2DroppedReference.data(old: old, new: new, clusterBits: c.clusterBits.map { UInt32($0) }) else { return "" }
        return "; old \(d.compressed ? "compressed bytes at" : "cluster") \(hex(d.offset)): refcount \(releasePending)"
    }

    /// A QCOW2 L1 entry: "empty", "L2 table at 0x40000 (COPIED)".
    public static func l1Words(_ e: UInt64) -> String {
        let off = e & Qcow2Entry.offsetMask
        if off == 0 { return "empty" }
        return "L2 table at \(hex(off)) (\(e & Qcow2Entry.copied != 0 ? "COPIED" : "shared with a snapshot"))"
    }

    /// A QCOW2 L2 entry (standard part): "unallocated", "zero", "data at 0x50000 (COPIED)",
    /// "compressed at 0x…".
    public static func l2Words(_ e: UInt64, _ c: ExplainContext = ExplainContext()) -> String {
        if e & Qcow2Entry.compressed != 0 {
            guard let bits = c.clusterBits else { return "compressed (\(hex(e)))" }
            let d = Qcow2CompressedDescriptor(entry: e & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: UInt32(bits))
            return "compressed at \(hex(d.hostOffset)) (\(d.length) bytes)"
        }
        let off = e & Qcow2Entry.offsetMask
        let flag = e & Qcow2Entry.copied != 0 ? "COPIED" : "shared, no COPIED"
        if e & Qcow2Entry.zero != 0 { return off == 0 ? "zero" : "zero, preallocated at \(hex(off)) (\(flag))" }
        if off == 0 { return "unallocated" }
        return "data at \(hex(off)) (\(flag))"
    }

    /// A BAT entry in the BAT's own words (BlockCore decodes it): a VHDX entry's MS-VHDX state
    /// and FileOffsetMB ("FULLY_PRESENT at 0x300000"), a VHD entry's sector number.
    static func batWords(_ e: UInt64, _ c: ExplainContext) -> String {
        if c.format == .vpc {
            return e == 0xffff_ffff ? "0xFFFFFFFF (no block)" : "sector \(e): block at host \(hex(e * 512))"
        }
        let entry = VhdxBatEntry(raw: e)
        let state = entry.state?.name ?? "invalid state \(e & 7)"
        return entry.fileOffset == 0 ? state : "\(state) at \(hex(entry.fileOffset))"
    }

    /// A flush phase, named.
    static func phaseWords(_ p: FsyncPhase) -> String {
        switch p {
        case .writingRefcountBlocks: return "flush: write the dirty refcount blocks (first, so no new cluster is used before its refcount is stable)"
        case .writingL2Tables: return "flush: write the dirty L2 tables (and refcount table entries)"
        case .writingRefcountTable: return "flush: write the changed refcount table entries"
        case .writingL1Table: return "flush: write the dirty L1 entries (last: they make new L2 tables reachable)"
        case .writingHeader: return "flush: write the image header"
        case .fuaFlush: return "FUA flush: data written; flushing within this same request (the reply waits until it is stable)"
        case .metadataWritten: return "flush: those metadata writes completed"
        case .fsyncSubmitted: return "flush: fdatasync submitted (data and the metadata written so far become stable)"
        case .completed: return "flush complete: data and metadata are stable"
        }
    }
}

/// A duration in ns as "812ns", "43.2µs", "1.50ms", "2.00s".
public func formatDuration(_ ns: UInt64) -> String {
    if ns < 1000 { return "\(ns)ns" }
    if ns < 1_000_000 { return fixed(Double(ns) / 1000, 1) + "µs" }
    if ns < 1_000_000_000 { return fixed(Double(ns) / 1e6, 2) + "ms" }
    return fixed(Double(ns) / 1e9, 2) + "s"
}

/// A byte count as "512 B", "64.0 KiB", "1.50 GiB".
public func formatBytes(_ v: Double) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var x = v
    var i = 0
    while x >= 1024 && i < units.count - 1 { x /= 1024; i += 1 }
    return i == 0 ? "\(Int(x)) B" : fixed(x, x < 10 ? 2 : 1) + " " + units[i]
}

/// `v` with `digits` decimals (no Foundation formatting).
func fixed(_ v: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let n = Int64((v * scale).rounded())
    let ip = n / Int64(scale), fp = abs(n % Int64(scale))
    if digits == 0 { return "\(ip)" }
    var f = String(fp)
    while f.count < digits { f = "0" + f }
    return "\(n < 0 && ip == 0 ? "-" : "")\(ip).\(f)"
}

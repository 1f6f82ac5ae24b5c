import BlockCore
import BlockInspect

/// What an explanation needs to know about the image beyond the event: its format's words
/// (how a table entry reads, what a mapping means there, what a new unit is called), which
/// the block layer's inspector registry supplies.
package struct ExplainContext: Sendable {
    /// The format's words.
    package var words: any FormatEventWords

    /// A context with `words` (an identity-mapped image's by default).
    package init(words: any FormatEventWords = IdentityEventWords()) {
        self.words = words
    }
}

/// One-line explanations of events, for step mode and the event log, in plain words with
/// the image's real region kinds and metadata entries decoded.
package enum Explain {
    /// What the views call a refcount decrease ADR 0006 defers (the old cluster of a
    /// copy-on-write, a copied L2 table, a discarded cluster): the stored refcount stays
    /// above the references until a flush applies it, and that is not a leak.
    package static let releasePending = InspectWords.releasePending

    /// An id as shown everywhere (step mode, In-flight, Completions, the event log): a
    /// request's id (`req 0x4`) and a ring's user_data (`user_data 0x8000000000000003`) are
    /// both printed in hexadecimal, `0x…`, so the one form reads the same in every view.
    package static func tag(_ v: UInt64) -> String { hex(v) }

    /// A request as every view names it: `req 0x4`.
    package static func req(_ v: UInt64) -> String { "req \(hex(v))" }

    /// Explains an event: what happened, to which request, with offsets in hex. `op` is what
    /// the request is (from its `guestRequest` event, when known): a read's mapping is
    /// explained as a read, and a refcount drop inside a flush as a release that flush applies.
    package static func line(_ e: IoEvent, _ c: ExplainContext = ExplainContext(), op: GuestOp? = nil) -> String {
        let r = e.request != 0 ? "\(req(e.request)): " : ""
        switch e.payload {
        case let .guestRequest(op, offset, length):
            return "\(r)guest \(op) \(hex(offset))+\(length) accepted by queue \(e.queue)"
        case let .mappingResolved(offset, length, regions, kind, hostOffset):
            return "\(r)mapping \(hex(offset))+\(length): \(regions) region\(regions == 1 ? "" : "s"), \(mappingWords(kind, hostOffset, c, op: op))"
        case let .regionBefore(guestOffset, length, kind, hostOffset, refcount):
            return "\(r)region \(hex(guestOffset))+\(length) before this request: \(regionWords(kind, hostOffset, refcount, c))"
        case let .copyOnWrite(guestOffset, length, source, from, into):
            return "\(r)copy-on-write for guest \(hex(guestOffset))+\(length): \(cowWords(source, from, into, length))"
        case let .allocated(guestOffset, hostOffset, length):
            let unit = c.words.allocationUnit
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
                case let .virtqueue(stage, head, value):
            return r + VirtqWords.stage(stage, head: head, value: value)
        }
    }

    /// An errno with its symbolic name and text: "ENOSPC (No space left on device)".
    package static func errnoWords(_ code: Int32) -> String {
        let names: [Int32: String] = [1: "EPERM", 2: "ENOENT", 4: "EINTR", 5: "EIO", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
                                      14: "EFAULT", 16: "EBUSY", 22: "EINVAL", 27: "EFBIG", 28: "ENOSPC", 30: "EROFS", 95: "EOPNOTSUPP",
                                      122: "EDQUOT", 125: "ECANCELED"]
        return "\(names[code] ?? "errno \(code)") (\(BlockError.errnoText(code)))"
    }

    /// The mapping a request found, in words: a read says where it reads from, a write where
    /// it writes; in the format's own words where it has them (a BAT's states, an identity
    /// mapping, clusters and refcounts), else in words every format shares.
    static func mappingWords(_ kind: RegionKind, _ host: UInt64, _ c: ExplainContext = ExplainContext(), op: GuestOp? = nil) -> String {
        let reading = op == .read
        if let w = c.words.mappingWords(kind, host: host, op: op) { return w }
        switch kind {
        case .allocated:
            if reading { return "stored in this image at host \(hex(host)): the read goes there" }
            return "stored in this image at host \(hex(host))" + (op == nil ? "" : ": a write goes in place")
        case .shared:
            if reading { return "shared at host \(hex(host)) (another owner uses it too): the read goes there" }
            return "shared at host \(hex(host)) (another owner uses it too, so a write copies it first)"
        case .backing: return "not allocated in this image: the backing file holds the data" + (reading ? ", so the read goes to the backing file" : "")
        case .unallocated: return "unallocated in this image and in its backing chain: reads as zeroes"
        case .zero: return "reads as zeroes"
        case .compressed: return "compressed at host \(hex(host))" + (reading ? ": the read decompresses it" : "")
        case .mixed: return "several kinds (one line per region follows), first at host \(hex(host))"
        }
    }

    /// One region's state before a write, zero or discard, in words: the format's where it
    /// has them (refcounts and COPIED flags), else words every format shares.
    static func regionWords(_ kind: RegionKind, _ host: UInt64, _ refcount: UInt64, _ c: ExplainContext = ExplainContext()) -> String {
        if let w = c.words.regionWords(kind, host: host, refcount: refcount) { return w }
        switch kind {
        case .allocated: return "stored in this image at host \(hex(host))"
        case .shared: return "shared — host \(hex(host)) has \(refcount) owners"
        case .backing: return "unallocated here; the backing file has the data"
        case .unallocated: return "unallocated here and in the backing chain (reads as zeroes)"
        case .zero: return "reads as zeroes, no data"
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
            let at = c.words.hostUnitBits.map { " at \(hex(index << UInt64($0)))" } ?? ""
            var why: String
            if new > old { why = old == 0 ? "newly allocated" : "one more reference" }
            else if new == 0 { why = "freed: nothing references it any more" }
            else { why = "one reference dropped, \(new) left" }
            if inFlush && new < old { why += "; the release that was pending, applied by this flush (the change that dropped the reference is stable)" }
            return "refcount of host cluster \(index)\(at): \(old) -> \(new) (\(why))"
        case .l1, .l2, .bat:
            let name = c.words.tableName(table) ?? "\(table)"
            func words(_ v: UInt64) -> String { c.words.entryWords(table, v) ?? hex(v) }
            return "\(name)[\(index)]: \(words(old)) -> \(words(new))\(c.words.releaseWords(table, old: old, new: new))"
        case .refcountTable:
            return "refcount table[\(index)]: \(old == 0 ? "empty" : hex(old)) -> new refcount block at \(hex(new))"
        case .header:
            return index == 48 ? "header: refcount table moved from \(hex(old)) to \(hex(new))" : "header field at byte \(index): \(hex(old)) -> \(hex(new))"
        }
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
package func formatDuration(_ ns: UInt64) -> String {
    if ns < 1000 { return "\(ns)ns" }
    if ns < 1_000_000 { return fixed(Double(ns) / 1000, 1) + "µs" }
    if ns < 1_000_000_000 { return fixed(Double(ns) / 1e6, 2) + "ms" }
    return fixed(Double(ns) / 1e9, 2) + "s"
}

/// `v` with `digits` decimals (no Foundation formatting).
func fixed(_ v: Double, _ digits: Int) -> String { fixedDecimals(v, digits) }

import BlockCore

/// One-line explanations of events, for step mode and the event log.
public enum Explain {
    /// A ring user_data as shown everywhere (event log, step text, In-flight tree): hexadecimal,
    /// `0x…`, whatever the engine encodes in it; guest requests are `req N` in decimal.
    public static func tag(_ v: UInt64) -> String { hex(v) }

    /// Explains an event: what happened, to which request, with offsets in hex.
    public static func line(_ e: IoEvent) -> String {
        let r = e.request != 0 ? "req \(e.request): " : ""
        switch e.payload {
        case let .guestRequest(op, offset, length):
            return "\(r)guest \(op) \(hex(offset))+\(length) accepted by queue \(e.queue)"
        case let .mappingResolved(offset, length, regions, kind, hostOffset):
            let what: String
            switch kind {
            case .allocated: what = "already allocated at host \(hex(hostOffset))"
            case .zero: what = "reads as zeroes (zero cluster)"
            case .unallocated: what = "not allocated here (backing file or zeroes)"
            case .compressed: what = "compressed cluster at host \(hex(hostOffset))"
            case .mixed: what = "mixed regions, first at host \(hex(hostOffset))"
            }
            return "\(r)mapping \(hex(offset))+\(length): \(regions) region\(regions == 1 ? "" : "s"), \(what)"
        case let .allocated(guestOffset, hostOffset, length):
            return "\(r)allocate \(length) bytes for guest \(hex(guestOffset)) at host \(hex(hostOffset))"
        case let .tableUpdate(table, index, old, new):
            switch table {
            case .refcount:
                return "\(r)refcount of host cluster \(index): \(old) -> \(new)"
            case .l1, .l2:
                return "\(r)\(table == .l1 ? "L1" : "L2")[\(index)] \(old == 0 ? "empty" : hex(old)) -> \(hex(new))"
            case .refcountTable:
                return "\(r)refcount table[\(index)] \(hex(old)) -> new refcount block at \(hex(new))"
            case .bat:
                return "\(r)BAT[\(index)] \(hex(old)) -> \(hex(new))"
            case .header:
                return "\(r)header field \(index) \(hex(old)) -> \(hex(new))"
            }
        case let .sqeSubmitted(opcode, userData, hostOffset, length):
            return "\(r)SQE \(opcode) user_data \(tag(userData)) host \(hex(hostOffset))+\(length) submitted"
        case let .cqeReaped(opcode, userData, result, latencyNs):
            let res = result >= 0 ? "\(result) bytes" : "error \(BlockError.errnoText(-result))"
            return "\(r)CQE user_data \(tag(userData)) (\(opcode)): \(res) after \(formatDuration(latencyNs))"
        case let .cqDrain(batch):
            return "CQ drained: \(batch) completion\(batch == 1 ? "" : "s") at once"
        case let .fsyncPhase(phase):
            switch phase {
            case .metadataWritten: return "\(r)flush: dirty metadata written"
            case .fsyncSubmitted: return "\(r)flush: IORING_OP_FSYNC submitted"
            case .completed: return "\(r)flush complete: data and metadata are stable"
            }
        case let .pendingCreated(id, subOps):
            _ = id
            return "\(r)PendingIo tracks \(subOps) sub-operation\(subOps == 1 ? "" : "s") (\(e.request != 0 ? "req \(e.request)" : "the request").1…\(subOps))"
        case let .pendingFinished(id, result):
            _ = id
            return "\(r)PendingIo finished: \(result == 0 ? "ok" : BlockError.errnoText(-result))"
        case let .guestCompleted(op, userData, result, latencyNs):
            let res = result >= 0 ? "ok" : "failed: \(BlockError.errnoText(-result))"
            return "req \(userData): guest \(op) completed \(res) in \(formatDuration(latencyNs))"
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

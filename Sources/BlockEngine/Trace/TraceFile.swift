import BlockIO
import Foundation

/// How a traced write's data can be regenerated.
package enum TraceFill: Sendable, Equatable {
    /// No data (reads, trims, flushes).
    case none
    /// ``BlockPattern/fill(_:seed:)`` with this seed.
    case random(seed: UInt64)
    /// ``BlockPattern/fillVerified(_:offset:seed:kind:)`` with this seed.
    case verified(seed: UInt64, kind: VerifyKind)

    /// Writes the data into `buffer` for a request at `offset`.
    public func fill(_ buffer: UnsafeMutableRawBufferPointer, offset: UInt64) {
        switch self {
        case .none: break
        case let .random(seed): BlockPattern.fill(buffer, seed: seed)
        case let .verified(seed, kind): BlockPattern.fillVerified(buffer, offset: offset, seed: seed, kind: kind)
        }
    }
}

/// One guest request in a trace: when it was issued, by which queue, and its data.
public struct TraceRequest: Sendable, Equatable {
    /// Nanoseconds from the start of the run to the request's submission.
    public var time: UInt64
    /// The queue that issued it.
    public var queue: Int
    /// The operation.
    package var op: PlannedOp
    /// Guest offset.
    public var offset: UInt64
    /// Length in bytes.
    public var length: UInt64
    /// How to regenerate a write's data.
    package var fill: TraceFill

    /// Creates a trace request.
    package init(time: UInt64, queue: Int, op: PlannedOp, offset: UInt64, length: UInt64, fill: TraceFill) {
        self.time = time
        self.queue = queue
        self.op = op
        self.offset = offset
        self.length = length
        self.fill = fill
    }
}

/// The JSON Lines trace format of `run --trace` and `replay`.
///
/// The first line is a header (`"type":"header"`, image path, size, format); then one
/// `"type":"req"` line per guest request in submission order; with `--trace-detail`,
/// `"type":"event"` lines for every engine event. Overlapping requests are never in
/// flight together in a traced run, so replaying the requests in order with the same
/// overlap rule reproduces the final image.
public enum TraceFile {
    static let opNames: [PlannedOp: String] = [.read: "read", .write: "write", .trim: "trim", .fsync: "fsync"]

    /// The header line.
    public static func header(image: String, size: UInt64, format: ImageFormat) -> String {
        JSONValue.object([("type", .string("header")), ("version", .int(1)), ("image", .string(image)),
                          ("size", .size(size)), ("format", .string(format.rawValue))]).render(pretty: false)
    }

    /// One request as a line.
    public static func line(_ r: TraceRequest) -> String {
        var kv: [(String, JSONValue)] = [("type", .string("req")), ("t", .size(r.time)), ("q", .int(Int64(r.queue))),
                                         ("op", .string(opNames[r.op]!)), ("off", .size(r.offset)), ("len", .size(r.length))]
        switch r.fill {
        case .none: break
        case let .random(seed): kv += [("fill", .string("random")), ("seed", .size(seed))]
        case let .verified(seed, kind): kv += [("fill", .string("verify-" + kind.rawValue)), ("seed", .size(seed))]
        }
        return JSONValue.object(kv).render(pretty: false)
    }

    /// One engine event as a line (`t` relative to `start`).
    public static func line(_ e: IoEvent, start: UInt64) -> String {
        var kv: [(String, JSONValue)] = [("type", .string("event")), ("t", .size(e.time &- start)),
                                         ("q", .int(Int64(e.queue))), ("req", .size(e.request))]
        switch e.payload {
        case let .guestRequest(op, offset, length):
            kv += [("kind", .string("guestRequest")), ("op", .string("\(op)")), ("off", .size(offset)), ("len", .size(length))]
        case let .mappingResolved(offset, length, regions, kind, hostOffset):
            kv += [("kind", .string("mappingResolved")), ("off", .size(offset)), ("len", .size(length)), ("regions", .int(Int64(regions))),
                   ("region", .string("\(kind)")), ("host", .size(hostOffset))]
        case let .allocated(guestOffset, hostOffset, length):
            kv += [("kind", .string("allocated")), ("off", .size(guestOffset)), ("host", .size(hostOffset)), ("len", .size(length))]
        case let .tableUpdate(table, index, old, new):
            kv += [("kind", .string("tableUpdate")), ("table", .string("\(table)")), ("index", .size(index)), ("old", .size(old)), ("new", .size(new))]
        case let .sqeSubmitted(opcode, userData, hostOffset, length):
            kv += [("kind", .string("sqeSubmitted")), ("opcode", .string("\(opcode)")), ("user_data", .size(userData)), ("host", .size(hostOffset)), ("len", .size(length))]
        case let .cqeReaped(opcode, userData, result, latencyNs):
            kv += [("kind", .string("cqeReaped")), ("opcode", .string("\(opcode)")), ("user_data", .size(userData)), ("res", .int(Int64(result))), ("lat_ns", .size(latencyNs))]
        case let .cqDrain(batch):
            kv += [("kind", .string("cqDrain")), ("batch", .int(Int64(batch)))]
        case let .fsyncPhase(phase):
            kv += [("kind", .string("fsyncPhase")), ("phase", .string("\(phase)"))]
        case let .pendingCreated(id, subOps):
            kv += [("kind", .string("pendingCreated")), ("id", .size(id)), ("sub_ops", .int(Int64(subOps)))]
        case let .pendingFinished(id, result):
            kv += [("kind", .string("pendingFinished")), ("id", .size(id)), ("res", .int(Int64(result)))]
        case let .guestCompleted(op, userData, result, latencyNs):
            kv += [("kind", .string("guestCompleted")), ("op", .string("\(op)")), ("user_data", .size(userData)), ("res", .int(Int64(result))), ("lat_ns", .size(latencyNs))]
        case let .regionBefore(guestOffset, length, kind, hostOffset, refcount):
            kv += [("kind", .string("regionBefore")), ("off", .size(guestOffset)), ("len", .size(length)), ("region", .string("\(kind)")),
                   ("host", .size(hostOffset)), ("refcount", .size(refcount))]
        case let .copyOnWrite(guestOffset, length, source, from, into):
            kv += [("kind", .string("copyOnWrite")), ("off", .size(guestOffset)), ("len", .size(length)), ("source", .string("\(source)")),
                   ("from", .size(from)), ("host", .size(into))]
        case let .virtqueue(stage, head, value):
            kv += [("kind", .string("virtqueue")), ("stage", .string("\(stage)")), ("head", .int(Int64(head))), ("value", .size(UInt64(value)))]
        }
        return JSONValue.object(kv).render(pretty: false)
    }

    /// Reads the requests of a trace file (header and event lines are skipped).
    public static func readRequests(_ path: String) throws(BlockError) -> [TraceRequest] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) }
        catch { throw BlockError(.notFound, "cannot read trace: \(error.localizedDescription)", path: path) }
        var out: [TraceRequest] = []
        let ops = Dictionary(uniqueKeysWithValues: opNames.map { ($0.value, $0.key) })
        for (i, raw) in text.split(separator: "\n").enumerated() {
            if !raw.contains("\"req\"") { continue }
            let v: JSONValue
            do { v = try JSONValue.parse(String(raw)) } catch { throw BlockError(.invalidArgument, "line \(i + 1): \(error.message)", path: path) }
            guard v["type"]?.stringValue == "req" else { continue }
            func num(_ k: String) throws(BlockError) -> UInt64 {
                guard let n = v[k]?.intValue, n >= 0 else { throw BlockError(.invalidArgument, "line \(i + 1): missing or bad '\(k)'", path: path) }
                return UInt64(n)
            }
            guard let opName = v["op"]?.stringValue, let op = ops[opName] else {
                throw BlockError(.invalidArgument, "line \(i + 1): missing or unknown 'op'", path: path)
            }
            var fill = TraceFill.none
            if let f = v["fill"]?.stringValue {
                let seed = try num("seed")
                if f == "random" { fill = .random(seed: seed) }
                else if f.hasPrefix("verify-"), let k = VerifyKind(rawValue: String(f.dropFirst(7))) { fill = .verified(seed: seed, kind: k) }
                else { throw BlockError(.invalidArgument, "line \(i + 1): unknown fill '\(f)'", path: path) }
            }
            out.append(TraceRequest(time: try num("t"), queue: Int(try num("q")), op: op, offset: try num("off"), length: try num("len"), fill: fill))
        }
        return out
    }
}

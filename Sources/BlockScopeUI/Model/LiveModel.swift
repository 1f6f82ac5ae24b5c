import BlockCore

/// An SQE as the in-flight view shows it.
package struct SqeState: Sendable {
    /// The SQE's user_data.
    package var userData: UInt64
    /// Its opcode.
    package var opcode: IoOpcode
    /// Host offset.
    package var hostOffset: UInt64
    /// Length in bytes.
    package var length: UInt64
    /// When it was submitted (monotonic ns).
    package var submitted: UInt64
    /// The CQE result once reaped.
    package var result: Int32?
}

/// A PendingIo tracker: one guest request split into sub-operations.
package struct PendingState: Sendable {
    /// Tracker id.
    package var id: UInt64
    /// Sub-operations it waits for.
    package var subOps: Int
    /// Its result once finished.
    package var result: Int32?
}

/// A guest request the engine accepted and has not completed.
package struct GuestRequestState: Sendable {
    /// The request's userData.
    package var request: UInt64
    /// The queue it runs on.
    package var queue: Int32
    /// The operation.
    package var op: GuestOp
    /// Guest offset.
    package var offset: UInt64
    /// Length in bytes.
    package var length: UInt64
    /// When it was accepted (monotonic ns).
    package var started: UInt64
    /// How the request's range mapped before it, once resolved: (kind, regions, first host offset).
    package var resolved: (kind: RegionKind, regions: Int, host: UInt64)?
    /// The first new host cluster allocated for it (a write into unallocated, backing or
    /// shared clusters), once the allocation event arrived.
    package var newHost: UInt64?
    /// The mapping summary once resolved (formatted when drawn, not per event): what the
    /// range was, and where its data goes when that is a new cluster.
    package var mapping: String? {
        guard let m = resolved else { return nil }
        var t = "\(m.kind)\(m.regions == 1 ? "" : " (\(m.regions) regions)")"
        if m.host != 0 { t += " at host \(hex(m.host))" }
        if let n = newHost { t += " → new cluster at host \(hex(n))" }
        return t
    }
    /// PendingIo trackers.
    package var pending: [PendingState] = []
    /// SQEs submitted for it.
    package var sqes: [SqeState] = []
}

/// Everything the live views draw, folded from the engine's event stream on the UI thread.
///
/// ``apply(_:)`` is cheap and bounded: in-flight maps drop finished requests, histories are
/// fixed-size rings, so a long workload never grows the UI's memory.
package final class LiveModel {
    /// Requests in flight by their userData.
    package private(set) var inFlight: [UInt64: GuestRequestState] = [:]
    /// Batch sizes of the last CQ drains (newest last, at most 240).
    package private(set) var drainBatches: [Int] = []
    /// Completions per 100 ms tick (newest last, at most 240): the sparkline.
    package private(set) var completionsPerTick: [Int] = [0]
    /// Completion latencies by window: the last second's samples and the whole run's
    /// histograms, each split by direction (see ``LatencyWindows``).
    package private(set) var latency = LatencyWindows()
    /// How explanations decode this image's entries (set by the app from the image).
    package var context = ExplainContext()
    /// Guest ranges written this session.
    package private(set) var writtenGuest = WrittenMap()
    /// Host ranges written this session (data and metadata).
    package private(set) var writtenHost = WrittenMap()
    /// Explained events and messages, newest last (at most 500); events are explained
    /// when read, so folding an event costs no string formatting.
    package var log: [String] { logRing.elements.map { $0.text(context) } }
    /// The newest `n` log lines, oldest first.
    package func logTail(_ n: Int, skippingNewest skip: Int = 0) -> [String] {
        let all = logRing.elements
        let end = max(0, all.count - skip)
        return all[max(0, end - n)..<end].map { $0.text(context) }
    }
    /// Log lines held.
    package var logCount: Int { logRing.count }
    private var logRing = Ring<LogEntry>(capacity: 500)
    /// Total events applied.
    package private(set) var eventCount: UInt64 = 0
    /// Bumped whenever an event says metadata or allocation changed (views reload lazily).
    package private(set) var metadataVersion = 0
    /// Completion events seen (the stream drops events under load: the exact count is
    /// ``QueueRates/completed``, from the engine's counters).
    package private(set) var completedRequests: UInt64 = 0
    /// The slowest requests completed this session (at most 5, slowest first), from the
    /// completion events seen.
    package private(set) var slowest: [CompletedRequest] = []
    private var tickStart: UInt64 = 0

    /// Creates an empty model.
    package init() {}

    /// Folds one event into the model.
    package func apply(_ e: IoEvent) {
        eventCount += 1
        // What the request is, so its log line explains a read as a read (kept with the event).
        var op = inFlight[e.request]?.op
        if case let .guestRequest(o, _, _) = e.payload { op = o }
        switch e.payload {
        case let .guestRequest(op, offset, length):
            inFlight[e.request] = GuestRequestState(request: e.request, queue: e.queue, op: op, offset: offset, length: length, started: e.time)
            if op == .write || op == .zero || op == .discard { writtenGuest.insert(offset, length: max(length, 1)) }
        case let .mappingResolved(_, _, regions, kind, hostOffset):
            inFlight[e.request]?.resolved = (kind, regions, hostOffset)
        case let .allocated(_, hostOffset, length):
            writtenHost.insert(hostOffset, length: length)
            metadataVersion += 1
            if inFlight[e.request]?.newHost == nil { inFlight[e.request]?.newHost = hostOffset }
        case .regionBefore, .copyOnWrite, .virtqueue:
            break
        case .tableUpdate:
            metadataVersion += 1
        case let .sqeSubmitted(opcode, userData, hostOffset, length):
            inFlight[e.request]?.sqes.append(SqeState(userData: userData, opcode: opcode, hostOffset: hostOffset, length: length, submitted: e.time))
            if opcode == .writev { writtenHost.insert(hostOffset, length: length) }
        case let .cqeReaped(_, userData, result, _):
            if let i = inFlight[e.request]?.sqes.firstIndex(where: { $0.userData == userData }) {
                inFlight[e.request]?.sqes[i].result = result
            }
        case let .cqDrain(batch):
            push(&drainBatches, batch, limit: 240)
        case .fsyncPhase:
            break
        case let .pendingCreated(id, subOps):
            inFlight[e.request]?.pending.append(PendingState(id: id, subOps: subOps))
        case let .pendingFinished(id, result):
            if let i = inFlight[e.request]?.pending.firstIndex(where: { $0.id == id }) {
                inFlight[e.request]?.pending[i].result = result
            }
        case let .guestCompleted(op, userData, result, latencyNs):
            let key = inFlight[e.request] != nil ? e.request : userData
            if slowest.count < 5 || latencyNs > slowest[slowest.count - 1].latencyNs, let r = inFlight[key] {
                slowest.append(CompletedRequest(request: r.request, queue: r.queue, op: r.op, offset: r.offset, length: r.length, latencyNs: latencyNs, failed: result < 0))
                slowest.sort { $0.latencyNs > $1.latencyNs }
                if slowest.count > 5 { slowest.removeLast() }
            }
            completedRequests += 1
            latency.record(time: e.time, latencyNs: latencyNs, op: op)
            completionsPerTick[completionsPerTick.count - 1] += 1
            inFlight[key] = nil
        }
        logRing.append(.event(e, op))
    }

    /// What request `request` is (read, write, flush, ...) while it is in flight.
    package func op(of request: UInt64) -> GuestOp? { inFlight[request]?.op }

    /// Keeps only the requests the engine still holds (its exact snapshot, taken after the
    /// events were drained): a request whose completion event was dropped leaves here too.
    package func retainInFlight(_ held: Set<UInt64>) {
        if inFlight.count > held.count || inFlight.keys.contains(where: { !held.contains($0) }) {
            inFlight = inFlight.filter { held.contains($0.key) }
        }
    }

    /// Advances time: closes the 100 ms sparkline tick and drops stale event-only entries.
    package func tick(now: UInt64 = monotonicNanos()) {
        if tickStart == 0 { tickStart = now }
        while now - tickStart >= 100_000_000 {
            tickStart += 100_000_000
            push(&completionsPerTick, 0, limit: 240)
        }
        // Events are lossy: a request whose completion was dropped would stay forever.
        if inFlight.count > 4096 {
            inFlight = inFlight.filter { now &- $0.value.started < 2_000_000_000 }
            if inFlight.count > 4096 {
                let keep = inFlight.values.sorted { $0.started > $1.started }.prefix(2048)
                inFlight = Dictionary(uniqueKeysWithValues: keep.map { ($0.request, $0) })
            }
        }
    }

    /// Starts the "whole job" window afresh (a job started).
    package func resetWholeWindow(now: UInt64 = monotonicNanos()) { latency.resetWhole(now: now) }

    /// Adds a line to the log (command output, messages).
    package func note(_ line: String) { logRing.append(.text(line)) }

    private func push<T>(_ a: inout [T], _ v: T, limit: Int) {
        a.append(v)
        if a.count > limit { a.removeFirst(a.count - limit) }
    }
}

/// A log line: an event explained on demand, or a message.
enum LogEntry {
    case event(IoEvent, GuestOp?)
    case text(String)

    func text(_ c: ExplainContext) -> String {
        switch self {
        case let .event(e, op): return Explain.line(e, c, op: op)
        case let .text(t): return t
        }
    }
}

/// A fixed-capacity ring that overwrites its oldest element (O(1) append).
struct Ring<T> {
    private var storage: [T] = []
    private var next = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    mutating func append(_ v: T) {
        if storage.count < capacity { storage.append(v) } else { storage[next] = v }
        next = (next + 1) % capacity
    }

    var count: Int { storage.count }

    /// Oldest first.
    var elements: [T] {
        storage.count < capacity ? storage : Array(storage[next...] + storage[..<next])
    }
}

/// A finished guest request, as the slowest-N list shows it.
package struct CompletedRequest: Sendable, Equatable {
    /// The request's id (its tag).
    package var request: UInt64
    /// The queue that ran it.
    package var queue: Int32
    /// What it was.
    package var op: GuestOp
    /// Guest offset and length in bytes.
    package var offset: UInt64, length: UInt64
    /// From acceptance to completion, in nanoseconds (time held in step mode left out).
    package var latencyNs: UInt64
    /// Whether it failed.
    package var failed: Bool
}

import DequeModule

/// The request lifecycle every ``AsyncIo`` queue shares (RAW, QCOW2, VHDX/VHD, sync):
/// accepting a guest request under its one id (the guest's `userData`), its ``PendingIo``
/// tracker when it splits into sub-operations, completion exactly once, the ready deque
/// ``AsyncIo/nextCompletion()`` hands back, the standard events, and the queue's entry in an
/// ``InFlightRegistry``. A format's queue supplies only the mapping and its metadata steps.
///
/// The standard events, identical in every engine:
/// - `guestRequest` when a request is accepted (``accept(_:offset:length:userData:)``);
/// - `pendingCreated`/`pendingFinished` with the request's own id (its `userData`), when a
///   request splits into more than one sub-operation;
/// - for a flush, `fsyncPhase` `.metadataWritten`, `.fsyncSubmitted`, `.completed`, each
///   exactly once and in that order on success (``fsyncPhase(_:_:)`` fills skipped phases;
///   a failed flush reports no `.completed`, only its failed `guestCompleted`);
/// - `guestCompleted` last, with `result` = the request's length in bytes for read, write,
///   zero and discard (0 for a flush) or -errno, and the latency since acceptance.
///
/// ``IoCompletion/bytes`` follows the same rule. Owned by the queue's thread; only the
/// registry table is shared (one uncontended mutex per accept and per completion, and only
/// when the queue was made with a registry). With a registry the completion also reads the
/// clock and counts itself in the queue's ``QueueFigures`` under that same lock (a few
/// additions and one histogram increment: the figures the views show, which never drop).
///
/// Force unit access (``armForceUnitAccess(_:)``): a write, zero or discard armed so is one
/// request whose completion waits for a flush. When its data part completes without error
/// the core starts the queue's own flush under the same id (``flushStarter``, from the next
/// ``next(refill:)``); that flush is a continuation, not a request: no acceptance, no
/// registry entry, no count. Its events are `fsyncPhase(.fuaFlush)` then the flush's
/// phases, and the request's one `guestCompleted` (as the write, with its latency since the
/// write's acceptance) comes after the flush, with the flush's error if it failed.
///
/// A request in parts (``beginParts(_:op:length:)``): a front end that carries out one
/// client request as several queue requests under one id (an NBD NO_HOLE WRITE_ZEROES as
/// 1 MiB writes of a zero buffer) makes them one request here: the first part is accepted
/// as the whole request (its kind and length, one registry entry, one `guestRequest`), the
/// other parts join it unaccepted, and one completion with the whole length (or the first
/// part's error) is handed back, counted once, when ``endParts(_:)`` has been called and
/// every part has completed. A force unit access arm before the first part applies to the
/// whole: its flush starts after the last part.
package final class QueueCore {
    /// The queue's number, stamped on its events and registry entries.
    public let queueID: Int32
    /// Where events go; nil costs one branch per event.
    public let sink: (any IoEventSink)?
    /// The image path completion errors name.
    package let path: String
    private var ready: Deque<IoCompletion> = []
    private var accepted = 0
    private var nextTrackerID: UInt64 = 1
    private let registry: InFlightRegistry?
    private let table: InFlightRegistry.Table?
    private let frontEnd: FrontEndQueue?
    /// Flushes in progress and how many phases of the standard sequence each published
    /// (flushes are rare: a small array).
    private var flushes: [(userData: UInt64, published: UInt8)] = []
    /// Starts the queue's own flush of request `userData` and submits it: what a force unit
    /// access request runs after its data part (each queue sets it when it is made).
    package var flushStarter: ((UInt64) throws(BlockError) -> Void)?
    /// Force unit access requests in progress: what to complete them as, and whether their
    /// flush has started.
    private var fua: [UInt64: (op: GuestOp, length: UInt64, start: UInt64, flushing: Bool)] = [:]
    /// The request armed by ``armForceUnitAccess(_:)`` and not yet accepted.
    private var fuaArmed: UInt64?
    /// Force unit access requests whose data part completed and whose flush is to start.
    private var fuaDue: [UInt64] = []
    /// The request whose flush continuation is being started (its `accept` is not a request).
    private var continuing: UInt64?
    /// Requests in parts (``beginParts(_:op:length:)``) not yet complete.
    private var parts: [UInt64: Parts] = [:]
    /// Whether an armed request, a continuation or a request in parts is pending (one
    /// branch on the hot path).
    private var special = false

    /// One request in parts: what it is as a whole, and its parts so far.
    private struct Parts {
        var op: GuestOp
        var length: UInt64
        var start: UInt64 = 0
        var accepted = false
        var outstanding = 0
        var closed = false
        var error: BlockError? = nil
    }

    private func updateSpecial() {
        special = fuaArmed != nil || continuing != nil || !parts.isEmpty
    }

    /// Creates the core of one queue made with `options` over the image at `path`; the queue
    /// joins `options.inFlightRegistry` until ``close()``.
    public init(options: QueueOptions, path: String) {
        queueID = Int32(truncatingIfNeeded: options.queueID)
        sink = options.eventSink
        self.path = path
        registry = options.inFlightRegistry
        frontEnd = options.inFlightRegistry == nil ? nil : options.frontEnd
        table = registry?.join(options)
    }

    deinit { if let table { registry?.leave(table) } }

    /// Whether the queue publishes events (formats skip building event payloads otherwise).
    @inline(__always)
    public var publishes: Bool { sink != nil }

    /// Guest requests accepted and not yet returned by ``next(refill:)``.
    public var inFlight: Int { accepted }

    /// Accepts a guest request: counts it, records it in the registry, publishes
    /// `guestRequest`. Returns the time read (monotonic ns), or 0 when neither events nor a
    /// registry want one (the headless hot path reads no clock here).
    @inline(__always)
    @discardableResult
    public func accept(_ op: GuestOp, offset: UInt64, length: UInt64, userData: UInt64) -> UInt64 {
        if special, let t = acceptSpecial(op, offset, length, userData) { return t }
        accepted += 1
        if sink == nil && table == nil { return 0 }
        return acceptObserved(op, offset, length, userData)
    }

    /// Marks request `userData`, queued next on this queue, as force unit access (a write,
    /// zero or discard whose completion waits for a flush; see the type's comment).
    package func armForceUnitAccess(_ userData: UInt64) {
        fuaArmed = userData
        special = true
    }

    /// Makes the requests queued under `userData` from now on, until ``endParts(_:)``, the
    /// parts of one request of kind `op` and `length` bytes (see the type's comment).
    package func beginParts(_ userData: UInt64, op: GuestOp, length: UInt64) {
        parts[userData] = Parts(op: op, length: length)
        special = true
    }

    /// No more parts of request `userData` will be queued: once every part has completed
    /// (now, if they have), the request completes. When no part was accepted (the first was
    /// refused) there is no request and nothing completes.
    package func endParts(_ userData: UInt64) {
        guard var p = parts[userData] else { return }
        p.closed = true
        if p.outstanding > 0 { parts[userData] = p; return }
        parts[userData] = nil
        updateSpecial()
        if p.accepted { complete(userData, p.op, length: p.length, error: p.error, start: p.start) }
    }

    /// An armed request (recorded, then accepted as usual: returns nil), the acceptance of
    /// a force unit access request's flush (not a new request: returns its start time) or a
    /// part of a request in parts (the first accepted as the whole request, the others
    /// joining it: returns the request's start time).
    private func acceptSpecial(_ op: GuestOp, _ offset: UInt64, _ length: UInt64, _ userData: UInt64) -> UInt64? {
        if continuing == userData {
            let now = monotonicNanos()
            if let sink {
                sink.publish(IoEvent(queue: queueID, request: userData, time: now, .fsyncPhase(.fuaFlush)))
                flushes.append((userData, 0))
            }
            return now
        }
        if let armed = fuaArmed {
            // An arm not followed by its request (the queue refused it) lapses here.
            fuaArmed = nil
            updateSpecial()
            if armed == userData && op != .read && op != .fsync {
                let whole = parts[userData]
                fua[userData] = (whole?.op ?? op, whole?.length ?? length, 0, false)
            }
        }
        if !parts.isEmpty, var p = parts[userData] {
            p.outstanding += 1
            if !p.accepted {
                p.accepted = true
                accepted += 1
                p.start = sink == nil && table == nil ? 0 : acceptObserved(p.op, offset, p.length, userData)
            }
            parts[userData] = p
            return p.start
        }
        return nil
    }

    private func acceptObserved(_ op: GuestOp, _ offset: UInt64, _ length: UInt64, _ userData: UInt64) -> UInt64 {
        let now = monotonicNanos()
        if let table {
            var r = OutstandingRequest(queue: table.queue, userData: userData, op: op, offset: offset, length: length, acceptedNs: now)
            if let frontEnd {
                let o = frontEnd.current
                r.clientTag = o.tag
                r.receivedNs = o.receivedNs
            }
            table.state.withLock { $0.insert(r) }
        }
        if let sink {
            sink.publish(IoEvent(queue: queueID, request: userData, time: now, .guestRequest(op: op, offset: offset, length: length)))
            if op == .fsync { flushes.append((userData, 0)) }
        }
        return now
    }

    /// Publishes an event of request `userData` (`time` 0 reads the clock).
    @inline(__always)
    public func publish(_ userData: UInt64, time: UInt64 = 0, _ payload: IoEventPayload) {
        guard let sink else { return }
        sink.publish(IoEvent(queue: queueID, request: userData, time: time == 0 ? monotonicNanos() : time, payload))
    }

    /// Publishes that request `userData` resolved to one allocated host range (the fast
    /// path every format shares).
    @inline(__always)
    public func mappedDirect(_ userData: UInt64, offset: UInt64, length: UInt64, host: UInt64, time: UInt64 = 0) {
        guard sink != nil else { return }
        publish(userData, time: time, .mappingResolved(offset: offset, length: length, regions: 1, kind: .allocated, hostOffset: host))
    }

    /// Makes the tracker of a request accepted at `start` (what ``accept(_:offset:length:userData:)``
    /// returned) that becomes several sub-operations; `subOps` is announced in
    /// `pendingCreated` and recorded in the registry entry when > 1 (pass 0 to announce
    /// later with ``announce(_:subOps:)``).
    public func track(_ userData: UInt64, _ op: GuestOp, offset: UInt64, length: UInt64, subOps: Int, start: UInt64) -> PendingIo {
        let p = PendingIo(id: nextTrackerID, userData: userData, op: op, guestOffset: offset, length: length, startTime: start)
        nextTrackerID += 1
        if subOps > 1 { announce(p, subOps: subOps) }
        return p
    }

    /// Announces (event and registry entry) that request `p` has `subOps` sub-operations.
    public func announce(_ p: PendingIo, subOps: Int) {
        p.announced = true
        publish(p.userData, .pendingCreated(id: p.userData, subOps: subOps))
        if let table {
            let u = p.userData
            table.state.withLock { $0.entries[u]?.subOps = subOps }
        }
    }

    /// Publishes flush phase `phase` of request `userData`, first filling any phase of the
    /// standard sequence it skipped; a phase already published is not repeated.
    public func fsyncPhase(_ userData: UInt64, _ phase: FsyncPhase) {
        guard sink != nil, let i = flushes.firstIndex(where: { $0.userData == userData }) else { return }
        while flushes[i].published <= phase.rawValue, let p = FsyncPhase(rawValue: flushes[i].published) {
            publish(userData, .fsyncPhase(p))
            flushes[i].published += 1
        }
        if phase == .completed { flushes.remove(at: i) }
    }

    /// Completes request `userData` (accepted at `start`, the value ``accept(_:offset:length:userData:)``
    /// returned) with `error` or success; `now` 0 reads the clock. Exactly once per request.
    public func complete(_ userData: UInt64, _ op: GuestOp, length: UInt64, error: BlockError?, start: UInt64, now: UInt64 = 0) {
        if !parts.isEmpty, var p = parts[userData], p.accepted {
            // A part: the request completes with its last part, after endParts. (A FUA flush
            // starts only then, when the request has left `parts`, so it never lands here.)
            p.outstanding -= 1
            if p.error == nil { p.error = error }
            if p.outstanding > 0 || !p.closed { parts[userData] = p; return }
            parts[userData] = nil
            updateSpecial()
            complete(userData, p.op, length: p.length, error: p.error, start: p.start, now: now)
            return
        }
        if !fua.isEmpty, let f = fua[userData] {
            if !f.flushing && error == nil {
                // The data part is done: the flush starts from the next `next(refill:)`.
                fua[userData] = (f.op, f.length, start, true)
                fuaDue.append(userData)
                return
            }
            fua[userData] = nil
            if f.flushing {
                if sink != nil { finishFlushPhases(userData, success: error == nil) }
                complete(userData, f.op, length: f.length, error: error, start: f.start, now: now)
                return
            }
        }
        let bytes = error == nil && op != .fsync ? Int(length) : 0
        ready.append(IoCompletion(userData: userData, bytes: bytes, error: error))
        guard sink != nil else { return }
        let t = now == 0 ? monotonicNanos() : now
        if op == .fsync { finishFlushPhases(userData, success: error == nil) }
        let res: Int32 = error == nil ? Int32(clamping: bytes) : -(error?.errno ?? 5)
        publish(userData, time: t, .guestCompleted(op: op, userData: userData, result: res, latencyNs: start == 0 ? 0 : t &- start))
    }

    /// Completes a request that was one host op: `res` is the CQE's result (bytes or -errno).
    @inline(__always)
    public func complete(_ userData: UInt64, _ op: GuestOp, length: UInt64, result res: Int32, start: UInt64, now: UInt64 = 0) {
        if res >= 0 {
            complete(userData, op, length: length, error: nil, start: start, now: now)
        } else {
            complete(userData, op, length: length, error: BlockError.system(-res, Self.verb(op), path: path), start: start, now: now)
        }
    }

    /// Completes tracked request `p` with its result (the first sub-op error wins),
    /// publishing `pendingFinished` when it was announced.
    public func complete(_ p: PendingIo) {
        var err: BlockError?
        if case let .failure(e) = p.result { err = e.withPath(path) }
        if p.announced { publish(p.userData, .pendingFinished(id: p.userData, result: err == nil ? 0 : -(err?.errno ?? 5))) }
        complete(p.userData, p.op, length: p.length, error: err, start: p.startTime)
    }

    private func finishFlushPhases(_ userData: UInt64, success: Bool) {
        if success {
            fsyncPhase(userData, .completed)
        } else if let i = flushes.firstIndex(where: { $0.userData == userData }) {
            // No `.completed` phase: that says data and metadata are stable, and they are not.
            // The `guestCompleted` event that follows carries the errno.
            flushes.remove(at: i)
        }
    }

    /// The next completion: `refill` (the queue's non-blocking reap) runs first when none
    /// is ready. The request leaves the in-flight count and the registry here (a front
    /// end's request is marked handed back and leaves when its reply is sent), and is
    /// counted in the queue's figures.
    @inline(__always)
    public func next(refill: () -> Void) -> IoCompletion? {
        if ready.isEmpty { refill() }
        if !fuaDue.isEmpty { startFlushes() }
        guard let c = ready.popFirst() else { return nil }
        accepted -= 1
        if let table {
            let now = monotonicNanos()
            table.state.withLock { $0.finish(c.userData, bytes: c.bytes, failed: c.error != nil, now: now) }
        }
        return c
    }

    /// Starts the flushes of the force unit access requests whose data part completed; a
    /// flush refused at once completes its request with that error.
    private func startFlushes() {
        let due = fuaDue
        fuaDue.removeAll()
        for u in due {
            continuing = u
            special = true
            do throws(BlockError) {
                guard let flushStarter else { throw BlockError(.invalidArgument, "this queue cannot flush for force unit access", path: path) }
                try flushStarter(u)
            } catch let e {
                if let f = fua.removeValue(forKey: u) {
                    if sink != nil, let i = flushes.firstIndex(where: { $0.userData == u }) { flushes.remove(at: i) }
                    complete(u, f.op, length: f.length, error: e, start: f.start)
                }
            }
            continuing = nil
            updateSpecial()
        }
    }

    /// Whether a completion is waiting to be collected (or a force unit access flush is
    /// due to start, which the next ``next(refill:)`` does: a wait must not block then).
    @inline(__always)
    public var hasReady: Bool { !ready.isEmpty || !fuaDue.isEmpty }

    /// Leaves the registry (whatever is still recorded goes with the queue).
    public func close() {
        if let table { registry?.leave(table) }
    }

    /// The operation's name in error messages.
    package static func verb(_ op: GuestOp) -> String {
        switch op {
        case .read: return "read"
        case .write: return "write"
        case .fsync: return "fsync"
        case .zero: return "write zeroes"
        case .discard: return "discard"
        }
    }
}

import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// One virtqueue of a vhost-user-blk connection: what the front end configured (size,
/// addresses, base, kick/call descriptors, enable), the running ring, and the engine queue
/// that serves its requests (made with `disk.makeQueue`, closed when the ring stops).
///
/// Owned by the connection's thread. A request's slot is its head descriptor index (unique
/// while the request is in flight), and its engine `userData` is `generation << 32 | head`,
/// so the in-flight views show the head as the request's tag.
final class VhostUserVirtqueue {
    struct Slot {
        var busy = false
        // From 1: no request id is 0, which events read as "no request".
        var generation: UInt32 = 1
        var pending = 0
        var status = VirtioBlk.Status.ok
        var usedLength: UInt32 = 1
        var statusByte: UnsafeMutableRawPointer? = nil
        var receivedNs: UInt64 = 0
        /// The chain's descriptors while the request is held (watched queues only).
        var segments: [VirtqSegment]? = nil
    }

    let index: Int
    let export: VhostUserBlkExport
    var size = 0
    var address: VhostUserVringAddress? = nil
    var base: UInt16 = 0
    var kickFD: Int32 = -1
    var callFD: Int32 = -1
    var errFD: Int32 = -1
    var enabled = false
    /// The ring runs (between a kick descriptor and GET_VRING_BASE).
    var ring: VirtqRing? = nil
    var queue: (any AsyncIo)? = nil
    var frontEnd: FrontEndQueue? = nil
    var slots: [Slot] = []
    /// Heads whose requests are done and not yet in the used ring.
    var done: [UInt16] = []
    var inFlight = 0
    var needSubmit = false
    /// While the queue is in its poll window (``VhostUserPolling``): when the window ends, in
    /// monotonic nanoseconds, unless another request comes first; 0 when the kick is armed.
    var pollUntil: UInt64 = 0
    /// Requests the last look at the available ring took (a driver still submitting).
    var lastTook = 0
    /// When the oldest used entry the driver has not been considered for a call about was
    /// published (monotonic ns; 0: none waits). See ``flushUsed()``.
    var unannouncedSince: UInt64 = 0
    /// Kicks received, requests taken, and bad requests logged on this queue.
    var kicks: UInt64 = 0
    var requests: UInt64 = 0
    var badLogged = 0
    /// Where taken requests are recorded for a restarted back end (INFLIGHT_SHMFD), if the
    /// front end gave a region.
    var inflight: InflightQueue? = nil
    /// The chain and data pieces of the request being taken, reused from one to the next.
    var scratchChain = DescriptorChain()
    var scratchData: [GuestSegment] = []
    /// Calls made over this connection (kept when the ring stops).
    var lastCalls: UInt64 = 0
    /// Calls suppressed by the driver over this connection (kept when the ring stops).
    var lastSuppressed: UInt64 = 0
    /// Chains taken past the published avail_event over this connection (kept when the ring stops).
    var lastPastAvailEvent: UInt64 = 0

    init(index: Int, export: VhostUserBlkExport) {
        self.index = index
        self.export = export
    }

    deinit { closeFDs() }

    func closeFDs() {
        for fd in [kickFD, callFD, errFD] where fd >= 0 { Glibc.close(fd) }
        kickFD = -1; callFD = -1; errFD = -1
    }

    /// Replaces one of the queue's descriptors, closing the old one.
    static func replace(_ slot: inout Int32, with fd: Int32) {
        if slot >= 0 { Glibc.close(slot) }
        slot = fd
    }

    var running: Bool { ring != nil }

    /// Starts the ring over `memory` (after SET_VRING_KICK): translates its three parts and
    /// makes the engine queue. Returns a sentence when the configuration is incomplete or
    /// points outside guest memory.
    func start(memory: GuestMemory?, eventIdx: Bool) -> String? {
        guard let memory else { return "queue \(index) started before SET_MEM_TABLE" }
        guard size > 0, let a = address else { return "queue \(index) started without SET_VRING_NUM/SET_VRING_ADDR" }
        let b = VirtqRing.bytes(size: size)
        guard let d = memory.user(a.descriptor, b.desc), let av = memory.user(a.available, b.avail), let u = memory.user(a.used, b.used) else {
            return "queue \(index): ring addresses (desc 0x\(String(a.descriptor, radix: 16)), avail 0x\(String(a.available, radix: 16)), used 0x\(String(a.used, radix: 16)), \(size) entries) lie outside guest memory"
        }
        ring = VirtqRing(desc: d, avail: av, used: u, size: size, eventIdx: eventIdx, base: base)
        if slots.count != size { slots = Array(repeating: Slot(), count: size) }
        if queue == nil {
            if export.inFlightRegistry != nil && frontEnd == nil { frontEnd = FrontEndQueue(client: "vhost vq\(index)", tagName: "head") }
            do {
                queue = try export.disk.makeQueue(QueueOptions(depth: 64, queueID: export.queueIDBase + index, engine: .uring,
                                                               eventSink: export.eventSink, inFlightRegistry: export.inFlightRegistry,
                                                               frontEnd: frontEnd))
            } catch {
                ring = nil
                return "queue \(index): cannot make its engine queue: \(error.description)"
            }
        }
        return nil
    }

    /// Re-translates a running ring's addresses after a new memory table.
    func remap(memory: GuestMemory, eventIdx: Bool) -> String? {
        guard let r = ring else { return nil }
        base = r.lastAvail
        ring = nil
        return start(memory: memory, eventIdx: eventIdx)
    }

    /// Stops the ring (GET_VRING_BASE, reset, end of the connection): waits for its
    /// requests, puts them in the used ring, closes the engine queue. Returns the next
    /// available index, which a restart continues from.
    func stop() -> UInt16 {
        drain()
        let last = ring?.lastAvail ?? base
        lastCalls += ring?.calls ?? 0
        lastSuppressed += ring?.suppressed ?? 0
        lastPastAvailEvent += ring?.pastAvailEvent ?? 0
        base = last
        ring = nil
        pollUntil = 0
        lastTook = 0
        unannouncedSince = 0
        queue?.close()
        queue = nil
        return last
    }

    /// Waits until every request of this queue has completed and is in the used ring.
    func drain() {
        while inFlight > 0, let q = queue {
            if needSubmit { needSubmit = false; _ = try? q.submit() }
            reap()
            flushUsed()
            if inFlight == 0 { break }
            var p = pollfd(fd: q.eventFD, events: Int16(POLLIN), revents: 0)
            // Backing-file queues do not signal the eventfd: look again every millisecond.
            if poll(&p, 1, 1) > 0 { var v: UInt64 = 0; _ = Glibc.read(q.eventFD, &v, 8) }
        }
        flushUsed()
        announce()
    }

    /// Collects finished engine operations; a request whose last one finished is done.
    func reap() {
        guard let q = queue else { return }
        while let c = q.nextCompletion() {
            let h = Int(c.userData & 0xffff_ffff)
            guard h < slots.count, slots[h].busy, UInt32(truncatingIfNeeded: c.userData >> 32) == slots[h].generation, slots[h].pending > 0 else { continue }
            if c.error != nil { slots[h].status = .ioError }
            slots[h].pending -= 1
            if slots[h].pending == 0 { finish(h) }
        }
    }

    /// Request `h` is complete: its status byte is written and its head waits for the used ring.
    func finish(_ h: Int) {
        if let p = slots[h].statusByte { p.storeBytes(of: slots[h].status.rawValue, as: UInt8.self) }
        if slots[h].status != .ok {
            slots[h].usedLength = 1
            export.errors.add(1, ordering: .relaxed)
        }
        export.requests.add(1, ordering: .relaxed)
        done.append(UInt16(h))
    }

    /// Puts finished requests in the used ring and calls the driver if it wants it. Inside
    /// the poll window, while the driver is still making requests available (the last look
    /// took some) and the oldest unannounced entry is younger than the window, the call
    /// waits: the entries are visible at once, and the driver, busy submitting, takes them
    /// with the interrupt that follows its last request, one interrupt for the batch instead
    /// of one per turn. Not while the queue is watched (the views' stages name each call).
    func flushUsed() {
        guard ring != nil else { return }
        if !done.isEmpty {
            inflight?.link(done)
            for h in done { ring!.addUsed(head: h, length: slots[Int(h)].usedLength) }
            ring!.publish()
            if export.eventSink != nil { for h in done { stage(.usedWritten, Int(h), slots[Int(h)].usedLength) } }
            inflight?.cleared(done, used: ring!.usedIdx)
            if unannouncedSince == 0 { unannouncedSince = monotonicNanos() }
        }
        if unannouncedSince != 0 && !holdsCall() {
            let call = announce()
            if export.eventSink != nil, let last = done.last { stage(call ? .called : .callSuppressed, Int(last), UInt32(ring!.usedIdx)) }
        }
        guard !done.isEmpty else { return }
        if let fe = frontEnd {
            fe.replied(done.lazy.map { (userData: self.tag(Int($0)), receivedNs: self.slots[Int($0)].receivedNs) }, sentNs: monotonicNanos())
        }
        for h in done {
            slots[Int(h)].busy = false
            slots[Int(h)].segments = nil
            slots[Int(h)].generation &+= 1
            inFlight -= 1
        }
        done.removeAll(keepingCapacity: true)
        publishRing()
    }

    /// Whether the call for the used entries published so far waits (see ``flushUsed()``).
    private func holdsCall() -> Bool {
        guard pollUntil != 0, lastTook > 0, export.eventSink == nil else { return false }
        return monotonicNanos() &- unannouncedSince < export.polling.windowNs
    }

    /// Considers the driver for a call about every used entry published so far (EVENT_IDX's
    /// used_event or NO_INTERRUPT) and makes it; returns whether it called.
    @discardableResult
    func announce() -> Bool {
        guard ring != nil else { return false }
        unannouncedSince = 0
        let call = ring!.needsCall()
        if call, callFD >= 0 {
            var one: UInt64 = 1
            _ = Glibc.write(callFD, &one, 8)
        }
        return call
    }

    /// Tells the views how the ring stands (only under the TUI: with a front-end record).
    func publishRing() {
        guard let fe = frontEnd, let r = ring else { return }
        var g = FrontEndQueue.Ring(size: r.size, availIndex: r.availIndex(), usedIndex: r.usedIdx, inFlight: inFlight,
                                   kicks: kicks, calls: lastCalls + r.calls, suppressed: lastSuppressed + r.suppressed, chains: requests)
        g.lastAvail = r.lastAvail
        g.eventIdx = r.eventIdx
        g.pastAvailEvent = lastPastAvailEvent + r.pastAvailEvent
        g.held = heldChains()
        fe.publish(g)
    }

    func tag(_ h: Int) -> UInt64 { UInt64(slots[h].generation) << 32 | UInt64(h) }
}

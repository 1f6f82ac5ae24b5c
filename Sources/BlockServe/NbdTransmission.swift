import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// The transmission phase of one connection: a poll loop on one thread that owns one
/// ``AsyncIo`` queue of the shared disk.
///
/// Requests are read from the non-blocking socket as they arrive and queued to the ring at
/// once, so many are in flight; replies go out in completion order (the client matches them
/// by handle), gathered into one `sendmsg` per loop turn. Each request holds a slot: its
/// reply-header space, its data buffer (128 KiB kept per slot; a longer READ/WRITE gets a
/// buffer of its own, bounded by ``NbdTransmission/transientBudget`` bytes per connection)
/// and its ring tag. When every slot is busy (or the budget is spent) a request waits in
/// the input buffer, and is taken in the same loop turn whose replies free a slot, without
/// waiting for the socket (ADR 0015). On NBD_CMD_DISC, a malformed header, a vanished peer
/// or server shutdown the loop stops taking requests, lets the in-flight ones finish
/// (replying when the socket still works) and returns.
final class NbdTransmission {
    /// Requests one connection may have in flight.
    static let maxSlots = 128
    /// The ring depth of the connection's queue (more requests wait in its backlog).
    static let queueDepth = 64
    /// The data buffer each slot keeps.
    static let slotBufferSize = 128 << 10
    /// Bytes of per-request buffers (requests over ``slotBufferSize``) one connection may hold.
    static let transientBudget = 64 << 20
    /// Bytes of the socket input buffer.
    static let inputSize = 256 << 10
    /// Bytes of reply header kept per slot.
    static let headerSize = 64
    /// Extents answered per NBD_CMD_BLOCK_STATUS at most.
    static let maxExtents = 16 << 10
    /// Largest chunk a NO_HOLE write-zeroes request writes at once.
    static let zeroChunk = 1 << 20
    /// The zeroes every connection's NO_HOLE write-zeroes writes from: one buffer for the
    /// process, written once (so its pages are its own, not the kernel's shared zero page,
    /// whatever an `O_DIRECT` write does with them) and only read after that. Each connection
    /// zeroed a megabyte of its own before: 256 page faults and a memset at its first such
    /// request, 12% of the `nbd` fuzz target's time, where every input is a connection.
    static let zeroBuffer: AlignedBuffer = {
        let z = AlignedBuffer(count: zeroChunk)
        z.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        return z
    }()

    enum Receiving { case header, payload(slot: Int, got: Int), skip(slot: Int, left: Int) }

    struct Slot {
        var request = NbdRequest(flags: 0, type: 0, handle: 0, offset: 0, length: 0)
        var generation: UInt32 = 0
        var start: UInt64 = 0
        var pending = 0
        var error: UInt32 = 0
        var mutation = false
        var kept: AlignedBuffer? = nil
        var transient: AlignedBuffer? = nil
        /// Reply payload bytes taken from the slot's buffer (read data, block-status extents).
        var replyBytes = 0
        var buffer: UnsafeMutableRawBufferPointer { (transient ?? kept)!.bytes }
    }

    let socket: NbdSocket
    let export: NbdExport
    let negotiated: NbdNegotiated
    let queueID: Int
    var slots: [Slot]
    var freeSlots: [Int]
    let headers: UnsafeMutableRawPointer
    /// The socket input buffer (a mapping of its own, so an ended connection returns it).
    let inputBuffer = AlignedBuffer(count: NbdTransmission.inputSize)
    var input: UnsafeMutableRawPointer { inputBuffer.baseAddress }
    var rpos = 0, wpos = 0
    var receiving = Receiving.header
    var transientBytes = 0
    var queue: (any AsyncIo)! = nil
    var needSubmit = false
    /// Set when the connection stops taking requests; says why (for the log line).
    var closing: String? = nil
    var socketDead = false
    var outIov: [iovec] = []
    var outSlots: [Int] = []
    /// Requests answered on this connection.
    var answered: UInt64 = 0
    /// The last ``parseInput()`` stopped at a complete header for want of a slot or of
    /// transient-buffer budget.
    var parseBlocked = false
    /// A slot was released since the last ``parseInput()``.
    var releasedSinceParse = false
    /// The client as the export's in-flight registry names its queue (`nbd 1 unix`).
    var client = "nbd"
    /// The queue's front-end record (cookie and read instant per request; a request leaves
    /// the registry when its reply is sent), when the export has an in-flight registry.
    var frontEnd: FrontEndQueue? = nil

    init(socket: NbdSocket, export: NbdExport, negotiated: NbdNegotiated, queueID: Int) {
        self.socket = socket
        self.export = export
        self.negotiated = negotiated
        self.queueID = queueID
        slots = Array(repeating: Slot(), count: Self.maxSlots)
        freeSlots = Array((0..<Self.maxSlots).reversed())
        headers = UnsafeMutableRawPointer.allocate(byteCount: Self.maxSlots * Self.headerSize, alignment: 16)
        outIov.reserveCapacity(2 * Self.maxSlots)
    }

    deinit {
        headers.deallocate()
    }

    /// Serves requests until the connection ends; returns why it ended. The queue is made
    /// and closed on the calling thread; every in-flight request has completed on return.
    func run() throws(BlockError) -> String {
        if export.inFlightRegistry != nil { frontEnd = FrontEndQueue(client: client, tagName: "cookie") }
        let q = try export.disk.makeQueue(QueueOptions(depth: Self.queueDepth, queueID: queueID, engine: .uring, eventSink: export.eventSink,
                                                       inFlightRegistry: export.inFlightRegistry, frontEnd: frontEnd))
        queue = q
        defer { q.close() }
        let efd = q.eventFD
        var fds = [pollfd](repeating: pollfd(), count: 3)
        while true {
            reapCompletions()
            if closing == nil { parseInput() }
            if needSubmit {
                needSubmit = false
                do { try q.submit() } catch { closing = closing ?? "io_uring submit failed: \(error.description)" }
            }
            flushOutput()
            if closing != nil && q.inFlight == 0 && outSlots.isEmpty { break }
            // Replies just sent freed slots (and budget) that a request already in the input
            // buffer waits for: take it now. The client may send nothing more until it is
            // answered, so waiting for the socket here would stall the connection for good.
            if closing == nil && parseBlocked && releasedSinceParse { continue }

            let wantRead = closing == nil && readyToRead
            // While not reading, the socket is still polled with no events: POLLHUP/POLLERR
            // (always reported) tell that a killed client is gone, so its thread, socket and
            // ring are freed at once rather than when something else wakes the loop.
            fds[0] = pollfd(fd: closing == nil ? socket.fd : -1, events: wantRead ? Int16(POLLIN) : 0, revents: 0)
            fds[1] = pollfd(fd: efd, events: Int16(POLLIN), revents: 0)
            fds[2] = pollfd(fd: closing == nil ? socket.stopFD : -1, events: Int16(POLLIN), revents: 0)
            // Completions of a backing-file queue and requests deferred behind another queue's
            // allocation do not signal the ring's eventfd: look again every millisecond.
            let timeout: Int32 = q.inFlight > 0 ? 1 : -1
            let r = Syscall.poll(&fds, 3, timeout)
            if r < 0 { closing = closing ?? "poll: \(String(cString: strerror(errno)))"; continue }
            if fds[1].revents != 0 {
                var v: UInt64 = 0
                _ = Glibc.read(efd, &v, 8)
            }
            if fds[2].revents != 0 { closing = closing ?? "server shutting down" }
            if fds[0].revents != 0 {
                if wantRead {
                    readSocket()
                } else if fds[0].revents & Int16(POLLHUP | POLLERR) != 0 {
                    socketDead = true
                    closing = closing ?? "client vanished with requests unread"
                }
            }
        }
        return closing ?? "done"
    }

    /// Whether the loop should read the socket now.
    var readyToRead: Bool {
        switch receiving {
        case .payload, .skip: return true
        // A full buffer that ends in a partial header still reads: readSocket compacts it.
        case .header: return !freeSlots.isEmpty && wpos - rpos < Self.inputSize
        }
    }

    /// Reads what the socket has: straight into a WRITE's buffer when its payload is due and
    /// nothing is buffered, else into the input buffer.
    func readSocket() {
        do {
            while closing == nil {
                if case let .payload(s, got) = receiving, rpos == wpos {
                    let len = Int(slots[s].request.length)
                    let n = try socket.readAvailable(into: slots[s].buffer.baseAddress! + got, count: len - got)
                    if n < 0 { return }
                    if n == 0 { peerClosed(); return }
                    receiving = .payload(slot: s, got: got + n)
                    parseInput()
                    continue
                }
                if rpos == wpos { rpos = 0; wpos = 0 }
                if wpos == Self.inputSize {
                    guard rpos > 0 else { return }
                    input.copyMemory(from: input + rpos, byteCount: wpos - rpos)
                    wpos -= rpos; rpos = 0
                }
                let n = try socket.readAvailable(into: input + wpos, count: Self.inputSize - wpos)
                if n < 0 { return }
                if n == 0 { peerClosed(); return }
                wpos += n
                parseInput()
                if !readyToRead { return }
            }
        } catch {
            socketDead = true
            closing = closing ?? "client vanished (\(error.description))"
        }
    }

    private func peerClosed() {
        socketDead = true
        let partial: Bool
        switch receiving { case .header: partial = rpos < wpos; default: partial = true }
        closing = closing ?? (partial ? "client vanished mid-request" : "client closed the connection without NBD_CMD_DISC")
    }

    /// Takes every complete request out of the input buffer (as long as a slot is free).
    func parseInput() {
        parseBlocked = false
        releasedSinceParse = false
        while closing == nil {
            switch receiving {
            case let .payload(s, got):
                let len = Int(slots[s].request.length)
                let take = min(wpos - rpos, len - got)
                if take > 0 {
                    (slots[s].buffer.baseAddress! + got).copyMemory(from: input + rpos, byteCount: take)
                    rpos += take
                }
                if got + take < len { receiving = .payload(slot: s, got: got + take); return }
                receiving = .header
                issueWrite(s)
            case let .skip(s, left):
                let take = min(wpos - rpos, left)
                rpos += take
                if take < left { receiving = .skip(slot: s, left: left - take); return }
                receiving = .header
                queueReply(s)
            case .header:
                guard wpos - rpos >= NbdParser.requestSize else { return }
                guard let s = freeSlots.last else { parseBlocked = true; return }
                let parsed = NbdParser.request(UnsafeRawBufferPointer(start: input + rpos, count: NbdParser.requestSize))
                guard case let .request(req) = parsed else {
                    if case let .badMagic(m) = parsed { closing = "bad request magic 0x\(String(m, radix: 16)) (garbage on the socket?)" }
                    return
                }
                let len = Int(req.length)
                let needsOwnBuffer = (req.type == Nbd.Command.read.rawValue || req.type == Nbd.Command.write.rawValue)
                    && len > Self.slotBufferSize && req.length <= export.maximumPayload
                if needsOwnBuffer && transientBytes > 0 && transientBytes + len > Self.transientBudget { parseBlocked = true; return }
                rpos += NbdParser.requestSize
                freeSlots.removeLast()
                slots[s].generation &+= 1
                slots[s].request = req
                slots[s].start = monotonicNanos()
                slots[s].pending = 0
                slots[s].error = 0
                slots[s].mutation = false
                slots[s].replyBytes = 0
                start(s)
            }
        }
    }

    /// The ring tag of slot `s`'s current request.
    func tag(_ s: Int) -> UInt64 { UInt64(slots[s].generation) << 32 | UInt64(s) }

    /// Gives slot `s` a data buffer of at least `count` bytes.
    func prepareBuffer(_ s: Int, _ count: Int) {
        if count > Self.slotBufferSize {
            slots[s].transient = AlignedBuffer(count: count)
            transientBytes += count
        } else if slots[s].kept == nil {
            slots[s].kept = AlignedBuffer(count: Self.slotBufferSize)
        }
    }

    /// Fails slot `s`'s request with `code`, consuming a WRITE's payload first.
    func fail(_ s: Int, _ code: Nbd.ErrorCode) {
        slots[s].error = code.rawValue
        if slots[s].request.type == Nbd.Command.write.rawValue && slots[s].request.length > 0 {
            receiving = .skip(slot: s, left: Int(slots[s].request.length))
        } else {
            queueReply(s)
        }
    }

    /// Whether every flag in `f` applies to `cmd` (the protocol document: FUA on any
    /// command; NO_HOLE and FAST_ZERO on WRITE_ZEROES; DF on READ, and only when structured
    /// replies were negotiated, as SEND_DF is advertised only then; REQ_ONE on BLOCK_STATUS).
    static func flagsValid(_ f: Nbd.CommandFlags, for cmd: Nbd.Command, structured: Bool) -> Bool {
        var allowed: Nbd.CommandFlags = [.fua]
        switch cmd {
        case .writeZeroes: allowed.formUnion([.noHole, .fastZero])
        case .read where structured: allowed.insert(.df)
        case .blockStatus: allowed.insert(.reqOne)
        default: break
        }
        return f.isSubset(of: allowed)
    }

    private func inBounds(_ r: NbdRequest) -> Bool {
        r.offset <= export.size && UInt64(r.length) <= export.size - r.offset
    }

    /// Checks a new request and starts it (or answers it at once).
    func start(_ s: Int) {
        let r = slots[s].request
        guard let cmd = r.command else { fail(s, .invalid); return }
        let f = r.commandFlags
        if !Self.flagsValid(f, for: cmd, structured: negotiated.structuredReplies) { fail(s, .invalid); return }
        let modifies = cmd == .write || cmd == .trim || cmd == .writeZeroes
        if modifies && !export.writable { fail(s, .perm); return }
        // The protocol document: EOVERFLOW only for DF reads and payload-free commands,
        // EINVAL for a read or write over the advertised maximum.
        if (cmd == .read || cmd == .write) && r.length > export.maximumPayload { fail(s, .invalid); return }
        // ENOSPC for a write or write-zeroes past the end, EINVAL for everything else.
        if cmd != .flush && cmd != .disconnect && !inBounds(r) {
            fail(s, cmd == .write || cmd == .writeZeroes ? .noSpace : .invalid); return
        }
        switch cmd {
        case .disconnect:
            closing = "client disconnected"
            release(s)
        case .read:
            if r.length == 0 { queueReply(s); return }
            prepareBuffer(s, Int(r.length))
            slots[s].replyBytes = Int(r.length)
            submit(s) { q, t throws(BlockError) in
                try q.read(at: r.offset, into: UnsafeMutableRawBufferPointer(rebasing: self.slots[s].buffer[0..<Int(r.length)]), userData: t)
            }
        case .write:
            if r.length == 0 { queueReply(s); return }
            prepareBuffer(s, Int(r.length))
            receiving = .payload(slot: s, got: 0)
        case .flush:
            submit(s) { q, t throws(BlockError) in try q.fsync(userData: t) }
        case .trim:
            if r.length == 0 { queueReply(s); return }
            markMutation(s)
            submit(s) { q, t throws(BlockError) in try q.discard(at: r.offset, length: UInt64(r.length), userData: t) }
        case .writeZeroes:
            if r.length == 0 { queueReply(s); return }
            if f.contains(.noHole) {
                // Real zeroes written from a shared zero buffer: never fast.
                if f.contains(.fastZero) { fail(s, .notSupported); return }
                writeZeroChunks(s)
            } else {
                markMutation(s)
                if export.disk.identityFile != nil {
                    // A hole may be left (no NO_HOLE): punch one, as qemu-nbd does, rather than
                    // zero-range, which keeps the blocks allocated (a sparse copy would fill the
                    // file). A raw discard always reads back as zeroes (SystemFile.punchHole).
                    submit(s) { q, t throws(BlockError) in try q.discard(at: r.offset, length: UInt64(r.length), userData: t) }
                } else {
                    submit(s) { q, t throws(BlockError) in try q.writeZeroes(at: r.offset, length: UInt64(r.length), userData: t) }
                }
            }
        case .cache:
            queueReply(s)
        case .blockStatus:
            blockStatus(s)
        }
    }

    /// The payload of WRITE slot `s` has arrived: queue it.
    func issueWrite(_ s: Int) {
        let r = slots[s].request
        markMutation(s)
        submit(s) { q, t throws(BlockError) in
            try q.write(at: r.offset, from: UnsafeRawBufferPointer(rebasing: self.slots[s].buffer[0..<Int(r.length)]), userData: t)
        }
    }

    /// A NO_HOLE write-zeroes: real zeroes written from a shared zero buffer, 1 MiB a
    /// write, queued as the parts of one request (``AsyncIo/beginParts(userData:op:length:)``)
    /// so that the engine counts one write-zeroes of the client's length, as the client sent
    /// it; with FUA the queue's flush runs once, after every part.
    private func writeZeroChunks(_ s: Int) {
        let r = slots[s].request
        let z = Self.zeroBuffer
        markMutation(s)
        let t = tag(s)
        frontEnd?.origin(clientTag: r.handle, receivedNs: slots[s].start)
        queue.beginParts(userData: t, op: .zero, length: UInt64(r.length))
        if r.commandFlags.contains(.fua) { queue.forceUnitAccess(userData: t) }
        var pos = r.offset, queued = false
        let end = r.offset + UInt64(r.length)
        while pos < end {
            let n = Int(min(UInt64(Self.zeroChunk), end - pos))
            do throws(BlockError) {
                try queue.write(at: pos, from: UnsafeRawBufferPointer(rebasing: z.bytes[0..<n]), userData: t)
            } catch {
                slots[s].error = Nbd.ErrorCode(errno: error.errno).rawValue
                break
            }
            queued = true
            pos += UInt64(n)
        }
        queue.endParts(userData: t)
        if queued {
            slots[s].pending += 1
            needSubmit = true
        } else {
            finish(s)
        }
    }

    private func markMutation(_ s: Int) {
        if !slots[s].mutation { slots[s].mutation = true; export.allocation.beginMutation() }
    }

    /// Queues one sub-operation of slot `s` on the ring; a synchronous refusal fails it.
    func submit(_ s: Int, _ body: (any AsyncIo, UInt64) throws(BlockError) -> Void) {
        frontEnd?.origin(clientTag: slots[s].request.handle, receivedNs: slots[s].start)
        let r = slots[s].request
        // FUA: the queue flushes after the data part, inside the same request (one id, one
        // completion; the reply waits for the flush). A NO_HOLE write-zeroes arms its
        // request in parts once (writeZeroChunks).
        if r.commandFlags.contains(.fua) && r.command != .read && r.command != .flush { queue.forceUnitAccess(userData: tag(s)) }
        do {
            try body(queue, tag(s))
            slots[s].pending += 1
            needSubmit = true
        } catch {
            if slots[s].error == 0 { slots[s].error = Nbd.ErrorCode(errno: error.errno).rawValue }
            if slots[s].pending == 0 { finish(s) }
        }
    }

    private func blockStatus(_ s: Int) {
        let r = slots[s].request
        guard let id = negotiated.baseAllocationID, r.length > 0 else { fail(s, .invalid); return }
        do {
            let max = r.commandFlags.contains(.reqOne) ? 1 : Self.maxExtents
            let extents = try export.allocation.extents(offset: r.offset, length: r.length, maxCount: max)
            prepareBuffer(s, 4 + 8 * extents.count)
            let p = slots[s].buffer.baseAddress!
            NbdStore.u32(p, 0, id)
            for (i, e) in extents.enumerated() {
                NbdStore.u32(p, 4 + 8 * i, e.length)
                NbdStore.u32(p, 8 + 8 * i, e.flags)
            }
            slots[s].replyBytes = 4 + 8 * extents.count
        } catch {
            slots[s].error = Nbd.ErrorCode(errno: error.errno).rawValue
        }
        queueReply(s)
    }
}

import DequeModule

/// The io_uring queue of a block-mapped image (VHDX and VHD share it).
///
/// Each guest request is mapped under the format's lock (``BlockMappedDisk/mapForRead(_:_:)``,
/// allocation for writes), then its `.data` regions become READV/WRITEV SQEs on this queue's
/// ``IoUringContext``; zero regions are filled inline and parent regions read from the parent
/// synchronously. A request that maps to one host range carries its own tag; one that spans
/// several gets a ``PendingIo`` that completes exactly once. Flushes are IORING_OP_FSYNC.
/// Owned by one thread; many queues share the disk's metadata and read concurrently.
public final class MappedAsync: AsyncIo {
    private enum Waiter {
        case direct(userData: UInt64, op: GuestOp, start: UInt64, mark: UInt64)
        case sub(PendingIo, Int)
    }

    private let disk: any BlockMappedDisk
    private let ctx: IoUringContext
    private var ready: Deque<IoCompletion> = []
    /// What each ring tag waits for (``TagTable``: no hashing or allocation per request).
    private var waiters = TagTable<Waiter>()
    private var nextPending: UInt64 = 1
    private var accepted = 0
    private let sink: (any IoEventSink)?
    private let queueID: Int32

    /// Creates a queue with an io_uring of `options.depth` entries.
    public init(disk: any BlockMappedDisk, options: QueueOptions) throws(BlockError) {
        self.disk = disk
        self.ctx = try IoUringContext(depth: options.depth)
        self.sink = options.eventSink
        self.queueID = Int32(options.queueID)
        ctx.eventSink = options.eventSink
        ctx.queueID = queueID
    }

    /// The underlying ring (for tests and the UI).
    public var context: IoUringContext { ctx }

    /// Queues one READV/WRITEV of the whole guest buffer at `host` (a request in one block).
    private func submitDirect(_ op: GuestOp, _ host: UInt64, _ buffer: UnsafeMutableRawBufferPointer, _ userData: UInt64, start: UInt64) {
        let t = waiters.park(.direct(userData: userData, op: op, start: start, mark: 0))
        let fd = disk.dataFD
        ctx.enqueue(op == .read ? .read(fd: fd, offset: host, buffer: buffer.baseAddress!, length: buffer.count)
                                : .write(fd: fd, offset: host, buffer: buffer.baseAddress!, length: buffer.count), tag: t)
    }

    /// Publishes the mapping of a request the fast path sent to one host range.
    private func publishDirect(_ userData: UInt64, _ offset: UInt64, _ length: UInt64, _ host: UInt64) {
        sink?.publish(IoEvent(queue: queueID, request: userData, .mappingResolved(offset: offset, length: length, regions: 1, kind: .allocated, hostOffset: host)))
    }

    private func publishMapping(_ userData: UInt64, _ offset: UInt64, _ length: UInt64, _ regions: [BlockRegion]) {
        guard let sink else { return }
        var kind: RegionKind = .allocated
        var host: UInt64 = 0
        if let f = regions.first {
            switch f.kind {
            case let .data(h): kind = .allocated; host = h
            case .zero: kind = .zero
            case .parent: kind = .unallocated
            }
        }
        if regions.count > 1 && !regions.allSatisfy({ if case .data = $0.kind { return true }; return false }) { kind = .mixed }
        sink.publish(IoEvent(queue: queueID, request: userData, .mappingResolved(offset: offset, length: length, regions: regions.count, kind: kind, hostOffset: host)))
    }

    private func submitMapped(_ op: GuestOp, _ offset: UInt64, _ buffer: UnsafeMutableRawBufferPointer, _ userData: UInt64, _ regions: [BlockRegion]) {
        publishMapping(userData, offset, UInt64(buffer.count), regions)
        let fd = disk.dataFD
        if regions.count == 1, case let .data(host) = regions[0].kind {
            submitDirect(op, host, buffer, userData, start: sink != nil ? monotonicNanos() : 0)
            return
        }
        let p = PendingIo(id: nextPending, userData: userData, op: op, guestOffset: offset, length: UInt64(buffer.count))
        nextPending += 1
        sink?.publish(IoEvent(queue: queueID, request: userData, .pendingCreated(id: p.id, subOps: regions.count)))
        for r in regions {
            let s = Int(r.guestOffset - offset)
            let sub = UnsafeMutableRawBufferPointer(rebasing: buffer[s..<(s + Int(r.length))])
            switch r.kind {
            case let .data(host):
                let i = p.add(opcode: op == .read ? .readv : .writev, hostOffset: host, guestOffset: r.guestOffset, length: r.length)
                let t = waiters.park(.sub(p, i))
                p.markInFlight(i, sqeTag: t)
                ctx.enqueue(op == .read ? .read(fd: fd, offset: host, buffer: sub.baseAddress!, length: sub.count)
                                        : .write(fd: fd, offset: host, buffer: sub.baseAddress!, length: sub.count), tag: t)
            case .zero:
                let i = p.add(opcode: nil, hostOffset: 0, guestOffset: r.guestOffset, length: r.length)
                sub.initializeMemory(as: UInt8.self, repeating: 0)
                p.finish(i, result: Int32(clamping: r.length))
            case .parent:
                let i = p.add(opcode: nil, hostOffset: 0, guestOffset: r.guestOffset, length: r.length)
                do { try disk.readParent(into: sub, at: r.guestOffset); p.finish(i, result: Int32(clamping: r.length)) }
                catch let e { p.finish(i, result: -5, error: e) }
            }
        }
        if p.seal() { finishPending(p) }
    }

    private func finishPending(_ p: PendingIo) {
        let res: Int32
        var err: BlockError?
        switch p.result {
        case let .success(n): res = Int32(clamping: n)
        case let .failure(e): res = -(e.errno ?? 5); err = e.withPath(disk.path)
        }
        sink?.publish(IoEvent(queue: queueID, request: p.userData, .pendingFinished(id: p.id, result: res < 0 ? res : 0)))
        complete(p.userData, p.op, res, err, start: p.startTime)
    }

    private func complete(_ userData: UInt64, _ op: GuestOp, _ res: Int32, _ error: BlockError?, start: UInt64) {
        var c = IoCompletion(userData: userData, bytes: res >= 0 ? Int(res) : 0, error: error)
        if res < 0 && error == nil {
            c.error = BlockError.system(-res, op == .fsync ? "fsync" : (op == .read ? "read" : "write"), path: disk.path)
        }
        if let sink {
            if op == .fsync { sink.publish(IoEvent(queue: queueID, request: userData, .fsyncPhase(.completed))) }
            sink.publish(IoEvent(queue: queueID, request: userData, .guestCompleted(op: op, userData: userData, result: c.error == nil ? res : -(c.error?.errno ?? 5), latencyNs: monotonicNanos() &- start)))
        }
        ready.append(c)
    }

    private func accept(_ op: GuestOp, _ offset: UInt64, _ length: UInt64, _ userData: UInt64) -> UInt64 {
        accepted += 1
        guard let sink else { return 0 }
        sink.publish(IoEvent(queue: queueID, request: userData, .guestRequest(op: op, offset: offset, length: length)))
        return monotonicNanos()
    }

    /// Maps the range and queues READV SQEs for its data regions.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) throws(BlockError) {
        let t0 = accept(.read, offset, UInt64(buffer.count), userData)
        do {
            try disk.checkRange(offset, UInt64(buffer.count), "read", write: false)
            if buffer.count == 0 { complete(userData, .read, 0, nil, start: t0); return }
            if let host = disk.mappedHostOffset(offset, UInt64(buffer.count), write: false) {
                publishDirect(userData, offset, UInt64(buffer.count), host)
                submitDirect(.read, host, buffer, userData, start: sink != nil ? monotonicNanos() : 0)
                return
            }
            submitMapped(.read, offset, buffer, userData, try disk.mapForRead(offset, UInt64(buffer.count)))
        } catch let e { complete(userData, .read, -1, e, start: t0) }
    }

    /// Maps the range (allocating blocks under the metadata lock) and queues WRITEV SQEs.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, userData: UInt64) throws(BlockError) {
        let t0 = accept(.write, offset, UInt64(buffer.count), userData)
        do {
            try disk.checkRange(offset, UInt64(buffer.count), "write", write: true)
            if buffer.count == 0 { complete(userData, .write, 0, nil, start: t0); return }
            if let host = disk.mappedHostOffset(offset, UInt64(buffer.count), write: true) {
                publishDirect(userData, offset, UInt64(buffer.count), host)
                submitDirect(.write, host, UnsafeMutableRawBufferPointer(mutating: buffer), userData, start: sink != nil ? monotonicNanos() : 0)
                return
            }
            let regions = try disk.mapForWrite(offset, UInt64(buffer.count), queue: queueID, request: userData, sink: sink)
            submitMapped(.write, offset, UnsafeMutableRawBufferPointer(mutating: buffer), userData, regions)
        } catch let e { complete(userData, .write, -1, e, start: t0) }
    }

    /// Zeroes inline (BAT updates through the metadata) and completes at once.
    public func writeZeroes(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = accept(.zero, offset, length, userData)
        do { try disk.writeZeroes(at: offset, length: length); complete(userData, .zero, Int32(clamping: length), nil, start: t0) }
        catch let e { complete(userData, .zero, -1, e, start: t0) }
    }

    /// Discards inline and completes at once.
    public func discard(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = accept(.discard, offset, length, userData)
        do { try disk.discard(at: offset, length: length); complete(userData, .discard, Int32(clamping: length), nil, start: t0) }
        catch let e { complete(userData, .discard, -1, e, start: t0) }
    }

    /// Queues IORING_OP_FSYNC (metadata is already written through the log when it changes).
    public func fsync(userData: UInt64) throws(BlockError) {
        let t0 = accept(.fsync, 0, 0, userData)
        sink?.publish(IoEvent(queue: queueID, request: userData, .fsyncPhase(.metadataWritten)))
        sink?.publish(IoEvent(queue: queueID, request: userData, .fsyncPhase(.fsyncSubmitted)))
        let t = waiters.park(.direct(userData: userData, op: .fsync, start: t0, mark: disk.flushMark()))
        ctx.enqueue(.fsync(fd: disk.dataFD, dataOnly: true), tag: t)
    }

    /// Hands queued SQEs to the kernel.
    @discardableResult
    public func submit() throws(BlockError) -> Int { ctx.submit() }

    private func drain(wait: Bool) throws(BlockError) {
        try ctx.reap(wait: wait) { t, res in
            guard let w = self.waiters.unpark(t) else { return }
            switch w {
            case let .direct(userData, op, start, mark):
                if op == .fsync && res >= 0 { self.disk.flushCompleted(mark) }
                self.complete(userData, op, res, nil, start: start)
            case let .sub(p, i):
                if p.finish(i, result: res) { self.finishPending(p) }
            }
        }
    }

    /// The next finished request (reaps the CQ without blocking when none is ready).
    public func nextCompletion() -> IoCompletion? {
        if ready.isEmpty { try? drain(wait: false) }
        if let c = ready.popFirst() { accepted -= 1; return c }
        return nil
    }

    /// Blocks until a completion is ready (submitting what is queued).
    public func waitForCompletion() throws(BlockError) {
        if !ready.isEmpty { return }
        try drain(wait: true)
    }

    /// Requests accepted and not yet collected.
    public var inFlight: Int { accepted }
    /// The ring's eventfd.
    public var eventFD: Int32 { ctx.eventFD }
    /// Tears the ring down.
    public func close() { ctx.close() }
}

/// The VHDX io_uring queue.
public typealias VhdxAsync = MappedAsync

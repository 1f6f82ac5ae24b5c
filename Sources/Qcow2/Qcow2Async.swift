import BlockIO
import BlockInspect
import DequeModule
#if canImport(Glibc)
import Glibc
#endif

/// The io_uring queue of a QCOW2 image.
///
/// A guest read is resolved under the metadata lock (``QcowMetadata/mapClustersForRead(offset:length:)``)
/// and becomes one READV per allocated region; zero regions are filled inline; compressed
/// regions are read through io_uring into a queue-owned buffer and decompressed when their
/// CQE is reaped (no lock held); backing regions go to a raw backing file's descriptor on this
/// ring, or to the backing image's own queue for other formats. A ``PendingIo`` tracks each
/// request, so the guest completion fires exactly once, after the last region.
/// Writes, zeroes, discards and flushes are in Qcow2AsyncWrite.swift. Owned by one thread.
public final class QcowAsync: AsyncIo {
    final class Request {
        let pending: PendingIo
        let buffer: UnsafeMutableRawBufferPointer
        /// Compressed sub-ops: sub index -> (input buffer, descriptor offset, region).
        var compressed: [Int: (input: UnsafeMutableRawBufferPointer, host: UInt64, mapping: ReadMapping)] = [:]
        let multi: Bool
        /// Write path: the planned host writes.
        var pieces: [WritePiece] = []
        /// Write path: what each sub-op is for, by sub index.
        var roles: [SubRole] = []
        /// Flush path: the batch and its progress.
        var flush: FlushProgress?

        init(pending: PendingIo, buffer: UnsafeMutableRawBufferPointer, multi: Bool) {
            self.pending = pending
            self.buffer = buffer
            self.multi = multi
        }
    }

    let disk: Qcow2Disk
    let ctx: IoUringContext
    var backingQueue: (any AsyncIo)?
    var backingInFlight = 0
    /// The backing file's host file when it maps guest bytes one to one (RAW): reads go
    /// straight to it on this ring instead of through a backing queue.
    let rawBacking: SystemFile?
    var requests: [UInt64: Request] = [:]
    /// Accepting, tracking, completing and publishing: the lifecycle every queue shares.
    let core: QueueCore
    /// Writes, zeroes and flushes waiting for another request's allocation or flush.
    var deferred: Deque<DeferredRequest> = []
    /// Untracked single-op requests; their ring tag is ``directBit`` | the table's tag.
    var directs = TagTable<DirectWaiter>()
    let sink: (any IoEventSink)?
    let queueID: Int32
    let options: QueueOptions
    let decompressor: Qcow2Decompressor
    let scratch: UnsafeMutableRawBufferPointer
    static let subBits: UInt64 = 20

    /// Creates a queue with an io_uring of `options.depth` entries over `disk`'s metadata.
    public init(disk: Qcow2Disk, options: QueueOptions) throws(BlockError) {
        self.disk = disk
        self.options = options
        ctx = try IoUringContext(depth: options.depth)
        core = QueueCore(options: options, path: disk.path)
        sink = core.sink
        queueID = core.queueID
        ctx.eventSink = options.eventSink
        ctx.queueID = queueID
        rawBacking = disk.backing?.identityFile
        decompressor = Qcow2Decompressor(type: disk.header.compressionType)
        scratch = .allocate(byteCount: Int(disk.header.clusterSize), alignment: 4096)
        core.flushStarter = { [unowned self] u throws(BlockError) in try self.fsync(userData: u); _ = try self.submit() }
    }

    deinit { scratch.deallocate() }

    /// The underlying ring (for tests and the UI).
    package var context: IoUringContext { ctx }

    func tag(_ id: UInt64, _ sub: Int) -> UInt64 { id << QcowAsync.subBits | UInt64(sub) }

    /// A request that became one host op with no tracker (the hot paths).
    struct DirectWaiter {
        let userData: UInt64
        let op: GuestOp
        let length: Int
        let start: UInt64
    }

    /// Tags of direct ops carry this bit; tracked requests use `id << subBits | sub`.
    static let directBit: UInt64 = 1 << 63

    /// Queues one host op for a request that needs nothing else (data in one owned cluster);
    /// `start` is the acceptance time, which also stamps its mapping.
    func issueDirect(_ op: GuestOp, fd: Int32, host: UInt64, buffer: UnsafeMutableRawPointer, length: Int, userData: UInt64, offset: UInt64, start: UInt64) {
        core.mappedDirect(userData, offset: offset, length: UInt64(length), host: host, time: start)
        let t = QcowAsync.directBit | directs.park(DirectWaiter(userData: userData, op: op, length: length, start: start))
        ctx.enqueue(op == .read ? .read(fd: fd, offset: host, buffer: buffer, length: length)
                                : .write(fd: fd, offset: host, buffer: UnsafeRawPointer(buffer), length: length), tag: t, request: userData)
    }

    /// The file descriptor ``Qcow2Disk/dataDescriptor(host:length:buffer:write:)`` picks.
    func fd(for host: UInt64, _ buffer: UnsafeRawPointer, _ length: Int, write: Bool) -> Int32 {
        disk.dataDescriptor(host: host, length: length, buffer: buffer, write: write).fd
    }

    /// Completes a direct op.
    func completeDirect(_ t: UInt64, _ res: Int32) {
        guard let w = directs.unpark(t & ~QcowAsync.directBit) else { return }
        core.complete(w.userData, w.op, length: UInt64(w.length), result: res, start: w.start)
    }

    /// Queues a guest read: resolves its regions and queues one host op per region (a read
    /// inside one data cluster is a single untracked READV).
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) throws(BlockError) {
        let length = UInt64(buffer.count)
        let t0 = core.accept(.read, offset: offset, length: length, userData: userData)
        if disk.header.cryptMethod == 0, length > 0, let host = try? disk.metadata.dataHost(offset: offset, length: length) {
            issueDirect(.read, fd: fd(for: host, UnsafeRawPointer(buffer.baseAddress!), buffer.count, write: false), host: host,
                        buffer: buffer.baseAddress!, length: buffer.count, userData: userData, offset: offset, start: t0)
            return
        }
        let maps: [ReadMapping]
        do {
            try disk.checkReadable(offset)
            maps = try disk.metadata.mapClustersForRead(offset: offset, length: length)
        } catch let e {
            finishEarly(userData, .read, length, t0, e)
            return
        }
        if maps.count >= 1 << Int(QcowAsync.subBits) {
            finishEarly(userData, .read, length, t0, BlockError(.invalidArgument, "read of \(length) bytes splits into \(maps.count) regions; split the request", path: disk.path, guestOffset: offset, operation: "read"))
            return
        }
        if let sink {
            let backingSize = disk.backing?.logicalSize ?? 0
            let chain = backingSize > 0 ? disk.backingAllocation : nil
            let kinds = Set(maps.map { $0.regionKind(backingSize: backingSize, chain: chain) })
            var host: UInt64 = 0
            if case let .data(h)? = maps.first?.kind { host = h }
            sink.publish(IoEvent(queue: queueID, request: userData, .mappingResolved(offset: offset, length: length, regions: maps.count, kind: kinds.count == 1 ? kinds.first! : .mixed, hostOffset: host)))
        }
        let pending = core.track(userData, .read, offset: offset, length: length, subOps: maps.count, start: t0)
        let id = pending.id
        let req = Request(pending: pending, buffer: buffer, multi: maps.count > 1)
        requests[id] = req
        for m in maps { issue(m, req, offset) }
        if pending.seal() { completeRequest(id) }
    }

    /// Queues the host op(s) for one region of a read, or does it inline.
    private func issue(_ m: ReadMapping, _ req: Request, _ base: UInt64) {
        let start = Int(m.guestOffset - base)
        let dst = UnsafeMutableRawBufferPointer(rebasing: req.buffer[start..<(start + Int(m.length))])
        let p = req.pending
        switch m.kind {
        case let .data(host):
            let i = p.add(opcode: .readv, hostOffset: host, guestOffset: m.guestOffset, length: m.length)
            let t = tag(p.id, i)
            p.markInFlight(i, sqeTag: t)
            let fd = fd(for: host, UnsafeRawPointer(dst.baseAddress!), dst.count, write: false)
            ctx.enqueue(.read(fd: fd, offset: host, buffer: dst.baseAddress!, length: dst.count), tag: t, request: p.userData)
        case .zero:
            let i = p.add(opcode: nil, hostOffset: 0, guestOffset: m.guestOffset, length: m.length)
            dst.initializeMemory(as: UInt8.self, repeating: 0)
            p.finish(i, result: Int32(clamping: m.length))
        case .backing:
            let n = disk.backingBytes(at: m.guestOffset, length: m.length)
            if n < dst.count { UnsafeMutableRawBufferPointer(rebasing: dst[n...]).initializeMemory(as: UInt8.self, repeating: 0) }
            let i = p.add(opcode: n > 0 ? .readv : nil, hostOffset: m.guestOffset, guestOffset: m.guestOffset, length: m.length)
            if n == 0 { p.finish(i, result: Int32(clamping: m.length)); return }
            let t = tag(p.id, i)
            p.markInFlight(i, sqeTag: t)
            let part = UnsafeMutableRawBufferPointer(rebasing: dst[0..<n])
            if let raw = rawBacking {
                ctx.enqueue(.read(fd: raw.fd, offset: m.guestOffset, buffer: part.baseAddress!, length: n), tag: t, request: p.userData)
                return
            }
            do {
                if backingQueue == nil {
                    backingQueue = try disk.backing!.makeQueue(QueueOptions(depth: options.depth, queueID: options.queueID, engine: options.engine, eventSink: nil))
                }
                try backingQueue!.read(at: m.guestOffset, into: part, userData: t)
                backingInFlight += 1
            } catch let e {
                p.finish(i, result: -EIO, error: e)
            }
        case let .compressed(d, _):
            let i = p.add(opcode: .readv, hostOffset: d.hostOffset, guestOffset: m.guestOffset, length: m.length)
            let t = tag(p.id, i)
            p.markInFlight(i, sqeTag: t)
            let input = UnsafeMutableRawBufferPointer.allocate(byteCount: d.length, alignment: 512)
            req.compressed[i] = (input, d.hostOffset, m)
            ctx.enqueue(.read(fd: disk.file.fd, offset: d.hostOffset, buffer: input.baseAddress!, length: d.length), tag: t, request: p.userData)
        }
    }

    /// Handles one finished host op (`res` bytes or -errno).
    private func handle(_ t: UInt64, _ res: Int32, _ error: BlockError?) {
        if t & QcowAsync.directBit != 0 { completeDirect(t, res); return }
        let id = t >> QcowAsync.subBits
        let sub = Int(t & ((1 << QcowAsync.subBits) - 1))
        guard let req = requests[id] else { return }
        if req.pending.op != .read {
            handleWrite(req, id, sub, res, error)
            return
        }
        var err = error
        if let c = req.compressed.removeValue(forKey: sub) {
            defer { c.input.deallocate() }
            if res >= 0 && err == nil, case let .compressed(_, off) = c.mapping.kind {
                let start = Int(c.mapping.guestOffset - req.pending.guestOffset)
                let dst = UnsafeMutableRawBufferPointer(rebasing: req.buffer[start..<(start + Int(c.mapping.length))])
                do {
                    try decompressor.decompress(UnsafeRawBufferPointer(c.input), part: dst, offsetInCluster: off, scratch: scratch,
                                                path: disk.path, hostOffset: c.host, guestOffset: c.mapping.guestOffset)
                } catch let e { err = e }
            }
        }
        let length = Int32(clamping: req.pending.subOps[sub].length)
        if req.pending.finish(sub, result: err != nil ? -EIO : (res < 0 ? res : length), error: err) {
            completeRequest(id)
        }
    }

    func completeRequest(_ id: UInt64) {
        guard let req = requests.removeValue(forKey: id) else { return }
        for (_, c) in req.compressed { c.input.deallocate() }
        releaseWriteState(req)
        core.complete(req.pending)
    }

    /// Completes a request that ended before any host op (an error, or nothing to do).
    func finishEarly(_ userData: UInt64, _ op: GuestOp, _ length: UInt64, _ start: UInt64, _ e: BlockError?) {
        core.complete(userData, op, length: length, error: e, start: start)
    }

    /// Hands queued SQEs to the kernel (and the backing queue's).
    @discardableResult
    public func submit() throws(BlockError) -> Int {
        var n = ctx.submit()
        if let b = backingQueue { n += try b.submit() }
        return n
    }

    func drain(wait: Bool) throws(BlockError) {
        try ctx.reap(wait: wait) { t, res in self.handle(t, res, nil) }
        drainBacking()
        if !deferred.isEmpty { retryDeferred() }
    }

    private func drainBacking() {
        guard let b = backingQueue else { return }
        while let c = b.nextCompletion() {
            backingInFlight -= 1
            handle(c.userData, c.error == nil ? Int32(clamping: c.bytes) : -(c.error?.errno ?? EIO), c.error)
        }
    }

    /// The next finished request (reaps without blocking when none is ready).
    public func nextCompletion() -> IoCompletion? {
        core.next { try? drain(wait: false) }
    }

    /// Blocks until a completion is ready or nothing is in flight.
    public func waitForCompletion() throws(BlockError) {
        while !core.hasReady {
            try drain(wait: false)
            if core.hasReady { return }
            let own = ctx.inFlight > 0
            if !own && backingInFlight == 0 {
                // Only requests waiting for another queue's allocation or flush remain.
                if deferred.isEmpty { return }
                // Retry; if everything is still blocked, sleep until another queue's commit
                // or flush end bumps the metadata's change signal (no polling).
                let seen = disk.metadata.changes.generation
                retryDeferred()
                if ctx.inFlight == 0 && backingInFlight == 0 && !core.hasReady && !deferred.isEmpty {
                    disk.metadata.changes.wait(past: seen)
                }
                continue
            }
            if backingInFlight == 0 {
                try drain(wait: true)
            } else if !own {
                try backingQueue!.waitForCompletion()
                drainBacking()
            } else {
                try waitEither()
            }
        }
    }

    /// Waits for either ring's eventfd (both have work in flight).
    private func waitEither() throws(BlockError) {
        let a = ctx.eventFD, b = backingQueue?.eventFD ?? -1
        if a < 0 || b < 0 {
            // No eventfds: our own ops complete on their own, so waiting on the backing is safe.
            try backingQueue!.waitForCompletion()
            return
        }
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        let r = Syscall.poll(&fds, 2, 100)
        if r < 0 { throw BlockError.system(errno, "poll") }
        var v: UInt64 = 0
        for f in fds where f.revents != 0 { _ = Glibc.read(f.fd, &v, 8) }
    }

    /// Requests accepted and not yet collected.
    public var inFlight: Int { core.inFlight }
    /// The ring's eventfd (backing-queue completions are not signalled on it).
    public var eventFD: Int32 { ctx.eventFD }

    /// Tears the ring (and a backing queue) down and leaves the in-flight registry.
    public func close() {
        backingQueue?.close()
        ctx.close()
        core.close()
        for (_, r) in requests {
            for (_, c) in r.compressed { c.input.deallocate() }
            releaseWriteState(r)
        }
        requests.removeAll()
    }
}

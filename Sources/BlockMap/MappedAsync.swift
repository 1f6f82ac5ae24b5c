import BlockIO
import DequeModule

/// The io_uring queue of a block-mapped image (VHDX and VHD share it).
///
/// Each guest request is mapped under the format's lock (``BlockMappedDisk/mapForRead(_:_:)``,
/// allocation for writes), then its `.data` regions become READV/WRITEV SQEs on this queue's
/// ``IoUringContext``; zero regions are filled inline and parent regions read from the parent
/// synchronously. A request that maps to one host range carries its own tag; one that spans
/// several gets a ``PendingIo`` that completes exactly once. Flushes are IORING_OP_FSYNC.
/// Owned by one thread; many queues share the disk's metadata and read concurrently.
package final class MappedAsync: AsyncIo {
    private enum Waiter {
        case direct(userData: UInt64, op: GuestOp, length: UInt64, start: UInt64, mark: UInt64)
        case sub(PendingIo, Int)
    }

    private let disk: any BlockMappedDisk
    private let ctx: IoUringContext
    private let core: QueueCore
    /// What each ring tag waits for (``TagTable``: no hashing or allocation per request).
    private var waiters = TagTable<Waiter>()

    /// Creates a queue with an io_uring of `options.depth` entries.
    public init(disk: any BlockMappedDisk, options: QueueOptions) throws(BlockError) {
        self.disk = disk
        self.ctx = try IoUringContext(depth: options.depth)
        core = QueueCore(options: options, path: disk.path)
        ctx.eventSink = options.eventSink
        ctx.queueID = core.queueID
        core.flushStarter = { [unowned self] u throws(BlockError) in try self.fsync(userData: u); _ = try self.submit() }
    }

    /// The underlying ring (for tests and the UI).
    public var context: IoUringContext { ctx }

    /// Queues one READV/WRITEV of the whole guest buffer at `host` (a request in one block).
    private func submitDirect(_ op: GuestOp, _ host: UInt64, _ buffer: UnsafeMutableRawBufferPointer, _ userData: UInt64, start: UInt64) {
        let t = waiters.park(.direct(userData: userData, op: op, length: UInt64(buffer.count), start: start, mark: 0))
        let fd = disk.dataFD
        ctx.enqueue(op == .read ? .read(fd: fd, offset: host, buffer: buffer.baseAddress!, length: buffer.count)
                                : .write(fd: fd, offset: host, buffer: buffer.baseAddress!, length: buffer.count), tag: t, request: userData)
    }

    private func publishMapping(_ userData: UInt64, _ offset: UInt64, _ length: UInt64, _ regions: [BlockRegion]) {
        guard core.publishes else { return }
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
        core.publish(userData, .mappingResolved(offset: offset, length: length, regions: regions.count, kind: kind, hostOffset: host))
    }

    private func submitMapped(_ op: GuestOp, _ offset: UInt64, _ buffer: UnsafeMutableRawBufferPointer, _ userData: UInt64, _ regions: [BlockRegion], start: UInt64) {
        publishMapping(userData, offset, UInt64(buffer.count), regions)
        let fd = disk.dataFD
        if regions.count == 1, case let .data(host) = regions[0].kind {
            submitDirect(op, host, buffer, userData, start: start)
            return
        }
        let p = core.track(userData, op, offset: offset, length: UInt64(buffer.count), subOps: regions.count, start: start)
        for r in regions {
            let s = Int(r.guestOffset - offset)
            let sub = UnsafeMutableRawBufferPointer(rebasing: buffer[s..<(s + Int(r.length))])
            switch r.kind {
            case let .data(host):
                let i = p.add(opcode: op == .read ? .readv : .writev, hostOffset: host, guestOffset: r.guestOffset, length: r.length)
                let t = waiters.park(.sub(p, i))
                p.markInFlight(i, sqeTag: t)
                ctx.enqueue(op == .read ? .read(fd: fd, offset: host, buffer: sub.baseAddress!, length: sub.count)
                                        : .write(fd: fd, offset: host, buffer: sub.baseAddress!, length: sub.count), tag: t, request: userData)
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
        if p.seal() { core.complete(p) }
    }

    /// Maps the range and queues READV SQEs for its data regions.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) throws(BlockError) {
        let length = UInt64(buffer.count)
        let t0 = core.accept(.read, offset: offset, length: length, userData: userData)
        do {
            try disk.checkRange(offset, length, "read", write: false)
            if buffer.count == 0 { core.complete(userData, .read, length: 0, error: nil, start: t0); return }
            if let host = disk.mappedHostOffset(offset, length, write: false) {
                core.mappedDirect(userData, offset: offset, length: length, host: host, time: t0)
                submitDirect(.read, host, buffer, userData, start: t0)
                return
            }
            submitMapped(.read, offset, buffer, userData, try disk.mapForRead(offset, length), start: t0)
        } catch let e { core.complete(userData, .read, length: length, error: e, start: t0) }
    }

    /// Maps the range (allocating blocks under the metadata lock) and queues WRITEV SQEs.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, userData: UInt64) throws(BlockError) {
        let length = UInt64(buffer.count)
        let t0 = core.accept(.write, offset: offset, length: length, userData: userData)
        do {
            try disk.checkRange(offset, length, "write", write: true)
            if buffer.count == 0 { core.complete(userData, .write, length: 0, error: nil, start: t0); return }
            if let host = disk.mappedHostOffset(offset, length, write: true) {
                core.mappedDirect(userData, offset: offset, length: length, host: host, time: t0)
                submitDirect(.write, host, UnsafeMutableRawBufferPointer(mutating: buffer), userData, start: t0)
                return
            }
            let regions = try disk.mapForWrite(offset, length, queue: core.queueID, request: userData, sink: core.sink)
            submitMapped(.write, offset, UnsafeMutableRawBufferPointer(mutating: buffer), userData, regions, start: t0)
        } catch let e { core.complete(userData, .write, length: length, error: e, start: t0) }
    }

    /// Zeroes inline (BAT updates through the metadata) and completes at once.
    public func writeZeroes(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = core.accept(.zero, offset: offset, length: length, userData: userData)
        var err: BlockError?
        do { try disk.writeZeroes(at: offset, length: length) } catch let e { err = e }
        core.complete(userData, .zero, length: length, error: err, start: t0)
    }

    /// Discards inline and completes at once.
    public func discard(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = core.accept(.discard, offset: offset, length: length, userData: userData)
        var err: BlockError?
        do { try disk.discard(at: offset, length: length) } catch let e { err = e }
        core.complete(userData, .discard, length: length, error: err, start: t0)
    }

    /// Queues IORING_OP_FSYNC (metadata is already written through the log when it changes,
    /// so the metadata phase is done when the flush starts).
    public func fsync(userData: UInt64) throws(BlockError) {
        let t0 = core.accept(.fsync, offset: 0, length: 0, userData: userData)
        core.fsyncPhase(userData, .fsyncSubmitted)
        let t = waiters.park(.direct(userData: userData, op: .fsync, length: 0, start: t0, mark: disk.flushMark()))
        ctx.enqueue(.fsync(fd: disk.dataFD, dataOnly: true), tag: t, request: userData)
    }

    /// Marks the next request under `userData` force unit access (its flush runs inside it).
    public func forceUnitAccess(userData: UInt64) { core.armForceUnitAccess(userData) }
    /// Makes the next requests under `userData` parts of one request (``QueueCore``).
    public func beginParts(userData: UInt64, op: GuestOp, length: UInt64) { core.beginParts(userData, op: op, length: length) }
    /// Ends the parts of request `userData`.
    public func endParts(userData: UInt64) { core.endParts(userData) }

    /// Hands queued SQEs to the kernel.
    @discardableResult
    public func submit() throws(BlockError) -> Int { ctx.submit() }

    private func drain(wait: Bool) throws(BlockError) {
        try ctx.reap(wait: wait) { t, res in
            guard let w = self.waiters.unpark(t) else { return }
            switch w {
            case let .direct(userData, op, length, start, mark):
                if op == .fsync && res >= 0 { self.disk.flushCompleted(mark) }
                self.core.complete(userData, op, length: length, result: res, start: start, now: self.ctx.completing.completeTime)
            case let .sub(p, i):
                if p.finish(i, result: res) { self.core.complete(p) }
            }
        }
    }

    /// The next finished request (reaps the CQ without blocking when none is ready).
    public func nextCompletion() -> IoCompletion? {
        core.next { try? drain(wait: false) }
    }

    /// Blocks until a completion is ready (submitting what is queued).
    public func waitForCompletion() throws(BlockError) {
        if core.hasReady { return }
        try drain(wait: true)
    }

    /// Requests accepted and not yet collected.
    public var inFlight: Int { core.inFlight }
    /// The ring's eventfd.
    public var eventFD: Int32 { ctx.eventFD }
    /// Tears the ring down and leaves the in-flight registry.
    public func close() {
        ctx.close()
        core.close()
    }
}

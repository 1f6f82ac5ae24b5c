import BlockIO
import BlockInspect
import BlockMap

/// The io_uring queue of a VMDK.
///
/// Each guest request is mapped under the disk's metadata lock (``VmdkDisk/mapForRead(_:_:)``;
/// allocation for writes), then its data regions become READV/WRITEV SQEs on the extent
/// files' descriptors through this queue's ``IoUringContext``. A compressed grain is read
/// through the ring into a queue-owned buffer and inflated when its CQE arrives; zero regions
/// are filled inline and parent regions read from the parent synchronously. A request of one
/// data region carries its own tag; others get a ``PendingIo`` that completes exactly once.
/// A flush is one IORING_OP_FSYNC per extent file. Owned by one thread.
public final class VmdkAsync: AsyncIo {
    private enum Waiter {
        case direct(userData: UInt64, op: GuestOp, length: UInt64, start: UInt64)
        case sub(PendingIo, Int)
        case compressed(PendingIo, Int, raw: UnsafeMutableRawBufferPointer, out: UnsafeMutableRawBufferPointer, region: VmdkRegion)
    }

    private let disk: VmdkDisk
    private let ctx: IoUringContext
    private let core: QueueCore
    private var waiters = TagTable<Waiter>()
    /// One descriptor per distinct extent file (the flush's targets).
    private let flushFDs: [Int32]

    /// Creates a queue with an io_uring of `options.depth` entries.
    public init(disk: VmdkDisk, options: QueueOptions) throws(BlockError) {
        self.disk = disk
        ctx = try IoUringContext(depth: options.depth)
        core = QueueCore(options: options, path: disk.path)
        ctx.eventSink = options.eventSink
        ctx.queueID = core.queueID
        var fds: [Int32] = [disk.file.fd]
        for e in disk.extents { if let f = e.file, !fds.contains(f.fd) { fds.append(f.fd) } }
        flushFDs = fds
        core.flushStarter = { [unowned self] u throws(BlockError) in try self.fsync(userData: u); _ = try self.submit() }
    }

    private func fd(_ extent: Int) -> Int32 { disk.extents[extent].file!.fd }

    private func publishMapping(_ userData: UInt64, _ offset: UInt64, _ length: UInt64, _ regions: [VmdkRegion]) {
        guard core.publishes else { return }
        var kind: RegionKind = .allocated
        var host: UInt64 = 0
        if let f = regions.first {
            switch f.kind {
            case let .data(_, h): host = h
            case .zero: kind = .zero
            case .parent: kind = .unallocated
            case let .compressed(_, h, _): kind = .compressed; host = h
            }
        }
        if regions.count > 1 { kind = .mixed }
        core.publish(userData, .mappingResolved(offset: offset, length: length, regions: regions.count, kind: kind, hostOffset: host))
    }

    private func submit(_ op: GuestOp, _ offset: UInt64, _ buffer: UnsafeMutableRawBufferPointer, _ userData: UInt64, _ regions: [VmdkRegion], start: UInt64) {
        publishMapping(userData, offset, UInt64(buffer.count), regions)
        if regions.count == 1, case let .data(e, host) = regions[0].kind {
            let t = waiters.park(.direct(userData: userData, op: op, length: UInt64(buffer.count), start: start))
            ctx.enqueue(op == .read ? .read(fd: fd(e), offset: host, buffer: buffer.baseAddress!, length: buffer.count)
                                    : .write(fd: fd(e), offset: host, buffer: buffer.baseAddress!, length: buffer.count), tag: t, request: userData)
            return
        }
        let p = core.track(userData, op, offset: offset, length: UInt64(buffer.count), subOps: regions.count, start: start)
        for r in regions {
            let s = Int(r.guestOffset - offset)
            let sub = UnsafeMutableRawBufferPointer(rebasing: buffer[s..<(s + Int(r.length))])
            switch r.kind {
            case let .data(e, host):
                let i = p.add(opcode: op == .read ? .readv : .writev, hostOffset: host, guestOffset: r.guestOffset, length: r.length)
                let t = waiters.park(.sub(p, i))
                p.markInFlight(i, sqeTag: t)
                ctx.enqueue(op == .read ? .read(fd: fd(e), offset: host, buffer: sub.baseAddress!, length: sub.count)
                                        : .write(fd: fd(e), offset: host, buffer: sub.baseAddress!, length: sub.count), tag: t, request: userData)
            case let .compressed(e, host, _):
                let g = disk.extents[e].grains!
                let n = Int(min(2 * g.grainBytes + 512, g.fileSize - host))
                let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 4096)
                let i = p.add(opcode: .readv, hostOffset: host, guestOffset: r.guestOffset, length: r.length)
                let t = waiters.park(.compressed(p, i, raw: raw, out: sub, region: r))
                p.markInFlight(i, sqeTag: t)
                ctx.enqueue(.read(fd: fd(e), offset: host, buffer: raw.baseAddress!, length: n), tag: t, request: userData)
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

    /// Maps the range and queues READV SQEs for its data and compressed regions.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) throws(BlockError) {
        let length = UInt64(buffer.count)
        let t0 = core.accept(.read, offset: offset, length: length, userData: userData)
        do {
            try disk.checkRange(offset, length, "read", write: false)
            if buffer.count == 0 { core.complete(userData, .read, length: 0, error: nil, start: t0); return }
            submit(.read, offset, buffer, userData, try disk.mapForRead(offset, length), start: t0)
        } catch let e { core.complete(userData, .read, length: length, error: e, start: t0) }
    }

    /// Maps the range (allocating grains under the metadata lock) and queues WRITEV SQEs.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, userData: UInt64) throws(BlockError) {
        let length = UInt64(buffer.count)
        let t0 = core.accept(.write, offset: offset, length: length, userData: userData)
        do {
            try disk.checkRange(offset, length, "write", write: true)
            if buffer.count == 0 { core.complete(userData, .write, length: 0, error: nil, start: t0); return }
            let regions = try disk.mapForWrite(offset, length, queue: core.queueID, request: userData, sink: core.sink)
            submit(.write, offset, UnsafeMutableRawBufferPointer(mutating: buffer), userData, regions, start: t0)
        } catch let e { core.complete(userData, .write, length: length, error: e, start: t0) }
    }

    /// Zeroes inline (``VmdkDisk/writeZeroes(at:length:)``) and completes at once.
    public func writeZeroes(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = core.accept(.zero, offset: offset, length: length, userData: userData)
        var err: BlockError?
        do { try disk.writeZeroes(at: offset, length: length) } catch let e { err = e }
        core.complete(userData, .zero, length: length, error: err, start: t0)
    }

    /// VMDK has no discard: checks the range and completes at once.
    public func discard(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = core.accept(.discard, offset: offset, length: length, userData: userData)
        var err: BlockError?
        do { try disk.discard(at: offset, length: length) } catch let e { err = e }
        core.complete(userData, .discard, length: length, error: err, start: t0)
    }

    /// Queues one IORING_OP_FSYNC per extent file (grain tables are written when they
    /// change, so the metadata phase is done when the flush starts).
    public func fsync(userData: UInt64) throws(BlockError) {
        let t0 = core.accept(.fsync, offset: 0, length: 0, userData: userData)
        core.fsyncPhase(userData, .fsyncSubmitted)
        if flushFDs.count == 1 {
            let t = waiters.park(.direct(userData: userData, op: .fsync, length: 0, start: t0))
            ctx.enqueue(.fsync(fd: flushFDs[0], dataOnly: false), tag: t, request: userData)
            return
        }
        let p = core.track(userData, .fsync, offset: 0, length: 0, subOps: flushFDs.count, start: t0)
        for f in flushFDs {
            let i = p.add(opcode: .fsync, hostOffset: 0, guestOffset: 0, length: 0)
            let t = waiters.park(.sub(p, i))
            p.markInFlight(i, sqeTag: t)
            ctx.enqueue(.fsync(fd: f, dataOnly: false), tag: t, request: userData)
        }
        if p.seal() { core.complete(p) }
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
            case let .direct(userData, op, length, start):
                self.core.complete(userData, op, length: length, result: res, start: start, now: self.ctx.completing.completeTime)
            case let .sub(p, i):
                if p.finish(i, result: res) { self.core.complete(p) }
            case let .compressed(p, i, raw, out, region):
                var done: Bool
                if res < 0 { done = p.finish(i, result: res) } else {
                    do throws(BlockError) {
                        guard case let .compressed(e, host, inGrain) = region.kind else { return }
                        let g = self.disk.extents[e].grains!
                        try VmdkCompression.inflateGrain(UnsafeRawBufferPointer(rebasing: raw[0..<Int(res)]), markers: g.markers, grainBytes: g.grainBytes,
                                                         inGrain: inGrain, into: out, path: self.disk.extents[e].path ?? self.disk.path, host: host, guest: region.guestOffset)
                        done = p.finish(i, result: Int32(clamping: region.length))
                    } catch let err { done = p.finish(i, result: -5, error: err) }
                }
                raw.deallocate()
                if done { self.core.complete(p) }
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

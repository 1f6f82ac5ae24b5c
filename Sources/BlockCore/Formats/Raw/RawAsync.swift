import DequeModule

/// The io_uring queue of a raw image: one guest request is one READV/WRITEV/FSYNC SQE.
///
/// Guest reads and writes go through ``IoUringContext`` with the guest's userData as the
/// SQE tag (no tracker needed: a raw request never splits). Zero and discard run inline
/// (`fallocate`, metadata-like and rare) and complete at once. Owned by one thread.
public final class RawAsync: AsyncIo {
    private let disk: RawDisk
    private let ctx: IoUringContext
    private var ready: Deque<IoCompletion> = []
    private var accepted = 0
    private let sink: (any IoEventSink)?
    private let queueID: Int32

    /// Creates a queue with an io_uring of `options.depth` entries.
    public init(disk: RawDisk, options: QueueOptions) throws(BlockError) {
        self.disk = disk
        self.ctx = try IoUringContext(depth: options.depth)
        self.sink = options.eventSink
        self.queueID = Int32(options.queueID)
        ctx.eventSink = options.eventSink
        ctx.queueID = queueID
    }

    /// The underlying ring (for tests and the UI).
    public var context: IoUringContext { ctx }

    private func bounds(_ offset: UInt64, _ length: UInt64, _ op: String, write: Bool) -> BlockError? {
        let (end, o) = offset.addingReportingOverflow(length)
        if o || end > disk.logicalSize {
            return BlockError(.outOfBounds, "\(op) of \(length) bytes at \(hex(offset)) ends past the end of the disk (size \(disk.logicalSize))", path: disk.path, guestOffset: offset, operation: op)
        }
        if write && !disk.isWritable {
            return BlockError(.readOnly, "image is open read-only: cannot \(op)", path: disk.path, guestOffset: offset, operation: op)
        }
        return nil
    }

    /// Counts the request and publishes its acceptance; returns the time read (0 without a sink).
    @discardableResult
    private func accept(_ op: GuestOp, _ offset: UInt64, _ length: UInt64, _ userData: UInt64) -> UInt64 {
        accepted += 1
        guard let sink else { return 0 }
        let now = monotonicNanos()
        sink.publish(IoEvent(queue: queueID, request: userData, time: now, .guestRequest(op: op, offset: offset, length: length)))
        if op != .fsync {
            sink.publish(IoEvent(queue: queueID, request: userData, time: now, .mappingResolved(offset: offset, length: length, regions: 1, kind: .allocated, hostOffset: offset)))
        }
        return now
    }

    /// Queues a READV of the guest range at the same host offset.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) throws(BlockError) {
        let t0 = accept(.read, offset, UInt64(buffer.count), userData)
        if let e = bounds(offset, UInt64(buffer.count), "read", write: false) { completeInline(.read, userData, t0, -1, e); return }
        ctx.enqueue(.read(fd: disk.file.fd, offset: offset, buffer: buffer.baseAddress!, length: buffer.count), tag: userData)
    }

    /// Queues a WRITEV of the guest range at the same host offset.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, userData: UInt64) throws(BlockError) {
        let t0 = accept(.write, offset, UInt64(buffer.count), userData)
        if let e = bounds(offset, UInt64(buffer.count), "write", write: true) { completeInline(.write, userData, t0, -1, e); return }
        ctx.enqueue(.write(fd: disk.file.fd, offset: offset, buffer: buffer.baseAddress!, length: buffer.count), tag: userData)
    }

    /// Zeroes the range inline (`fallocate`) and completes at once.
    public func writeZeroes(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = accept(.zero, offset, length, userData)
        do { try disk.writeZeroes(at: offset, length: length); completeInline(.zero, userData, t0, Int32(clamping: length), nil) }
        catch let e { completeInline(.zero, userData, t0, -1, e) }
    }

    /// Punches a hole inline and completes at once.
    public func discard(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = accept(.discard, offset, length, userData)
        do { try disk.discard(at: offset, length: length); completeInline(.discard, userData, t0, Int32(clamping: length), nil) }
        catch let e { completeInline(.discard, userData, t0, -1, e) }
    }

    /// Queues IORING_OP_FSYNC with IORING_FSYNC_DATASYNC.
    public func fsync(userData: UInt64) throws(BlockError) {
        let t0 = accept(.fsync, 0, 0, userData)
        sink?.publish(IoEvent(queue: queueID, request: userData, time: t0, .fsyncPhase(.fsyncSubmitted)))
        ctx.enqueue(.fsync(fd: disk.file.fd, dataOnly: true), tag: userData)
    }

    /// Hands queued SQEs to the kernel.
    @discardableResult
    public func submit() throws(BlockError) -> Int { ctx.submit() }

    private static func guestOp(_ opcode: IoOpcode) -> GuestOp {
        switch opcode {
        case .readv: return .read
        case .writev: return .write
        case .fsync, .fdatasync: return .fsync
        }
    }

    /// Completes a request whose SQE was just reaped: op and timing come from the context.
    private func complete(_ userData: UInt64, _ res: Int32) {
        let info = ctx.completing
        let op = RawAsync.guestOp(info.opcode)
        var c = IoCompletion(userData: userData, bytes: res >= 0 ? Int(res) : 0)
        if res < 0 {
            c.error = BlockError.system(-res, op == .fsync ? "fsync" : (op == .read ? "read" : "write"), path: disk.path)
        }
        if let sink {
            if op == .fsync { sink.publish(IoEvent(queue: queueID, request: userData, time: info.completeTime, .fsyncPhase(.completed))) }
            sink.publish(IoEvent(queue: queueID, request: userData, time: info.completeTime, .guestCompleted(op: op, userData: userData, result: res, latencyNs: info.completeTime &- info.submitTime)))
        }
        ready.append(c)
    }

    /// Completes a request that ran inline (zero, discard) or failed before reaching the ring.
    private func completeInline(_ op: GuestOp, _ userData: UInt64, _ t0: UInt64, _ res: Int32, _ error: BlockError?) {
        ready.append(IoCompletion(userData: userData, bytes: res >= 0 ? Int(res) : 0, error: error))
        if let sink {
            let now = monotonicNanos()
            sink.publish(IoEvent(queue: queueID, request: userData, time: now, .guestCompleted(op: op, userData: userData, result: error == nil ? res : -(error?.errno ?? 5), latencyNs: now &- t0)))
        }
    }

    private func drain(wait: Bool) throws(BlockError) {
        try ctx.reap(wait: wait) { tag, res in
            self.complete(tag, res)
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

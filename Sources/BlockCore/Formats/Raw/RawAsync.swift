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
    private var ops: [UInt64: (GuestOp, UInt64)] = [:]

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
            return BlockError(.readOnly, "image is open read-only; give --write to \(op)", path: disk.path, guestOffset: offset, operation: op)
        }
        return nil
    }

    private func accept(_ op: GuestOp, _ offset: UInt64, _ length: UInt64, _ userData: UInt64) {
        accepted += 1
        if let sink {
            ops[userData] = (op, monotonicNanos())
            sink.publish(IoEvent(queue: queueID, request: userData, .guestRequest(op: op, offset: offset, length: length)))
            sink.publish(IoEvent(queue: queueID, request: userData, .mappingResolved(offset: offset, length: length, regions: 1, kind: .allocated, hostOffset: offset)))
        }
    }

    /// Queues a READV of the guest range at the same host offset.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) throws(BlockError) {
        accept(.read, offset, UInt64(buffer.count), userData)
        if let e = bounds(offset, UInt64(buffer.count), "read", write: false) { complete(userData, -1, e); return }
        ctx.enqueue(.read(fd: disk.file.fd, offset: offset, buffer: buffer.baseAddress!, length: buffer.count), tag: userData)
    }

    /// Queues a WRITEV of the guest range at the same host offset.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, userData: UInt64) throws(BlockError) {
        accept(.write, offset, UInt64(buffer.count), userData)
        if let e = bounds(offset, UInt64(buffer.count), "write", write: true) { complete(userData, -1, e); return }
        ctx.enqueue(.write(fd: disk.file.fd, offset: offset, buffer: buffer.baseAddress!, length: buffer.count), tag: userData)
    }

    /// Zeroes the range inline (`fallocate`) and completes at once.
    public func writeZeroes(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        accept(.zero, offset, length, userData)
        do { try disk.writeZeroes(at: offset, length: length); complete(userData, Int32(clamping: length), nil) }
        catch let e { complete(userData, -1, e) }
    }

    /// Punches a hole inline and completes at once.
    public func discard(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        accept(.discard, offset, length, userData)
        do { try disk.discard(at: offset, length: length); complete(userData, Int32(clamping: length), nil) }
        catch let e { complete(userData, -1, e) }
    }

    /// Queues IORING_OP_FSYNC with IORING_FSYNC_DATASYNC.
    public func fsync(userData: UInt64) throws(BlockError) {
        accept(.fsync, 0, 0, userData)
        sink?.publish(IoEvent(queue: queueID, request: userData, .fsyncPhase(.fsyncSubmitted)))
        ctx.enqueue(.fsync(fd: disk.file.fd, dataOnly: true), tag: userData)
    }

    /// Hands queued SQEs to the kernel.
    @discardableResult
    public func submit() throws(BlockError) -> Int { ctx.submit() }

    private func complete(_ userData: UInt64, _ res: Int32, _ error: BlockError?) {
        var c = IoCompletion(userData: userData, bytes: res >= 0 ? Int(res) : 0, error: error)
        if res < 0 && error == nil {
            let op = ops[userData]?.0
            c.error = BlockError.system(-res, op == .fsync ? "fsync" : (op == .read ? "read" : "write"), path: disk.path)
        }
        if let sink {
            let (op, t0) = ops.removeValue(forKey: userData) ?? (.read, monotonicNanos())
            if op == .fsync { sink.publish(IoEvent(queue: queueID, request: userData, .fsyncPhase(.completed))) }
            sink.publish(IoEvent(queue: queueID, request: userData, .guestCompleted(op: op, userData: userData, result: c.error == nil ? res : -(c.error?.errno ?? 5), latencyNs: monotonicNanos() &- t0)))
        }
        ready.append(c)
    }

    private func drain(wait: Bool) throws(BlockError) {
        try ctx.reap(wait: wait) { tag, res in
            self.complete(tag, res, nil)
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

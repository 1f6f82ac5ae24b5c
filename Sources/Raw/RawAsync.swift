import BlockIO
import DequeModule

/// The io_uring queue of a raw image: one guest request is one READV/WRITEV/FSYNC SQE.
///
/// Guest reads and writes go through ``IoUringContext`` with the guest's userData as the
/// SQE tag (no tracker needed: a raw request never splits). Zero and discard run inline
/// (`fallocate`, metadata-like and rare) and complete at once. Owned by one thread.
package final class RawAsync: AsyncIo {
    private let disk: RawDisk
    private let ctx: IoUringContext
    private let core: QueueCore

    /// Creates a queue with an io_uring of `options.depth` entries.
    public init(disk: RawDisk, options: QueueOptions) throws(BlockError) {
        self.disk = disk
        self.ctx = try IoUringContext(depth: options.depth)
        core = QueueCore(options: options, path: disk.path)
        ctx.eventSink = options.eventSink
        ctx.queueID = core.queueID
        core.flushStarter = { [unowned self] u throws(BlockError) in try self.fsync(userData: u); _ = try self.submit() }
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

    /// Accepts the request (the host range is the guest range: its mapping is published at once).
    @inline(__always)
    private func accept(_ op: GuestOp, _ offset: UInt64, _ length: UInt64, _ userData: UInt64) -> UInt64 {
        let t0 = core.accept(op, offset: offset, length: length, userData: userData)
        if op != .fsync { core.mappedDirect(userData, offset: offset, length: length, host: offset, time: t0) }
        return t0
    }

    /// Queues a READV of the guest range at the same host offset.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) throws(BlockError) {
        let t0 = accept(.read, offset, UInt64(buffer.count), userData)
        if let e = bounds(offset, UInt64(buffer.count), "read", write: false) { core.complete(userData, .read, length: UInt64(buffer.count), error: e, start: t0); return }
        ctx.enqueue(.read(fd: disk.file.fd, offset: offset, buffer: buffer.baseAddress!, length: buffer.count), tag: userData)
    }

    /// Queues a WRITEV of the guest range at the same host offset.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, userData: UInt64) throws(BlockError) {
        let t0 = accept(.write, offset, UInt64(buffer.count), userData)
        if let e = bounds(offset, UInt64(buffer.count), "write", write: true) { core.complete(userData, .write, length: UInt64(buffer.count), error: e, start: t0); return }
        ctx.enqueue(.write(fd: disk.file.fd, offset: offset, buffer: buffer.baseAddress!, length: buffer.count), tag: userData)
    }

    /// Zeroes the range inline (`fallocate`) and completes at once.
    public func writeZeroes(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = accept(.zero, offset, length, userData)
        var err: BlockError?
        do { try disk.writeZeroes(at: offset, length: length) } catch let e { err = e }
        core.complete(userData, .zero, length: length, error: err, start: t0)
    }

    /// Punches a hole inline and completes at once.
    public func discard(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = accept(.discard, offset, length, userData)
        var err: BlockError?
        do { try disk.discard(at: offset, length: length) } catch let e { err = e }
        core.complete(userData, .discard, length: length, error: err, start: t0)
    }

    /// Queues IORING_OP_FSYNC with IORING_FSYNC_DATASYNC (a raw image has no metadata).
    public func fsync(userData: UInt64) throws(BlockError) {
        accept(.fsync, 0, 0, userData)
        core.fsyncPhase(userData, .fsyncSubmitted)
        ctx.enqueue(.fsync(fd: disk.file.fd, dataOnly: true), tag: userData)
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

    private static func guestOp(_ opcode: IoOpcode) -> GuestOp {
        switch opcode {
        case .readv: return .read
        case .writev: return .write
        case .fsync, .fdatasync: return .fsync
        }
    }

    /// Completes a request whose SQE was just reaped: op, length and timing come from the context.
    private func complete(_ userData: UInt64, _ res: Int32) {
        let info = ctx.completing
        core.complete(userData, RawAsync.guestOp(info.opcode), length: UInt64(max(res, 0)), result: res, start: info.submitTime, now: info.completeTime)
    }

    private func drain(wait: Bool) throws(BlockError) {
        try ctx.reap(wait: wait) { tag, res in
            self.complete(tag, res)
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

import DequeModule

/// An ``AsyncIo`` queue that performs each request synchronously through the disk's
/// `read`/`write`/`flush` (the `--engine=sync` path, kept for comparison).
///
/// Requests run at the moment they are queued; completions are handed back in order.
package final class SyncQueue: AsyncIo {
    private let disk: any DiskFile
    private let core: QueueCore

    /// Creates a synchronous queue over `disk`.
    public init(disk: any DiskFile, options: QueueOptions) {
        self.disk = disk
        core = QueueCore(options: options, path: disk.path)
        core.flushStarter = { [unowned self] u throws(BlockError) in try self.fsync(userData: u) }
    }

    private func run(_ op: GuestOp, _ offset: UInt64, _ length: UInt64, _ userData: UInt64, _ body: () throws(BlockError) -> Void) {
        let t0 = core.accept(op, offset: offset, length: length, userData: userData)
        // One call does the flush's metadata writes and its datasync: its phases mark the call.
        if op == .fsync { core.fsyncPhase(userData, .fsyncSubmitted) }
        var err: BlockError?
        do { try body() } catch let e { err = e }
        core.complete(userData, op, length: length, error: err, start: t0)
    }

    /// Reads synchronously; the completion is ready at once.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) throws(BlockError) {
        run(.read, offset, UInt64(buffer.count), userData) { () throws(BlockError) in try disk.read(into: buffer, at: offset) }
    }
    /// Writes synchronously; the completion is ready at once.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, userData: UInt64) throws(BlockError) {
        run(.write, offset, UInt64(buffer.count), userData) { () throws(BlockError) in try disk.write(buffer, at: offset) }
    }
    /// Writes zeroes synchronously.
    public func writeZeroes(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        run(.zero, offset, length, userData) { () throws(BlockError) in try disk.writeZeroes(at: offset, length: length) }
    }
    /// Discards synchronously.
    public func discard(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        run(.discard, offset, length, userData) { () throws(BlockError) in try disk.discard(at: offset, length: length) }
    }
    /// Flushes synchronously (metadata, then `fdatasync`).
    public func fsync(userData: UInt64) throws(BlockError) {
        run(.fsync, 0, 0, userData) { () throws(BlockError) in try disk.flush() }
    }
    /// Marks the next request under `userData` force unit access (its flush runs inside it).
    public func forceUnitAccess(userData: UInt64) { core.armForceUnitAccess(userData) }
    /// Makes the next requests under `userData` parts of one request (``QueueCore``).
    public func beginParts(userData: UInt64, op: GuestOp, length: UInt64) { core.beginParts(userData, op: op, length: length) }
    /// Ends the parts of request `userData`.
    public func endParts(userData: UInt64) { core.endParts(userData) }

    /// Nothing to submit: requests ran when queued.
    public func submit() throws(BlockError) -> Int { 0 }
    /// The next finished request.
    public func nextCompletion() -> IoCompletion? { core.next {} }
    /// Returns at once: completions are always ready.
    public func waitForCompletion() throws(BlockError) {}
    /// Completions not yet collected.
    public var inFlight: Int { core.inFlight }
    /// No eventfd.
    public var eventFD: Int32 { -1 }
    /// Leaves the in-flight registry.
    public func close() { core.close() }
}

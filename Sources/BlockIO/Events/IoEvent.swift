#if canImport(Glibc)
import Glibc
#endif

/// The kind of guest request an event concerns.
public enum GuestOp: UInt8, Sendable, CaseIterable {
    /// A read.
    case read
    /// A write.
    case write
    /// A flush.
    case fsync
    /// Write zeroes.
    case zero
    /// Discard / trim.
    case discard
}

/// What an SQE asks the kernel to do.
public enum IoOpcode: UInt8, Sendable, CaseIterable {
    /// IORING_OP_READV.
    case readv
    /// IORING_OP_WRITEV.
    case writev
    /// IORING_OP_FSYNC.
    case fsync
    /// IORING_OP_FSYNC with IORING_FSYNC_DATASYNC.
    case fdatasync
}

/// How a guest range maps onto the host, as a mapping event summarises it.
public enum RegionKind: UInt8, Sendable, CaseIterable {
    /// Data at a host offset of this image.
    case allocated
    /// Reads as zeroes.
    case zero
    /// Not allocated here; read from the backing image (or zero without one).
    case unallocated
    /// Compressed data at a host offset.
    case compressed
    /// Several kinds in one request.
    case mixed
    /// Data at a host offset that another owner (a snapshot, an internal copy) also
    /// references: its refcount is above 1 (QCOW2: no COPIED flag), so a write copies it to a
    /// new cluster (copy-on-write) instead of overwriting it.
    case shared
    /// Not allocated in this image; reads come from the backing file at the same guest offset.
    case backing
}

/// A metadata table whose entries events report changes to.
public enum MetadataTable: UInt8, Sendable, CaseIterable {
    /// QCOW2 L1 table.
    case l1
    /// QCOW2 L2 table.
    case l2
    /// QCOW2 refcount table.
    case refcountTable
    /// QCOW2 refcount block entry (index is the cluster index).
    case refcount
    /// VHDX or VHD block allocation table.
    case bat
    /// An image header field.
    case header
}

/// The phases of a flush.
public enum FsyncPhase: UInt8, Sendable, CaseIterable {
    /// Dirty metadata written.
    case metadataWritten
    /// IORING_OP_FSYNC submitted.
    case fsyncSubmitted
    /// The flush completed.
    case completed
    /// QCOW2: dirty refcount blocks are being written (first, so no cluster is ever used
    /// before its refcount is stable).
    case writingRefcountBlocks
    /// QCOW2: dirty L2 tables (and refcount table entries) are being written.
    case writingL2Tables
    /// QCOW2: only refcount table entries are being written.
    case writingRefcountTable
    /// QCOW2: dirty L1 entries are being written (last: they make new L2 tables reachable).
    case writingL1Table
    /// An image header field is being written.
    case writingHeader
    /// A force unit access request's data part completed: its flush starts now under the
    /// same id, and the request completes (once) when that flush does.
    case fuaFlush
}

/// One typed event from the block layer's hot path.
///
/// Events are small value types (no heap allocation) so publishing one costs a few stores.
public enum IoEventPayload: Sendable, Equatable {
    /// A guest request was accepted by a queue.
    case guestRequest(op: GuestOp, offset: UInt64, length: UInt64)
    /// A guest request's mapping was resolved into `regions` regions.
    case mappingResolved(offset: UInt64, length: UInt64, regions: Int, kind: RegionKind, hostOffset: UInt64)
    /// A cluster or block was allocated at `hostOffset`.
    case allocated(guestOffset: UInt64, hostOffset: UInt64, length: UInt64)
    /// A metadata table entry changed from `old` to `new`.
    case tableUpdate(table: MetadataTable, index: UInt64, old: UInt64, new: UInt64)
    /// An SQE was queued for the kernel.
    case sqeSubmitted(opcode: IoOpcode, userData: UInt64, hostOffset: UInt64, length: UInt64)
    /// A CQE was reaped: `result` is bytes or -errno.
    case cqeReaped(opcode: IoOpcode, userData: UInt64, result: Int32, latencyNs: UInt64)
    /// The completion queue was drained of `batch` entries at once.
    case cqDrain(batch: Int)
    /// A flush reached a phase.
    case fsyncPhase(FsyncPhase)
    /// A PendingIo tracker was created for `subOps` sub-operations.
    case pendingCreated(id: UInt64, subOps: Int)
    /// A PendingIo tracker finished (`result` 0 or -errno).
    case pendingFinished(id: UInt64, result: Int32)
    /// A guest request completed. `latencyNs` runs from acceptance to completion; a step
    /// gate subtracts the time it held the request's queue (``IoEventSink/heldNanos(queue:)``).
    case guestCompleted(op: GuestOp, userData: UInt64, result: Int32, latencyNs: UInt64)
    /// How `[guestOffset, guestOffset+length)` was mapped before a write, zero or discard
    /// changed it: `hostOffset` is the data's host offset (0 when there is none) and
    /// `refcount` that host cluster's refcount (0 when there is no host cluster).
    case regionBefore(guestOffset: UInt64, length: UInt64, kind: RegionKind, hostOffset: UInt64, refcount: UInt64)
    /// Copy-on-write: `length` bytes of the new host cluster at `into` that the guest data
    /// does not cover are filled from `source` (`.backing`: the backing file at guest offset
    /// `from`; `.shared`/`.allocated`: the old host cluster at `from`; `.compressed`: the
    /// compressed cluster at host `from`, decompressed; `.zero`: zeroes).
    case copyOnWrite(guestOffset: UInt64, length: UInt64, source: RegionKind, from: UInt64, into: UInt64)
    /// A virtqueue request (vhost-user) reached `stage` outside the engine: head descriptor
    /// `head`, with the stage's `value` (``VirtqStage``).
    case virtqueue(stage: VirtqStage, head: UInt16, value: UInt32)
}

/// An event with its time and origin.
public struct IoEvent: Sendable, Equatable {
    /// Monotonic time in nanoseconds.
    public var time: UInt64
    /// The queue that published it.
    public var queue: Int32
    /// The guest request it belongs to (the request's userData), or 0.
    public var request: UInt64
    /// What happened.
    public var payload: IoEventPayload

    /// Creates an event stamped with the current monotonic time.
    @inlinable
    public init(queue: Int32, request: UInt64, _ payload: IoEventPayload) {
        self.time = monotonicNanos()
        self.queue = queue
        self.request = request
        self.payload = payload
    }

    /// Creates an event with a time the caller already read (one clock read can stamp
    /// several events of the same moment: a clock read costs ~30 ns on a VM).
    @inlinable
    public init(queue: Int32, request: UInt64, time: UInt64, _ payload: IoEventPayload) {
        self.time = time
        self.queue = queue
        self.request = request
        self.payload = payload
    }
}

/// Receives events. Implementations must be cheap and must not block, except a deliberate
/// step-mode gate.
public protocol IoEventSink: AnyObject, Sendable {
    /// Publishes one event; called on the queue's own thread.
    func publish(_ event: IoEvent)
    /// Nanoseconds this sink has held queue `queue`'s thread inside ``publish(_:)`` so far
    /// (a step-mode gate waiting for a key press; monotonic, never decreases). Latencies and
    /// a time-based job's clock subtract it, so a human's wait is not counted as I/O time.
    func heldNanos(queue: Int32) -> UInt64
}

extension IoEventSink {
    /// A sink that never blocks holds no time.
    public func heldNanos(queue: Int32) -> UInt64 { 0 }
}

/// The monotonic clock in nanoseconds (`CLOCK_MONOTONIC`).
@inlinable
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The state of one sub-operation of a ``PendingIo``.
package enum SubOpState: UInt8, Sendable, Equatable {
    /// Not yet handed to the kernel (or waiting for a dependency).
    case queued
    /// Submitted; an SQE is in the ring or the kernel.
    case inFlight
    /// Finished successfully.
    case done
    /// Finished with an error.
    case failed
}

/// One sub-operation of a guest request: a host read, write or flush, or work done inline.
package struct SubOp: Sendable, Equatable {
    /// The host op's opcode (nil for inline work such as a zero fill).
    public var opcode: IoOpcode?
    /// Host offset of the sub-operation.
    public var hostOffset: UInt64
    /// Guest offset it serves.
    public var guestOffset: UInt64
    /// Bytes.
    public var length: UInt64
    /// The tag its SQE carries.
    public var sqeTag: UInt64
    /// Its state.
    public var state: SubOpState
    /// Its result: bytes or -errno (valid when done or failed).
    public var result: Int32
}

/// Tracks a guest request that became N sub-operations, so that it completes exactly once.
///
/// Sub-operations may finish in any order. The guest request completes when the last one
/// finishes; the first error wins and is the request's result. Every sub-op's state is
/// kept for observers (the UI draws guest request -> sub-ops -> SQEs). Owned by one queue.
public final class PendingIo {
    /// The tracker's id, unique per queue: the queue's own key for its sub-operations' ring
    /// tags. Events and views name the tracker by its request's ``userData``.
    public let id: UInt64
    /// The guest request's userData.
    public let userData: UInt64
    /// The guest op.
    public let op: GuestOp
    /// Guest offset and length.
    public let guestOffset: UInt64
    /// Guest length in bytes.
    public let length: UInt64
    /// When the guest request was accepted (monotonic ns).
    public let startTime: UInt64
    /// The sub-operations, in the order they were added.
    package private(set) var subOps: [SubOp] = []
    /// Sub-operations not yet finished.
    public private(set) var remaining = 0
    /// The first error, which is the guest request's result.
    public private(set) var firstError: BlockError?
    /// Whether the guest completion has fired.
    public private(set) var isComplete = false
    /// Whether no more sub-ops will be added (the request is fully issued).
    public private(set) var sealed = false
    /// Whether ``QueueCore/announce(_:subOps:)`` published it (`pendingCreated`), so its end
    /// is published too.
    public internal(set) var announced = false

    /// Creates a tracker for one guest request accepted at `startTime` (monotonic ns; nil
    /// reads the clock now).
    public init(id: UInt64, userData: UInt64, op: GuestOp, guestOffset: UInt64, length: UInt64, startTime: UInt64? = nil) {
        self.id = id
        self.userData = userData
        self.op = op
        self.guestOffset = guestOffset
        self.length = length
        self.startTime = startTime ?? monotonicNanos()
    }

    /// Adds a sub-operation; returns its index for ``finish(_:result:error:)``.
    @discardableResult
    public func add(opcode: IoOpcode?, hostOffset: UInt64, guestOffset: UInt64, length: UInt64, sqeTag: UInt64 = 0) -> Int {
        precondition(!sealed, "PendingIo: sub-op added after seal")
        subOps.append(SubOp(opcode: opcode, hostOffset: hostOffset, guestOffset: guestOffset, length: length, sqeTag: sqeTag, state: .queued, result: 0))
        remaining += 1
        return subOps.count - 1
    }

    /// Marks sub-op `index` as in flight with its SQE tag.
    public func markInFlight(_ index: Int, sqeTag: UInt64) {
        subOps[index].state = .inFlight
        subOps[index].sqeTag = sqeTag
    }

    /// Records that sub-op `index` finished. Returns true when this completes the guest
    /// request (all sub-ops finished and the tracker sealed): the caller then reports
    /// ``result`` exactly once. A second finish of the same sub-op is ignored.
    @discardableResult
    public func finish(_ index: Int, result: Int32, error: BlockError? = nil) -> Bool {
        guard index >= 0, index < subOps.count else { return false }
        let st = subOps[index].state
        if st == .done || st == .failed { return false }
        subOps[index].result = result
        if result < 0 || error != nil {
            subOps[index].state = .failed
            if firstError == nil {
                let e = error ?? BlockError.system(-result, op == .read ? "read" : (op == .fsync ? "fsync" : "write"),
                                                   hostOffset: subOps[index].hostOffset,
                                                   guestOffset: subOps[index].guestOffset)
                firstError = e
            }
        } else {
            subOps[index].state = .done
        }
        remaining -= 1
        return checkComplete()
    }

    /// Records a failure that is not tied to one sub-op (e.g. a mapping error mid-request).
    public func fail(_ error: BlockError) {
        if firstError == nil { firstError = error }
    }

    /// Declares that no more sub-ops follow. Returns true when that completes the request
    /// (every sub-op already finished, or there were none).
    @discardableResult
    public func seal() -> Bool {
        sealed = true
        return checkComplete()
    }

    private func checkComplete() -> Bool {
        if isComplete || !sealed || remaining > 0 { return false }
        isComplete = true
        return true
    }

    /// The guest request's result: `.success(length)` or the first error.
    public var result: Result<Int, BlockError> {
        if let firstError { return .failure(firstError) }
        return .success(Int(length))
    }
}

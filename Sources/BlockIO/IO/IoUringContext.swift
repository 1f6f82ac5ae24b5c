import CURing
import DequeModule
#if canImport(Glibc)
import Glibc
#endif

/// One host I/O operation for ``IoUringContext``: a read, write or flush of a host file.
package struct HostOp {
    /// What to do.
    public var opcode: IoOpcode
    /// The host file descriptor.
    public var fd: Int32
    /// The host byte offset (ignored for flushes).
    public var offset: UInt64
    /// The buffer; owned by the caller until the op completes (nil for flushes).
    public var buffer: UnsafeMutableRawPointer?
    /// Bytes to transfer (0 for flushes).
    public var length: Int

    /// A vectored read of `length` bytes at `offset` into `buffer`.
    public static func read(fd: Int32, offset: UInt64, buffer: UnsafeMutableRawPointer, length: Int) -> HostOp {
        HostOp(opcode: .readv, fd: fd, offset: offset, buffer: buffer, length: length)
    }
    /// A vectored write of `length` bytes from `buffer` at `offset`.
    public static func write(fd: Int32, offset: UInt64, buffer: UnsafeRawPointer, length: Int) -> HostOp {
        HostOp(opcode: .writev, fd: fd, offset: offset, buffer: UnsafeMutableRawPointer(mutating: buffer), length: length)
    }
    /// A flush of `fd`; `dataOnly` uses IORING_FSYNC_DATASYNC.
    public static func fsync(fd: Int32, dataOnly: Bool = true) -> HostOp {
        HostOp(opcode: dataOnly ? .fdatasync : .fsync, fd: fd, offset: 0, buffer: nil, length: 0)
    }
}

/// A fault to inject into one host op, for tests of the error paths.
package enum InjectedFault: Sendable, Equatable {
    /// No fault.
    case none
    /// Submit only the first `bytes` bytes first, as a short transfer would (the rest is resubmitted).
    case shortTransfer(bytes: Int)
    /// Complete the op with `-errno` instead of its real result.
    case error(errno: Int32)
}

/// The one shared io_uring wrapper every format's async engine uses.
///
/// Owned by one thread (a queue). Ops are tagged with a caller-chosen `tag` and complete
/// through ``reap(wait:_:)`` with the final byte count or `-errno`. The context:
/// - keeps `struct io_uring` at a stable heap address and an iovec per slot;
/// - accepts any number of ops: when every slot is busy they wait in a backlog and enter
///   the ring as completions free slots; when the SQ is full it submits and retries;
/// - resubmits short reads and writes for the remainder, and retries `-EAGAIN`/`-EINTR`;
///   a read that reaches end of file fills the rest of the buffer with zeroes;
/// - reports SQE/CQE/drain events to an optional ``IoEventSink``.
/// The corresponding C library is liburing (`io_uring_queue_init`, `io_uring_get_sqe`,
/// `io_uring_prep_readv`, `io_uring_submit`, `io_uring_peek_cqe`, ...).
package final class IoUringContext {
    private struct Slot {
        var op: HostOp
        var tag: UInt64
        /// The guest request the op serves (for events; the tag when not given).
        var request: UInt64
        var done: Int
        var submitTime: UInt64
        var fault: InjectedFault
        var busy: Bool
    }

    private let ring: UnsafeMutablePointer<io_uring>
    private let iovecs: UnsafeMutablePointer<iovec>
    private var slots: [Slot]
    private var freeSlots: [Int32]
    private var backlog: Deque<(HostOp, UInt64, UInt64)> = []
    private var unsubmitted = 0
    /// Ops handed to the kernel or waiting in the backlog.
    public private(set) var inFlight = 0
    /// SQ entries (the ring depth).
    public let depth: Int
    /// Most ops the context keeps in the kernel at once (the CQ size).
    public let capacity: Int
    /// An eventfd registered with the ring on first use; readable when CQEs arrive
    /// (-1 if the kernel refused). Registered lazily: an eventfd signal per CQE costs the
    /// completion path measurably, so queues that nobody polls do not pay for it.
    public var eventFD: Int32 {
        if efd == -2 {
            let fd = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
            if fd >= 0 && io_uring_register_eventfd(ring, fd) == 0 {
                efd = fd
            } else {
                if fd >= 0 { Glibc.close(fd) }
                efd = -1
            }
        }
        return efd
    }
    private var efd: Int32 = -2
    /// Receives SQE/CQE/drain events; nil costs one branch per op.
    public var eventSink: (any IoEventSink)?
    /// The queue number reported in events.
    public var queueID: Int32 = 0
    /// Test hook: decides a fault for each op as it is first submitted.
    public var faultInjector: ((HostOp, UInt64) -> InjectedFault)?
    /// The op whose completion is being delivered: valid only inside a ``reap(wait:_:)``
    /// callback. Lets an engine time its guest request without a clock read of its own.
    public private(set) var completing = CompletingOp()

    /// What ``completing`` tells about the op being reaped.
    public struct CompletingOp: Sendable {
        /// The op's opcode.
        public var opcode: IoOpcode = .readv
        /// When it was first submitted (monotonic ns; 0 without an event sink).
        public var submitTime: UInt64 = 0
        /// When its CQE was reaped (monotonic ns; 0 without an event sink).
        public var completeTime: UInt64 = 0
    }

    /// Counters: SQEs prepared, CQEs reaped, `io_uring_enter` submissions.
    public private(set) var stats = Stats()
    private var closed = false

    /// Counters kept by the context (cheap integer increments).
    public struct Stats: Sendable {
        /// SQEs prepared (including resubmissions).
        public var sqes = 0
        /// CQEs reaped.
        public var cqes = 0
        /// Calls that entered the kernel to submit.
        public var submits = 0
        /// Short transfers resubmitted for the remainder.
        public var shortResubmits = 0
        /// EAGAIN/EINTR retries.
        public var retries = 0
        /// Times an op had to wait in the backlog.
        public var backlogged = 0
    }

    /// Creates a ring with `depth` SQ entries and a CQ of twice that.
    ///
    /// Throws `unsupportedFeature` when the kernel refuses io_uring (seccomp, old kernel).
    public init(depth: Int) throws(BlockError) {
        let d = max(1, min(depth, 4096))
        self.depth = d
        ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        ring.initialize(to: io_uring())
        var params = io_uring_params()
        // IORING_SETUP_COOP_TASKRUN: completions are posted when this thread next enters the
        // kernel instead of by interrupting it (measured: 4 KiB random writes QD32 went from
        // 0.84-0.89x fio to 1.02x, docs/PERFORMANCE.md). IORING_SETUP_TASKRUN_FLAG lets
        // liburing's peek see pending task work and enter the kernel, so polling still works.
        params.flags = UInt32(bs_uring_setup_cqsize()) | (1 << 8) | (1 << 9)
        params.cq_entries = UInt32(d * 2)
        var r = io_uring_queue_init_params(UInt32(d), ring, &params)
        if r == -EINVAL {
            // Kernels before 5.19 refuse COOP_TASKRUN: retry without it.
            params = io_uring_params()
            params.flags = UInt32(bs_uring_setup_cqsize())
            params.cq_entries = UInt32(d * 2)
            r = io_uring_queue_init_params(UInt32(d), ring, &params)
        }
        if r < 0 {
            ring.deallocate()
            throw BlockError(.unsupportedFeature, "io_uring is not available: \(BlockError.errnoText(-r))", errno: -r, operation: "io_uring_queue_init")
        }
        capacity = Int(params.cq_entries)
        iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: capacity)
        iovecs.initialize(repeating: iovec(), count: capacity)
        slots = Array(repeating: Slot(op: HostOp.fsync(fd: -1), tag: 0, request: 0, done: 0, submitTime: 0, fault: .none, busy: false), count: capacity)
        freeSlots = (0..<Int32(capacity)).reversed().map { $0 }
    }

    deinit { close() }

    /// Tears the ring down. Ops still in the kernel are abandoned; call only when idle.
    public func close() {
        if closed { return }
        closed = true
        io_uring_queue_exit(ring)
        ring.deallocate()
        iovecs.deallocate()
        if efd >= 0 { Glibc.close(efd) }
    }

    /// Whether the kernel supports io_uring with READV, WRITEV and FSYNC (probed once).
    public static let isSupported: Bool = {
        var ring = io_uring()
        if io_uring_queue_init(2, &ring, 0) < 0 { return false }
        defer { io_uring_queue_exit(&ring) }
        guard let probe = io_uring_get_probe_ring(&ring) else { return false }
        defer { io_uring_free_probe(probe) }
        for op in [IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC] {
            if io_uring_opcode_supported(probe, Int32(op.rawValue)) == 0 { return false }
        }
        return true
    }()

    /// Queues `op` with `tag`; it enters the SQ now or, when every slot is busy, later.
    ///
    /// Never blocks and never drops an op. Call ``submit()`` to hand queued SQEs to the kernel.
    ///
    /// `request` is the guest request the op serves: the SQE and CQE events carry it, so a
    /// viewer can hang the op under its request (it defaults to the tag).
    public func enqueue(_ op: HostOp, tag: UInt64, request: UInt64? = nil) {
        inFlight += 1
        if let s = freeSlots.popLast() {
            start(slot: Int(s), op: op, tag: tag, request: request ?? tag)
        } else {
            stats.backlogged += 1
            backlog.append((op, tag, request ?? tag))
        }
    }

    private func start(slot s: Int, op: HostOp, tag: UInt64, request: UInt64) {
        let fault = faultInjector?(op, tag) ?? .none
        var now: UInt64 = 0
        if let sink = eventSink {
            now = monotonicNanos()
            sink.publish(IoEvent(queue: queueID, request: request, time: now, .sqeSubmitted(opcode: op.opcode, userData: tag, hostOffset: op.offset, length: UInt64(op.length))))
        }
        slots[s] = Slot(op: op, tag: tag, request: request, done: 0, submitTime: now, fault: fault, busy: true)
        prepare(slot: s)
    }

    /// Writes the SQE for the rest of slot `s`, submitting first if the SQ is full.
    private func prepare(slot s: Int) {
        var sqe = io_uring_get_sqe(ring)
        while sqe == nil {
            // SQ full: hand what is queued to the kernel and retry.
            _ = submitPending()
            sqe = io_uring_get_sqe(ring)
        }
        let slot = slots[s]
        let op = slot.op
        var len = op.length - slot.done
        if case let .shortTransfer(bytes) = slot.fault, slot.done == 0, bytes < len { len = max(0, bytes) }
        switch op.opcode {
        case .readv, .writev:
            iovecs[s] = iovec(iov_base: op.buffer! + slot.done, iov_len: len)
            if op.opcode == .readv {
                io_uring_prep_readv(sqe, op.fd, iovecs + s, 1, op.offset + UInt64(slot.done))
            } else {
                io_uring_prep_writev(sqe, op.fd, iovecs + s, 1, op.offset + UInt64(slot.done))
            }
        case .fsync:
            io_uring_prep_fsync(sqe, op.fd, 0)
        case .fdatasync:
            io_uring_prep_fsync(sqe, op.fd, bs_fsync_datasync())
        }
        io_uring_sqe_set_data64(sqe, UInt64(s))
        unsubmitted += 1
        stats.sqes += 1
    }

    private func submitPending() -> Int {
        if unsubmitted == 0 { return 0 }
        var r: Int32
        r = Syscall.retryingNegated(alsoRetry: { $0 == -EAGAIN || $0 == -EBUSY }) { io_uring_submit(ring) }
        stats.submits += 1
        if r > 0 { unsubmitted -= Int(r) }
        if unsubmitted < 0 { unsubmitted = 0 }
        return Int(max(r, 0))
    }

    /// Hands every queued SQE to the kernel (`io_uring_submit`); returns how many.
    @discardableResult
    public func submit() -> Int { submitPending() }

    /// Reaps finished ops: calls `body(tag, result)` once for each, where `result` is the
    /// byte count or `-errno`. With `wait`, blocks until at least one op finishes (returns
    /// at once when nothing is in flight). Returns how many ops finished.
    @discardableResult
    public func reap(wait: Bool, _ body: (UInt64, Int32) -> Void) throws(BlockError) -> Int {
        var finished = 0
        var drained = 0
        var now: UInt64 = 0
        while true {
            var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
            var r = io_uring_peek_cqe(ring, &cqe)
            if r == -EAGAIN || cqe == nil {
                if finished > 0 || !wait || inFlight == backlog.count || inFlight == 0 { break }
                if unsubmitted > 0 {
                    r = Syscall.retryingNegated { io_uring_submit_and_wait(ring, 1) }
                    stats.submits += 1
                    if r > 0 { unsubmitted = max(0, unsubmitted - Int(r)) }
                } else {
                    r = Syscall.retryingNegated { io_uring_wait_cqe(ring, &cqe) }
                }
                if r < 0 && r != -EAGAIN && r != -EINTR && r != -ETIME {
                    throw BlockError.system(-r, "io_uring_enter")
                }
                continue
            }
            let s = Int(cqe!.pointee.user_data)
            var res = cqe!.pointee.res
            io_uring_cqe_seen(ring, cqe)
            drained += 1
            stats.cqes += 1
            if s < 0 || s >= capacity || !slots[s].busy { continue }
            if case let .error(e) = slots[s].fault { res = -e }
            if res == -EAGAIN || res == -EINTR {
                stats.retries += 1
                prepare(slot: s)
                continue
            }
            var slot = slots[s]
            if res >= 0 && (slot.op.opcode == .readv || slot.op.opcode == .writev) {
                slot.done += Int(res)
                if slot.done < slot.op.length {
                    if res == 0 {
                        if slot.op.opcode == .readv {
                            // End of file: the rest reads as zeroes.
                            (slot.op.buffer! + slot.done).initializeMemory(as: UInt8.self, repeating: 0, count: slot.op.length - slot.done)
                            slot.done = slot.op.length
                        } else {
                            res = -EIO
                        }
                    } else {
                        slots[s].done = slot.done
                        stats.shortResubmits += 1
                        prepare(slot: s)
                        continue
                    }
                }
                if res >= 0 { res = Int32(clamping: slot.done) }
            }
            slots[s].busy = false
            if let sink = eventSink {
                now = monotonicNanos()
                sink.publish(IoEvent(queue: queueID, request: slot.request, time: now, .cqeReaped(opcode: slot.op.opcode, userData: slot.tag, result: res, latencyNs: now &- slot.submitTime)))
            }
            completing = CompletingOp(opcode: slot.op.opcode, submitTime: slot.submitTime, completeTime: now)
            inFlight -= 1
            freeSlots.append(Int32(s))
            if let (op, tag, request) = backlog.popFirst() {
                if let f = freeSlots.popLast() { start(slot: Int(f), op: op, tag: tag, request: request) }
            }
            finished += 1
            body(slot.tag, res)
        }
        if drained > 0, let sink = eventSink {
            sink.publish(IoEvent(queue: queueID, request: 0, time: now != 0 ? now : monotonicNanos(), .cqDrain(batch: drained)))
        }
        if unsubmitted > 0 { _ = submitPending() }
        return finished
    }
}

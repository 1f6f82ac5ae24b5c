import BlockIO
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a job thread hands requests to its queue.
package enum SubmitPolicy: String, Sendable, CaseIterable {
    /// Reap one completion and resubmit its slot at once (one `io_uring_enter` per I/O,
    /// fio's pattern; keeps the device queue full — the default, see PERF-NOTES).
    case perCompletion = "per-completion"
    /// Reap every ready completion, refill every free slot, submit once.
    case batch
}

/// Live counters of one queue, written by its thread and readable from any thread.
///
/// The owning thread stores its running totals with relaxed stores (no read-modify-write
/// on the hot path); readers get a possibly slightly stale but consistent-enough view.
package final class QueueCounters: Sendable {
    /// The queue's ID (as in events).
    public let queueID: Int
    /// The job the queue runs.
    public let jobName: String
    let readIos = Atomic<UInt64>(0)
    let writeIos = Atomic<UInt64>(0)
    let trimIos = Atomic<UInt64>(0)
    let syncIos = Atomic<UInt64>(0)
    let readBytes = Atomic<UInt64>(0)
    let writeBytes = Atomic<UInt64>(0)
    let inFlight = Atomic<Int>(0)
    let plannedBytes = Atomic<UInt64>(0)
    let doneFlag = Atomic<Bool>(false)

    init(queueID: Int, jobName: String) {
        self.queueID = queueID
        self.jobName = jobName
    }

    /// A copy of the counters now.
    public func snapshot() -> QueueSnapshot {
        QueueSnapshot(queueID: queueID, jobName: jobName,
                      readIos: readIos.load(ordering: .relaxed), writeIos: writeIos.load(ordering: .relaxed),
                      trimIos: trimIos.load(ordering: .relaxed), syncIos: syncIos.load(ordering: .relaxed),
                      readBytes: readBytes.load(ordering: .relaxed), writeBytes: writeBytes.load(ordering: .relaxed),
                      inFlight: inFlight.load(ordering: .relaxed), finished: doneFlag.load(ordering: .relaxed))
    }
}

/// One queue's counters at one moment.
package struct QueueSnapshot: Sendable, Equatable {
    /// The queue's ID.
    public var queueID: Int
    /// The job it runs.
    public var jobName: String
    /// Completed reads.
    public var readIos: UInt64
    /// Completed writes.
    public var writeIos: UInt64
    /// Completed trims.
    public var trimIos: UInt64
    /// Completed flushes.
    public var syncIos: UInt64
    /// Bytes read.
    public var readBytes: UInt64
    /// Bytes written (trims excluded).
    public var writeBytes: UInt64
    /// Requests in flight now.
    public var inFlight: Int
    /// Whether the queue's thread has finished.
    public var finished: Bool
    /// Completed guest requests of every kind.
    public var totalIos: UInt64 { readIos + writeIos + trimIos + syncIos }
}

/// The whole workload's counters at one moment (sums over ``queues``).
package struct WorkloadSnapshot: Sendable {
    /// Nanoseconds since the workload started.
    public var elapsedNs: UInt64
    /// Each queue.
    public var queues: [QueueSnapshot]
    /// Fraction done (0...1) when the amount of I/O or the runtime is known.
    public var progress: Double?
    /// Completed requests.
    public var totalIos: UInt64 { queues.reduce(0) { $0 + $1.totalIos } }
    /// Bytes read.
    public var readBytes: UInt64 { queues.reduce(0) { $0 + $1.readBytes } }
    /// Bytes written.
    public var writeBytes: UInt64 { queues.reduce(0) { $0 + $1.writeBytes } }
    /// Requests in flight.
    public var inFlight: Int { queues.reduce(0) { $0 + $1.inFlight } }
    /// Average IOPS since the start.
    public var iops: Double { elapsedNs == 0 ? 0 : Double(totalIos) * 1e9 / Double(elapsedNs) }
}

/// Pause, resume and stop flags shared by a workload's threads, and the time spent paused
/// (a job's clock, `runtime=` and reported rates, does not run while it is paused).
final class WorkloadControl: @unchecked Sendable {
    let stopFlag = Atomic<Bool>(false)
    let pauseFlag = Atomic<Bool>(false)
    private let cond = ConditionLock()
    /// Nanoseconds paused before the current pause, and when the current pause began (0: none).
    private let pausedBefore = Atomic<UInt64>(0)
    private let pauseStart = Atomic<UInt64>(0)

    var stopRequested: Bool { stopFlag.load(ordering: .relaxed) }
    var paused: Bool { pauseFlag.load(ordering: .relaxed) }

    func pause() {
        cond.lock()
        if !pauseFlag.load(ordering: .relaxed) { pauseStart.store(monotonicNanos(), ordering: .relaxed) }
        pauseFlag.store(true, ordering: .releasing)
        cond.unlock()
    }

    func resume() {
        cond.lock()
        endPause()
        pauseFlag.store(false, ordering: .releasing)
        cond.broadcast()
        cond.unlock()
    }

    func stop() {
        cond.lock()
        endPause()
        stopFlag.store(true, ordering: .releasing)
        pauseFlag.store(false, ordering: .releasing)
        cond.broadcast()
        cond.unlock()
    }

    /// Adds the current pause to the total (lock held).
    private func endPause() {
        let t = pauseStart.load(ordering: .relaxed)
        if t != 0 {
            pausedBefore.wrappingAdd(monotonicNanos() &- t, ordering: .relaxed)
            pauseStart.store(0, ordering: .relaxed)
        }
    }

    /// Nanoseconds the workload has been paused in total, the current pause included.
    func pausedNanos(now: UInt64 = monotonicNanos()) -> UInt64 {
        let t = pauseStart.load(ordering: .relaxed)
        return pausedBefore.load(ordering: .relaxed) &+ (t != 0 && now > t ? now - t : 0)
    }

    /// Blocks the calling job thread while paused (and not stopped).
    func waitWhilePaused() {
        cond.lock()
        while pauseFlag.load(ordering: .acquiring) && !stopFlag.load(ordering: .acquiring) { cond.wait() }
        cond.unlock()
    }
}

/// Keeps overlapping requests of every queue from being in flight together
/// (`serialize_overlap`, and always with `--mirror` or `--trace`).
///
/// One lock with a narrow API: a request's range is taken before it is submitted and
/// released after its completion (and its mirror write) are done.
final class OverlapGuard: Sendable {
    private let ranges = Mutex<[(UInt64, UInt64)]>([])
    /// Bumped by every release: a thread whose request overlaps another thread's waits on it
    /// (read ``ChangeSignal/generation`` before ``tryAcquire(_:_:)``) instead of polling.
    let released = ChangeSignal()

    /// Takes `[offset, offset+length)` unless it overlaps a range in flight.
    func tryAcquire(_ offset: UInt64, _ length: UInt64) -> Bool {
        let end = offset + max(length, 1)
        return ranges.withLock { r in
            for (o, e) in r where o < end && offset < e { return false }
            r.append((offset, end))
            return true
        }
    }

    /// Releases a range taken by ``tryAcquire(_:_:)``.
    func release(_ offset: UInt64, _ length: UInt64) {
        let end = offset + max(length, 1)
        ranges.withLock { r in
            if let i = r.firstIndex(where: { $0.0 == offset && $0.1 == end }) { r.swapAt(i, r.count - 1); r.removeLast() }
        }
        released.bump()
    }
}

/// A raw file that receives every completed write, zero and discard (`--mirror RAW`).
///
/// Writes go straight to the file with `pwrite` from the completing thread; the
/// ``OverlapGuard`` guarantees overlapping requests complete one after the other.
package final class MirrorFile: Sendable {
    /// The open raw file.
    public let file: SystemFile

    /// Opens `path`, creating it as a copy of `disk`'s guest content when it does not exist.
    public init(path: String, disk: any DiskFile) throws(BlockError) {
        if access(path, F_OK) == 0 {
            file = try SystemFile(path: path, writable: true)
            let size = try file.size()
            if size != disk.logicalSize {
                throw BlockError(.invalidArgument, "mirror is \(size) bytes but the image's disk is \(disk.logicalSize) bytes", path: path)
            }
        } else {
            file = try SystemFile(path: path, writable: true, create: true, truncate: true)
            try file.truncate(to: disk.logicalSize)
            var pos: UInt64 = 0
            let f = file
            try GuestStreamer.stream(disk: disk, offset: 0, length: disk.logicalSize) { (chunk: UnsafeRawBufferPointer) throws(BlockError) in
                if chunk.contains(where: { $0 != 0 }) { try f.write(chunk, at: pos) }
                pos += UInt64(chunk.count)
            }
        }
    }

    /// Applies a completed write.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockError) { try file.write(bytes, at: offset) }
    /// Applies a completed discard (the range reads as zeroes afterwards).
    func discard(at offset: UInt64, length: UInt64) throws(BlockError) { try file.punchHole(at: offset, length: length) }
    /// Flushes the mirror.
    public func sync() throws(BlockError) { try file.sync() }
}

import BlockIO
import Foundation
import Synchronization

/// Guest bytes a completed request left behind: `[offset, offset + length)` now reads as
/// `pattern`, or as zeroes when `pattern` is nil (a write of zeroes or a discard).
package struct WrittenRange: Sendable {
    /// First guest byte.
    package var offset: UInt64
    /// Bytes covered.
    package var length: Int
    /// The byte every covered position holds; nil means zeroes.
    package var pattern: UInt8?

    /// A range of `length` bytes at `offset` that reads as `pattern` (nil: zeroes).
    package init(_ offset: UInt64, _ length: Int, _ pattern: UInt8?) {
        self.offset = offset; self.length = length; self.pattern = pattern
    }
}

/// What the queues of a multi-queue test report from their threads: problems, and per queue
/// the ranges its completed requests wrote. The expected image is built from these ranges
/// over qemu-img's view of the image before the run, never from blockscope reading itself.
package final class QueueRaceLog: Sendable {
    private let state = Mutex<(errors: [String], ranges: [[WrittenRange]])>(([], []))

    /// An empty log.
    package init() {}

    /// Records one problem (a failed request, a missing completion, a wrong read).
    package func fail(_ message: String) { state.withLock { $0.errors.append(message) } }

    /// Records the ranges one queue's completed requests wrote, in submission order.
    package func record(_ ranges: [WrittenRange]) { state.withLock { $0.ranges.append(ranges) } }

    /// Every problem recorded so far.
    package var errors: [String] { state.withLock { $0.errors } }

    /// Writes every recorded range into `bytes`, whose index 0 is guest offset `base`. Queues
    /// wrote disjoint bytes, so the order between queues does not matter; within a queue
    /// later ranges win, as they were submitted after the earlier ones completed.
    package func apply(to bytes: inout [UInt8], base: UInt64 = 0) {
        for queue in state.withLock({ $0.ranges }) {
            for r in queue {
                let start = Int(r.offset - base)
                bytes.withUnsafeMutableBytes { $0[start..<(start + r.length)].initializeMemory(as: UInt8.self, repeating: r.pattern ?? 0) }
            }
        }
    }
}

/// The shared skeleton of the multi-queue write tests of every format (QCOW2, VHDX/VHD,
/// VMDK): queues on their own threads with a deadline, batches of requests into disjoint
/// slots, fsyncs between batches, and a concurrent read-back against the expected bytes.
/// The verdicts stay in the tests: `qemu-img compare` against the expected raw image and
/// `qemu-img check`.
package enum MultiQueueHarness {
    /// Runs `body(i)` for i in 0..<count, each on its own thread, and returns once all have
    /// returned. Throws (naming `what`) when they have not after `timeout` seconds, so a hung
    /// queue fails the test instead of hanging the suite.
    package static func onThreads(_ count: Int, _ what: String, timeout: Double = Progress.defaultTimeout,
                                 _ body: @escaping @Sendable (Int) -> Void) throws {
        let group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            Thread { body(i); group.leave() }.start()
        }
        guard group.wait(timeout: .now() + timeout) == .success else {
            throw TestFailure("\(what) did not finish in \(Int(timeout)) s (a hang)")
        }
    }

    /// Waits for the `count` requests just submitted on `queue` (distinct `userData`) to
    /// complete, and logs each failed one and any completed twice under `label`.
    package static func drain(_ queue: any AsyncIo, _ count: Int, _ label: String, into log: QueueRaceLog) throws {
        var seen = Set<UInt64>()
        while seen.count < count {
            if let c = queue.nextCompletion() {
                if let e = c.error { log.fail("\(label): \(e)") }
                if !seen.insert(c.userData).inserted { log.fail("\(label): request \(c.userData) completed twice") }
            } else {
                try queue.waitForCompletion()
            }
        }
    }

    /// Submits an fsync on `queue` and waits for it; logs a failure or a missing completion.
    package static func flush(_ queue: any AsyncIo, _ label: String, into log: QueueRaceLog) throws {
        try queue.fsync(userData: 99)
        try queue.submit()
        let f = try queue.awaitCompletion()
        if f == nil { log.fail("\(label) fsync: no completion") } else if let e = f?.error { log.fail("\(label) fsync: \(e)") }
    }

    /// One request of a batch, as a test's chooser decides it.
    package enum Op: Sendable {
        /// A write of this byte repeated.
        case write(UInt8)
        /// A write of zeroes (WRITE_ZEROES).
        case zeroes
        /// A discard; the test's formats read a discarded range as zeroes.
        case discard
    }

    /// The shape of ``batchedWriter(disk:id:plan:log:choose:)``'s work.
    package struct Plan: Sendable {
        /// Guest offset of queue 0's zone; queue `id`'s zone starts `id * zone` further.
        package var origin: UInt64
        /// Bytes of one queue's zone.
        package var zone: UInt64
        /// Requests per batch, each in its own slot (`zone / slots` bytes) of the zone.
        package var slots: Int
        /// Batches per queue; every fourth ends with an fsync.
        package var batches: Int
        /// Longest request, in 512-byte sectors (lengths are 1...maxSectors sectors).
        package var maxSectors: UInt64
        /// Queue `id` seeds its generator with `seedBase + id`.
        package var seedBase: UInt64

        /// A plan; see the properties.
        package init(origin: UInt64, zone: UInt64, slots: Int, batches: Int, maxSectors: UInt64, seedBase: UInt64) {
            self.origin = origin; self.zone = zone; self.slots = slots; self.batches = batches
            self.maxSectors = maxSectors; self.seedBase = seedBase
        }

        /// Guest offset where queue `id`'s zone starts.
        package func start(_ id: Int) -> UInt64 { origin + UInt64(id) * zone }
    }

    /// One queue's work on its own io_uring queue (`queueID` = `id`, depth 8): `plan.batches`
    /// batches of `plan.slots` requests, one per slot, each of a random sector-multiple length
    /// at a random sector inside its slot (so requests cross cluster, block, grain and extent
    /// boundaries); `choose(id, batch, slot, &rng)` says what the request is. A batch is
    /// submitted at once and drained before the next; completed ranges go to `log`.
    package static func batchedWriter(disk: any DiskFile, id: Int, plan: Plan, log: QueueRaceLog,
                                     choose: (Int, Int, Int, inout SeededRandom) -> Op) {
        do {
            let q = try disk.makeQueue(QueueOptions(depth: 8, queueID: id, engine: .uring))
            defer { q.close() }
            var rng = SeededRandom(seed: plan.seedBase + UInt64(id))
            let slot = plan.zone / UInt64(plan.slots)
            let base = plan.start(id)
            let bufs = (0..<plan.slots).map { _ in AlignedBuffer(count: Int(plan.maxSectors) * 512) }
            var written: [WrittenRange] = []
            for batch in 0..<plan.batches {
                for s in 0..<plan.slots {
                    let len = Int((rng.next() % plan.maxSectors + 1) * 512)
                    let off = base + UInt64(s) * slot + (rng.next() % ((slot - UInt64(len)) / 512)) * 512
                    switch choose(id, batch, s, &rng) {
                    case .write(let pat):
                        bufs[s].bytes.initializeMemory(as: UInt8.self, repeating: pat)
                        try q.write(at: off, from: UnsafeRawBufferPointer(rebasing: bufs[s].bytes[0..<len]), userData: UInt64(s))
                        written.append(WrittenRange(off, len, pat))
                    case .zeroes:
                        try q.writeZeroes(at: off, length: UInt64(len), userData: UInt64(s))
                        written.append(WrittenRange(off, len, nil))
                    case .discard:
                        try q.discard(at: off, length: UInt64(len), userData: UInt64(s))
                        written.append(WrittenRange(off, len, nil))
                    }
                }
                try q.submit()
                try drain(q, plan.slots, "queue \(id) batch \(batch)", into: log)
                if batch % 4 == 3 { try flush(q, "queue \(id)", into: log) }
            }
            log.record(written)
        } catch let e { log.fail("queue \(id): \(e)") }
    }

    /// Keeps up to `depth` requests in flight on `queue` until `total` have completed:
    /// `issue(n, slot)` queues request number `n` (0..<total) with `userData` = `slot`, a free
    /// index in 0..<depth the request owns until `complete(completion, slot)` is called.
    package static func pipeline(_ queue: any AsyncIo, total: Int, depth: Int,
                                issue: (Int, Int) throws -> Void, complete: (IoCompletion, Int) -> Void) throws {
        var free = Array(0..<depth), next = 0, inFlight = 0
        while next < total || inFlight > 0 {
            while next < total, let slot = free.popLast() {
                try issue(next, slot)
                next += 1; inFlight += 1
            }
            try queue.submit()
            if let c = queue.nextCompletion() {
                inFlight -= 1
                free.append(Int(c.userData))
                complete(c, Int(c.userData))
            } else {
                try queue.waitForCompletion()
            }
        }
    }

    /// Reads every zone of `plan` back at once, one fresh queue per zone (queue IDs 10 and up)
    /// on its own thread, and logs each zone whose bytes differ from `expected` (index 0 =
    /// guest offset `base`) or whose read fails.
    package static func readBack(disk: any DiskFile, plan: Plan, queues: Int, expected: [UInt8], base: UInt64 = 0,
                                log: QueueRaceLog, timeout: Double = Progress.defaultTimeout) throws {
        try onThreads(queues, "readers", timeout: timeout) { t in
            do {
                let q = try disk.makeQueue(QueueOptions(depth: 4, queueID: 10 + t, engine: .uring))
                defer { q.close() }
                let buf = AlignedBuffer(count: Int(plan.zone))
                let off = plan.start(t)
                try q.read(at: off, into: buf.bytes, userData: 1)
                try q.submit()
                let c = try q.awaitCompletion()
                if c == nil { log.fail("read \(t): no completion") } else if let e = c?.error { log.fail("read \(t): \(e)") }
                let lo = Int(off - base)
                if !buf.bytes.elementsEqual(expected[lo..<(lo + Int(plan.zone))]) {
                    let i = zip(buf.bytes, expected[lo...]).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
                    log.fail("read-back of zone \(t) differs first at guest 0x\(String(off + UInt64(i), radix: 16))")
                }
            } catch let e { log.fail("reader \(t): \(e)") }
        }
    }
}

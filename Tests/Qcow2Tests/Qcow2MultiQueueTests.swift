import BlockCore
import Foundation
import Testing
import TestSupport

/// QCOW2 queues through the Swift API, in process: several io_uring queues on threads write,
/// zero, discard and read one image at once; qemu-img check finds it clean and qemu-img
/// compare finds it equal to the content the completed requests describe.
@Suite("Qcow2 queues on threads vs qemu-img")
struct Qcow2MultiQueueTests {
    typealias Setup = Qcow2WriteOracle.Setup

    static let threads = 3
    /// Three 20 MiB zones from 1 MiB: batches of 6 requests of up to 300 KiB (7 in 10 writes,
    /// 2 writes of zeroes, 1 discard), 16 batches a queue, an fsync every 4.
    static let plan = MultiQueueHarness.Plan(origin: 1 << 20, zone: 20 << 20, slots: 6, batches: 16, maxSectors: 600, seedBase: 3)

    /// Proves: three io_uring queues on their own threads writing, zeroing and discarding in
    /// disjoint zones of one image (sharing L2 tables and refcount blocks, copying on write from
    /// a backing file or a snapshot) leave content equal, under qemu-img compare, to the
    /// expected bytes computed from qemu-img's view of the image before the run; every queue
    /// reads its zone back equal too; qemu-img check stays clean.
    @Test("three queues on threads write/zero/discard concurrently; qemu-img agrees", arguments: [Setup.rawBackingCluster4k, .snapshot, .extendedL2c64k, .cluster64k])
    func concurrentQueuesMatchExpected(_ setup: Setup) throws {
        let dir = try TestSupport.makeTempDir("q2w-mq")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Qcow2WriteOracle.prepare(setup, in: dir)
        let expectedPath = dir + "/expected.raw"
        try Qcow2WriteOracle.convertToRaw(img, expectedPath)
        var expected = [UInt8](try TestSupport.readFile(expectedPath))
        let disk = try openDisk(img, options: OpenOptions(writable: true, format: .qcow2))
        let log = QueueRaceLog()
        try MultiQueueHarness.onThreads(Self.threads, "writers", timeout: 600) { id in
            MultiQueueHarness.batchedWriter(disk: disk, id: id, plan: Self.plan, log: log) { id, batch, s, rng in
                switch rng.next() % 10 {
                case 0..<7: .write(UInt8(truncatingIfNeeded: id * 80 + batch * 6 + s + 1) | 1)
                case 7, 8: .zeroes
                default: .discard
                }
            }
        }
        #expect(log.errors.isEmpty, "\(log.errors.prefix(5))")
        log.apply(to: &expected)
        let readLog = QueueRaceLog()
        try MultiQueueHarness.readBack(disk: disk, plan: Self.plan, queues: Self.threads, expected: expected, log: readLog, timeout: 600)
        #expect(readLog.errors.isEmpty, "\(readLog.errors)")
        try disk.close()
        try TestSupport.writeFile(expectedPath, expected)
        try Qcow2WriteOracle.expectClean(img, "\(setup)")
        try Qcow2WriteOracle.expectSameContent(raw: expectedPath, image: img, "\(setup)")
    }

    // MARK: several queues racing for the same clusters

    /// Byte boundaries inside a 64 KiB cluster of the four queues' pieces (512-byte aligned,
    /// deliberately not on 2 KiB/4 KiB subcluster boundaries).
    static let pieceBounds = [0, 15872, 33280, 48640, 65536]

    /// Where the racing queues work (first guest byte, 64 KiB clusters): unallocated clusters,
    /// except over a snapshot (shared clusters) or compressed data.
    static func raceRange(_ setup: Setup) -> (UInt64, Int) {
        setup == .snapshot ? (0, 64) : (setup == .zstdCompressed || setup == .reusedClusters ? (0, 96) : (8 << 20, 192))
    }

    /// Queue `id` of four: one request per cluster of `[start, start + clusters * 64 KiB)`, on
    /// its own piece of every cluster, as fast as a depth-16 ring allows. Queues 0-2 write;
    /// queue 3 writes, zeroes and discards in turn.
    static func racer(disk: any DiskFile, id: Int, start: UInt64, clusters: Int, gate: DispatchGroup, log: QueueRaceLog) {
        do {
            let q = try disk.makeQueue(QueueOptions(depth: 16, queueID: id, engine: .uring))
            defer { q.close() }
            let lo = pieceBounds[id], len = pieceBounds[id + 1] - lo
            let bufs = (0..<16).map { _ in AlignedBuffer(count: len) }
            var written: [WrittenRange] = []
            gate.leave(); gate.wait()   // every queue starts together
            try MultiQueueHarness.pipeline(q, total: clusters, depth: 16, issue: { next, slot in
                let off = start + UInt64(next) * 65536 + UInt64(lo)
                let pat = UInt8(truncatingIfNeeded: id * 61 + next) | 0x80
                switch id == 3 ? next % 3 : 0 {
                case 1:
                    try q.writeZeroes(at: off, length: UInt64(len), userData: UInt64(slot))
                    written.append(WrittenRange(off, len, nil))
                case 2:
                    try q.discard(at: off, length: UInt64(len), userData: UInt64(slot))
                    written.append(WrittenRange(off, len, nil))
                default:
                    bufs[slot].bytes.initializeMemory(as: UInt8.self, repeating: pat)
                    try q.write(at: off, from: UnsafeRawBufferPointer(bufs[slot].bytes), userData: UInt64(slot))
                    written.append(WrittenRange(off, len, pat))
                }
            }, complete: { c, _ in
                if let e = c.error { log.fail("queue \(id): \(e)") }
            })
            try MultiQueueHarness.flush(q, "queue \(id)", into: log)
            log.record(written)
        } catch let e { log.fail("queue \(id): \(e)") }
    }

    /// Proves: four io_uring queues on their own threads that hit every cluster of a range at
    /// the same moment, each on its own unaligned piece (so they race to allocate the same
    /// cluster, to copy its untouched bytes on write from a backing file or a snapshot, and to
    /// zero or discard next to each other's data), lose no piece: the image equals, under
    /// qemu-img compare, the expected bytes built from qemu-img's view before the run, and
    /// qemu-img check finds no leak or corruption.
    @Test("four queues racing on the same clusters lose no data", arguments: [
        Setup.cluster64k, .rawBacking, .extendedL2c64k, .snapshot, .zstdCompressed, .reusedClusters,
    ])
    func sameClusterRace(_ setup: Setup) throws {
        let dir = try TestSupport.makeTempDir("q2w-race")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Qcow2WriteOracle.prepare(setup, in: dir)
        let expectedPath = dir + "/expected.raw"
        try Qcow2WriteOracle.convertToRaw(img, expectedPath)
        var expected = [UInt8](try TestSupport.readFile(expectedPath))
        let (start, clusters) = Self.raceRange(setup)
        let disk = try openDisk(img, options: OpenOptions(writable: true, format: .qcow2))
        let log = QueueRaceLog()
        let gate = DispatchGroup()
        for _ in 0..<4 { gate.enter() }
        try MultiQueueHarness.onThreads(4, "racing queues", timeout: 600) { t in
            Self.racer(disk: disk, id: t, start: start, clusters: clusters, gate: gate, log: log)
        }
        #expect(log.errors.isEmpty, "\(log.errors.prefix(5))")
        log.apply(to: &expected)
        try disk.close()
        try TestSupport.writeFile(expectedPath, expected)
        try Qcow2WriteOracle.expectClean(img, "\(setup)")
        try Qcow2WriteOracle.expectSameContent(raw: expectedPath, image: img, "\(setup)")
    }

    /// Queue 3's part in ``readersSeeStableData``: reads its piece of every cluster, `passes`
    /// times, while the other queues allocate the same clusters; every read must equal `initial`.
    static func reader(disk: any DiskFile, start: UInt64, clusters: Int, passes: Int, initial: [UInt8],
                       gate: DispatchGroup, log: QueueRaceLog) {
        do {
            let q = try disk.makeQueue(QueueOptions(depth: 16, queueID: 3, engine: .uring))
            defer { q.close() }
            let lo = pieceBounds[3], len = pieceBounds[4] - lo
            let bufs = (0..<16).map { _ in AlignedBuffer(count: len) }
            var owner = [Int](repeating: 0, count: 16)
            gate.leave(); gate.wait()
            try MultiQueueHarness.pipeline(q, total: clusters * passes, depth: 16, issue: { next, slot in
                owner[slot] = next % clusters
                try q.read(at: start + UInt64(next % clusters) * 65536 + UInt64(lo), into: bufs[slot].bytes, userData: UInt64(slot))
            }, complete: { c, slot in
                if let e = c.error { log.fail("read: \(e)"); return }
                let off = Int(start) + owner[slot] * 65536 + lo
                if !bufs[slot].bytes.elementsEqual(initial[off..<(off + len)]) {
                    let i = zip(bufs[slot].bytes, initial[off..<(off + len)]).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
                    log.fail("guest 0x\(String(off + i, radix: 16)), untouched by any write, read 0x\(String(bufs[slot].bytes[i], radix: 16)) instead of 0x\(String(initial[off + i], radix: 16))")
                }
            })
        } catch let e { log.fail("reader: \(e)") }
    }

    /// Proves: while three queues allocate clusters (copying untouched bytes on write from a
    /// backing file, a snapshot or compressed data), a fourth queue reading the piece of each
    /// cluster nobody writes always sees qemu-img's pre-run content of it: a cluster is never
    /// visible through the L2 table before its copied bytes are on disk.
    @Test("a reader racing allocating writers sees the untouched bytes unchanged", arguments: [
        Setup.rawBacking, .rawBackingExtendedL2, .snapshot, .zstdCompressed, .reusedClusters, .qcow2Backing,
    ])
    func readersSeeStableData(_ setup: Setup) throws {
        let dir = try TestSupport.makeTempDir("q2w-reader")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Qcow2WriteOracle.prepare(setup, in: dir)
        let initialPath = dir + "/initial.raw"
        try Qcow2WriteOracle.convertToRaw(img, initialPath)
        let initial = [UInt8](try TestSupport.readFile(initialPath))
        var expected = initial
        let (start, clusters) = Self.raceRange(setup)
        let disk = try openDisk(img, options: OpenOptions(writable: true, format: .qcow2))
        let log = QueueRaceLog()
        let gate = DispatchGroup()
        for _ in 0..<4 { gate.enter() }
        try MultiQueueHarness.onThreads(4, "writers and the reader", timeout: 600) { t in
            if t < 3 {
                Self.racer(disk: disk, id: t, start: start, clusters: clusters, gate: gate, log: log)
            } else {
                Self.reader(disk: disk, start: start, clusters: clusters, passes: 3, initial: initial, gate: gate, log: log)
            }
        }
        #expect(log.errors.isEmpty, "\(log.errors.count) problems: \(log.errors.prefix(5))")
        log.apply(to: &expected)
        try disk.close()
        try TestSupport.writeFile(initialPath, expected)
        try Qcow2WriteOracle.expectClean(img, "\(setup)")
        try Qcow2WriteOracle.expectSameContent(raw: initialPath, image: img, "\(setup)")
    }
}

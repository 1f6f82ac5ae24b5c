import BlockCore
@testable import BlockIO
@testable import Qcow2
import Foundation
import Synchronization
import Testing
import TestSupport

/// Collects events (thread-safe).
final class Qcow2EventLog: IoEventSink, @unchecked Sendable {
    private let lock = Mutex<[IoEvent]>([])
    func publish(_ event: IoEvent) { lock.withLock { $0.append(event) } }
    var events: [IoEvent] { lock.withLock { $0 } }
}

/// QcowMetadata's mapping and the io_uring queue, against the sync path and qemu-img.
@Suite("QCOW2 metadata and async queue")
struct Qcow2AsyncTests {
    /// A chain: raw base <- qcow2 mid (compressed + normal + zero clusters) <- qcow2 top
    /// (4 KiB clusters, extended L2 off), so reads mix every region kind.
    static func chain(_ dir: String) throws -> (top: String, mid: String) {
        let base = dir + "/base.raw", src = dir + "/src.raw", mid = dir + "/mid.qcow2", top = dir + "/top.qcow2"
        try TestSupport.writeFile(base, TestSupport.pseudoRandomBytes(count: 2 << 20, seed: 11))
        var bytes = TestSupport.pseudoRandomBytes(count: 4 << 20, seed: 12)
        for i in stride(from: 0, to: bytes.count, by: 16384) { for j in i..<(i + 8192) { bytes[j] = 0 } }
        try TestSupport.writeFile(src, bytes)
        try TestSupport.qemuImg(["convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd,cluster_size=16k", src, mid])
        try TestSupport.qemuIo(mid, format: "qcow2", ["write -P 0x61 1M 100k", "write -z 2M 64k"])
        try TestSupport.qemuImg(["rebase", "-u", "-b", "base.raw", "-F", "raw", mid])
        try TestSupport.qemuIo(mid, format: "qcow2", ["discard 3M 256k"])
        try TestSupport.qemuImg(["resize", "-q", mid, "6M"])   // the tail is unallocated: backing, then zeroes
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "-b", "mid.qcow2", "-F", "qcow2", top, "6M"])
        try TestSupport.qemuIo(top, format: "qcow2", ["write -P 0x62 0 6k", "write -P 0x63 3100k 20k", "write -z 5M 8k"])
        return (top, mid)
    }

    @Test("mapClustersForRead returns data, zero, backing and compressed regions, merged where contiguous")
    func mappingHasEveryKind() throws {
        let dir = try TestSupport.makeTempDir("qcow2-mapping")
        defer { TestSupport.removeTempDir(dir) }
        let (_, mid) = try Self.chain(dir)
        let disk = try #require(try openDisk(mid) as? Qcow2Disk)
        defer { try? disk.close() }
        let maps = try disk.metadata.mapClustersForRead(offset: 0, length: disk.logicalSize)
        let kinds = Set(maps.map { $0.regionKind(backingSize: 0) })
        #expect(kinds == [.allocated, .zero, .compressed, .unallocated], "\(kinds)")
        #expect(maps.reduce(0) { $0 + $1.length } == disk.logicalSize)
        for (a, b) in zip(maps, maps.dropFirst()) { #expect(a.guestOffset + a.length == b.guestOffset) }
        #expect(throws: BlockError.self) { try disk.metadata.mapClustersForRead(offset: disk.logicalSize - 1, length: 2) }
    }

    @Test("the L2 cache stays within its configured bound")
    func l2CacheIsBounded() throws {
        let dir = try TestSupport.makeTempDir("qcow2-cache")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/c.qcow2"
        // 512-byte clusters: one L2 table covers 32 KiB, so 1 MiB of data spans 32 tables.
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=512", img, "2M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 1 0 1M"])
        var o = OpenOptions()
        o.metadataCacheEntries = 3
        let disk = try #require(try openDisk(img, options: o) as? Qcow2Disk)
        defer { try? disk.close() }
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        try buf.withUnsafeMutableBytes { b in try disk.read(into: b, at: 0) }
        let s = disk.metadata.cacheStats
        #expect(s.capacity == 3 && s.entries <= 3 && s.misses >= 32, "\(s)")
        #expect(buf.allSatisfy { $0 == 1 })
    }

    @Test("io_uring reads at seeded random offsets return qemu-img's bytes; each completes exactly once with events in order")
    func asyncEqualsSyncWithEvents() throws {
        let dir = try TestSupport.makeTempDir("qcow2-async")
        defer { TestSupport.removeTempDir(dir) }
        let (top, _) = try Self.chain(dir)
        let oracle = [UInt8](try TestSupport.qemuRaw(top, format: "qcow2"))
        let log = Qcow2EventLog()
        let disk = try #require(try openDisk(top) as? Qcow2Disk)
        defer { try? disk.close() }
        let queue = try disk.makeQueue(QueueOptions(depth: 8, queueID: 3, engine: .uring, eventSink: log))
        defer { queue.close() }
        #expect(queue is QcowAsync)
        // Seeded: a failure names offsets that the next run reads again.
        var rng = SeededRandom(seed: 70)
        let count = 64
        var reqs: [(offset: UInt64, buf: AlignedBuffer)] = []
        for _ in 0..<count {
            let len = Int.random(in: 1...300, using: &rng) * 512
            let off = UInt64.random(in: 0...(disk.logicalSize - UInt64(len)) / 512, using: &rng) * 512
            reqs.append((off, AlignedBuffer(count: len)))
        }
        for (i, r) in reqs.enumerated() { try queue.read(at: r.offset, into: r.buf.bytes, userData: UInt64(i) + 100) }
        try queue.submit()
        var seen = [Int](repeating: 0, count: count)
        while seen.reduce(0, +) < count {
            try queue.waitForCompletion()
            while let c = queue.nextCompletion() {
                #expect(c.error == nil, "\(String(describing: c.error))")
                seen[Int(c.userData) - 100] += 1
            }
        }
        #expect(seen.allSatisfy { $0 == 1 }, "every request completes exactly once")
        #expect(queue.inFlight == 0)
        #expect(oracle.count == Int(disk.logicalSize))
        for r in reqs {
            let want = oracle[Int(r.offset)..<(Int(r.offset) + r.buf.count)]
            #expect(Array(r.buf.bytes) == Array(want), "read at \(r.offset) (\(r.buf.count) bytes) differs from qemu-img's")
        }
        let ev = log.events
        for i in 0..<count {
            let mine = ev.filter { $0.request == UInt64(i) + 100 }
            let completed = mine.filter { if case .guestCompleted = $0.payload { return true }; return false }
            #expect(completed.count == 1)
            if case let .mappingResolved(_, _, regions, _, _)? = mine.first(where: { if case .mappingResolved = $0.payload { return true }; return false })?.payload, regions > 1 {
                #expect(mine.contains { if case .pendingCreated = $0.payload { return true }; return false })
                #expect(mine.contains { if case .pendingFinished = $0.payload { return true }; return false })
            }
        }
        #expect(ev.allSatisfy { $0.queue == 3 })
    }

    @Test("four threads with their own queues read one image at once and all get qemu-img's bytes")
    func concurrentQueuesShareMetadata() async throws {
        let dir = try TestSupport.makeTempDir("qcow2-threads")
        defer { TestSupport.removeTempDir(dir) }
        let (top, _) = try Self.chain(dir)
        let oracle = try TestSupport.qemuRaw(top, format: "qcow2")
        let disk = try openDisk(top)
        defer { try? disk.close() }
        let chunk = 192 * 1024
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for t in 0..<4 {
                group.addTask {
                    let q = try disk.makeQueue(QueueOptions(depth: 4, queueID: t, engine: .uring))
                    defer { q.close() }
                    let buf = AlignedBuffer(count: chunk)
                    var ok = true
                    var off = UInt64(t * 4096)
                    while off + UInt64(chunk) <= disk.logicalSize {
                        try q.read(at: off, into: buf.bytes, userData: off)
                        try q.submit()
                        let c = try q.awaitCompletion()
                        if c == nil || c?.error != nil { return false }
                        ok = ok && oracle.withUnsafeBytes { memcmp($0.baseAddress! + Int(off), buf.baseAddress, chunk) == 0 }
                        off += UInt64(chunk) * 3 + 512
                    }
                    return ok
                }
            }
            for try await ok in group { #expect(ok) }
        }
    }

    @Test("reads of an encrypted image and writes to a read-only image complete with errors, not crashes")
    func refusedRequestsCompleteWithErrors() throws {
        let dir = try TestSupport.makeTempDir("qcow2-refuse")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/w.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "1M"])
        let disk = try openDisk(img)
        defer { try? disk.close() }
        let q = try disk.makeQueue(QueueOptions(depth: 4, engine: .uring))
        defer { q.close() }
        let buf = AlignedBuffer(count: 4096)
        try q.write(at: 0, from: UnsafeRawBufferPointer(buf.bytes), userData: 1)
        try q.read(at: 1 << 20, into: buf.bytes, userData: 2)
        try q.fsync(userData: 3)
        var got: [UInt64: BlockError?] = [:]
        while got.count < 3 {
            try q.waitForCompletion()
            while let c = q.nextCompletion() { got[c.userData] = c.error }
        }
        #expect(got[1]??.kind == .readOnly)
        #expect(got[2]??.kind == .outOfBounds)
        #expect(got[3]! == nil)
    }
}

import BlockCore
import Foundation
import Testing
import TestSupport

/// QCOW2 write error paths on io_uring (issue 5), through the ring's fault injector: an EIO
/// fails exactly the guest request it hit, short writes are completed, a depth-2 ring takes
/// 200 queued writes. Every request completes exactly once (counted by userData), nothing
/// hangs (each test runs on a thread with a deadline), and qemu-img judges the image after.
@Suite("QCOW2 write error injection")
struct Qcow2WriteErrorTests {
    /// Failures collected on the worker thread (Issue.record needs the test's task).
    final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var list: [String] = []
        func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
        func check(_ ok: Bool, _ s: @autoclosure () -> String) { if !ok { add(s()) } }
    }

    /// Runs `body` on its own thread (the queue's owner); fails the test if it takes longer than `seconds`.
    func onThread(_ seconds: Double = 180, sourceLocation: SourceLocation = #_sourceLocation,
                  _ body: @escaping @Sendable (Failures) throws -> Void) {
        let failures = Failures()
        let done = DispatchSemaphore(value: 0)
        Thread {
            do { try body(failures) } catch { failures.add("thrown: \(error)") }
            done.signal()
        }.start()
        let finished = done.wait(timeout: .now() + seconds) == .success
        #expect(finished, "the queue did not finish within \(seconds) s (hang)", sourceLocation: sourceLocation)
        #expect(failures.list.isEmpty, "\(failures.list.prefix(6))", sourceLocation: sourceLocation)
    }

    /// Collects completions until every userData in `expected` has been seen, counting each.
    static func collect(_ q: any AsyncIo, _ expected: Set<UInt64>, _ f: Failures) throws -> [UInt64: [IoCompletion]] {
        var seen: [UInt64: [IoCompletion]] = [:]
        var spins = 0
        while !expected.isSubset(of: Set(seen.keys)) {
            if let c = q.nextCompletion() {
                seen[c.userData, default: []].append(c)
                continue
            }
            if q.inFlight == 0 { f.add("queue idle with \(expected.subtracting(seen.keys).count) requests never completed"); break }
            try q.waitForCompletion()
            spins += 1
            if spins > 1_000_000 { f.add("no progress"); break }
        }
        // Anything completing late (doubled completions) shows up here.
        while let c = q.nextCompletion() { seen[c.userData, default: []].append(c) }
        for (u, cs) in seen where cs.count != 1 { f.add("request \(u) completed \(cs.count) times") }
        for u in seen.keys where !expected.contains(u) { f.add("unexpected completion with userData \(u)") }
        return seen
    }

    /// `qemu-img check --output=json`: no corruptions (and no leaks unless allowed).
    static func qemuCheck(_ img: String, allowLeaks: Bool, _ f: Failures) throws {
        let r = try TestSupport.qemuImg(["check", "--output=json", "-f", "qcow2", img])
        guard let j = try? JSONValue.parse(r.stdoutText) else {
            f.add("qemu-img check exit \(r.status) printed no JSON: \(r.stdoutText) \(r.stderr)")
            return
        }
        f.check((allowLeaks ? [0, 3] : [0]).contains(r.status), "qemu-img check exit \(r.status): \(r.stdoutText)")
        f.check((j["corruptions"]?.intValue ?? 0) == 0, "qemu-img check corruptions: \(r.stdoutText)")
        if !allowLeaks { f.check((j["leaks"]?.intValue ?? 0) == 0, "qemu-img check leaks: \(r.stdoutText)") }
    }

    /// Host offset of guest byte `guest` per `qemu-img map --output=json` (nil if not allocated).
    static func hostOffset(_ img: String, _ guest: UInt64) throws -> UInt64? {
        let m = try JSONValue.parse(try TestSupport.qemuImg(["map", "--output=json", "-f", "qcow2", img]).stdoutText)
        for e in m.arrayValue ?? [] {
            guard let start = e["start"]?.intValue, let len = e["length"]?.intValue else { continue }
            if Int64(guest) >= start && Int64(guest) < start + len, let off = e["offset"]?.intValue {
                return UInt64(off) + guest - UInt64(start)
            }
        }
        return nil
    }

    static func openQueue(_ img: String, depth: Int) throws -> (any DiskFile, QcowAsync) {
        let disk = try openDisk(img, options: OpenOptions(writable: true, format: .qcow2))
        let q = try disk.makeQueue(QueueOptions(depth: depth, engine: .uring))
        guard let qa = q as? QcowAsync else { throw TestFailure("a .uring queue of a qcow2 is \(type(of: q)), not QcowAsync") }
        return (disk, qa)
    }

    /// Proves: with EIO injected into the host write of one guest write among eight (to an
    /// allocated cluster, in place; or to a fresh cluster, allocating), that request completes
    /// once with an error and the other seven complete once with their full length; after
    /// close qemu-io reads the seven patterns back and qemu-img check finds no corruption
    /// (a leak is tolerated after the failed allocation).
    @Test("an injected EIO fails exactly the guest write it hit", arguments: [false, true])
    func eioFailsOneRequest(_ allocating: Bool) throws {
        let dir = try TestSupport.makeTempDir("q2w-eio")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/e.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        if !allocating { try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x11 0 16M"]) }
        let cluster: UInt64 = 65536, victim: UInt64 = 3
        let target = allocating ? nil : try Self.hostOffset(img, victim * cluster)
        if !allocating && target == nil { throw TestFailure("qemu-img map shows no host offset for cluster 3") }
        onThread { f in
            let (disk, q) = try Self.openQueue(img, depth: 4)
            let bufs = (0..<8).map { i -> AlignedBuffer in
                let b = AlignedBuffer(count: Int(cluster))
                b.bytes.initializeMemory(as: UInt8.self, repeating: UInt8(0x40 + i))
                return b
            }
            let victimBuf = bufs[Int(victim)].baseAddress
            final class Counter { var fired = 0 }
            let counter = Counter()
            q.context.faultInjector = { op, _ in
                guard op.opcode == .writev else { return .none }
                let hit: Bool
                if let target {
                    hit = op.offset <= target && target < op.offset + UInt64(op.length)
                } else if let p = op.buffer {
                    hit = p >= victimBuf && p < victimBuf + Int(cluster)
                } else { hit = false }
                if hit { counter.fired += 1; return .error(errno: EIO) }
                return .none
            }
            for i in 0..<8 {
                try q.write(at: UInt64(i) * cluster, from: UnsafeRawBufferPointer(bufs[i].bytes), userData: UInt64(i))
            }
            try q.submit()
            let seen = try Self.collect(q, Set(0..<8), f)
            f.check(counter.fired >= 1, "the fault injector never matched the victim's host write (allocating: \(allocating))")
            for i in 0..<8 {
                guard let c = seen[UInt64(i)]?.first else { continue }
                if UInt64(i) == victim {
                    f.check(c.error != nil, "the write that hit EIO completed without an error")
                } else {
                    f.check(c.error == nil && c.bytes == Int(cluster), "write \(i) completed with \(c.bytes) bytes, error \(String(describing: c.error))")
                }
            }
            q.context.faultInjector = nil
            try q.fsync(userData: 100)
            try q.submit()
            _ = try Self.collect(q, [100], f)
            q.close()
            try disk.close()
            for i in 0..<8 where UInt64(i) != victim {
                try TestSupport.qemuIo(img, format: "qcow2", ["read -P \(0x40 + i) \(UInt64(i) * cluster) \(cluster)"])
            }
            try Self.qemuCheck(img, allowLeaks: allocating, f)
        }
    }

    /// Proves: when every host write is cut short after 513 bytes, each of 24 guest writes
    /// (512 B..200 KiB, allocating, partial clusters, cluster-spanning) still completes once
    /// with its full length, the ring counts resubmissions, and after close the image equals
    /// the expected bytes under qemu-img convert and passes qemu-img check.
    @Test("short host writes are resubmitted and the guest data is whole")
    func shortWritesComplete() throws {
        let dir = try TestSupport.makeTempDir("q2w-short")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=16k", img, "16M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x11 0 1M"])
        onThread { f in
            let (disk, q) = try Self.openQueue(img, depth: 8)
            q.context.faultInjector = { op, _ in op.opcode == .writev ? .shortTransfer(bytes: 513) : .none }
            var expected = [UInt8](repeating: 0, count: 16 << 20)
            for i in 0..<(1 << 20) { expected[i] = 0x11 }
            var rng = SeededRandom(seed: 0x1234_5678)
            func rnd() -> UInt64 { rng.next() }
            var bufs: [AlignedBuffer] = []
            var lengths: [UInt64: Int] = [:]
            for i in 0..<24 {
                let len = Int((rnd() % 400 + 1) * 512)
                let off = i * 640 << 10 + Int(rnd() % 200) * 512
                let data = TestSupport.pseudoRandomBytes(count: len, seed: UInt64(i + 1))
                let b = AlignedBuffer(count: len)
                b.bytes.copyBytes(from: data)
                bufs.append(b)
                expected.replaceSubrange(off..<(off + len), with: data)
                lengths[UInt64(i)] = len
                try q.write(at: UInt64(off), from: UnsafeRawBufferPointer(b.bytes), userData: UInt64(i))
            }
            try q.submit()
            let seen = try Self.collect(q, Set(0..<24), f)
            for (u, cs) in seen { if let c = cs.first { f.check(c.error == nil && c.bytes == lengths[u], "write \(u): \(c.bytes) bytes, \(String(describing: c.error))") } }
            f.check(q.context.stats.shortResubmits > 0, "no short transfer was resubmitted")
            try q.fsync(userData: 100)
            try q.submit()
            let fs = try Self.collect(q, [100], f)
            f.check(fs[100]?.first?.error == nil, "fsync failed: \(String(describing: fs[100]?.first?.error))")
            q.close()
            try disk.close()
            withExtendedLifetime(bufs) {}
            f.check(try TestSupport.qemuRaw(img, format: "qcow2") == Data(expected), "qemu-img convert differs from the written data")
            try Self.qemuCheck(img, allowLeaks: false, f)
        }
    }

    /// Proves: 200 writes (512 B..64 KiB, allocating) and 4 fsyncs queued at once on a depth-2
    /// ring all complete exactly once without error (the ring's backlog is used), and qemu-img
    /// convert shows every write's data; qemu-img check is clean.
    @Test("200 writes on a depth-2 ring all complete exactly once")
    func sqFullWrites() throws {
        let dir = try TestSupport.makeTempDir("q2w-sqfull")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/q.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", img, "16M"])
        onThread { f in
            let (disk, q) = try Self.openQueue(img, depth: 2)
            var expected = [UInt8](repeating: 0, count: 16 << 20)
            var rng = SeededRandom(seed: 0xABCD_EF01)
            func rnd() -> UInt64 { rng.next() }
            var bufs: [AlignedBuffer] = []
            var ids = Set<UInt64>()
            for i in 0..<200 {
                let len = Int((rnd() % 128 + 1) * 512)
                let off = i * (80 << 10) + Int(rnd() % 30) * 512
                let b = AlignedBuffer(count: len)
                let pat = UInt8(i % 250 + 1)
                b.bytes.initializeMemory(as: UInt8.self, repeating: pat)
                bufs.append(b)
                for j in off..<(off + len) { expected[j] = pat }
                try q.write(at: UInt64(off), from: UnsafeRawBufferPointer(b.bytes), userData: UInt64(i))
                ids.insert(UInt64(i))
                if i % 50 == 49 {
                    try q.fsync(userData: 10_000 + UInt64(i))
                    ids.insert(10_000 + UInt64(i))
                }
            }
            try q.submit()
            let seen = try Self.collect(q, ids, f)
            for (u, cs) in seen { f.check(cs.first?.error == nil, "request \(u): \(String(describing: cs.first?.error))") }
            f.check(q.context.stats.backlogged > 0, "the depth-2 ring never used its backlog")
            q.close()
            try disk.close()
            withExtendedLifetime(bufs) {}
            f.check(try TestSupport.qemuRaw(img, format: "qcow2") == Data(expected), "qemu-img convert differs from the written data")
            try Self.qemuCheck(img, allowLeaks: false, f)
        }
    }

    /// Proves: an EIO injected into the host flush fails the guest fsync once, with an error,
    /// and the writes before it completed normally.
    @Test("an injected flush error fails the guest fsync")
    func fsyncErrorIsReported() throws {
        let dir = try TestSupport.makeTempDir("q2w-fsync")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/f.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        onThread { f in
            let (disk, q) = try Self.openQueue(img, depth: 4)
            q.context.faultInjector = { op, _ in op.opcode == .fsync || op.opcode == .fdatasync ? .error(errno: EIO) : .none }
            let b = AlignedBuffer(count: 8192)
            b.bytes.initializeMemory(as: UInt8.self, repeating: 0x5e)
            try q.write(at: 1 << 20, from: UnsafeRawBufferPointer(b.bytes), userData: 1)
            try q.submit()
            let w = try Self.collect(q, [1], f)
            f.check(w[1]?.first?.error == nil, "write failed: \(String(describing: w[1]?.first?.error))")
            try q.fsync(userData: 2)
            try q.submit()
            let s = try Self.collect(q, [2], f)
            f.check(s[2]?.first?.error != nil, "the guest fsync succeeded although its host flush failed")
            q.context.faultInjector = nil
            q.close()
            try? disk.close()
            withExtendedLifetime(b) {}
        }
    }

    /// Proves: when the metadata writes of a guest fsync (the new L2 entry and refcount of an
    /// allocating write) fail with EIO, the fsync completes once with an error instead of
    /// claiming durability; a second fsync without the fault succeeds, and after close
    /// qemu-io reads the data back and qemu-img check is clean (the dirty metadata was kept
    /// and written again).
    @Test("a failed metadata write fails the guest fsync, and the next fsync writes it")
    func metadataWriteErrorFailsFsync() throws {
        let dir = try TestSupport.makeTempDir("q2w-metaeio")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/m.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", img, "16M"])
        onThread { f in
            let (disk, q) = try Self.openQueue(img, depth: 4)
            let b = AlignedBuffer(count: 12288)
            b.bytes.initializeMemory(as: UInt8.self, repeating: 0x6d)
            try q.write(at: 5 << 20, from: UnsafeRawBufferPointer(b.bytes), userData: 1)
            try q.submit()
            let w = try Self.collect(q, [1], f)
            f.check(w[1]?.first?.error == nil, "write failed: \(String(describing: w[1]?.first?.error))")
            final class Counter { var fired = 0 }
            let counter = Counter()
            q.context.faultInjector = { op, _ in
                if op.opcode == .writev { counter.fired += 1; return .error(errno: EIO) }
                return .none
            }
            try q.fsync(userData: 2)
            try q.submit()
            let s1 = try Self.collect(q, [2], f)
            if counter.fired > 0 {
                f.check(s1[2]?.first?.error != nil, "the guest fsync succeeded although \(counter.fired) metadata writes failed")
            } else {
                f.add("the guest fsync wrote no metadata through the queue's ring (nothing to inject into)")
            }
            q.context.faultInjector = nil
            try q.fsync(userData: 3)
            try q.submit()
            let s2 = try Self.collect(q, [3], f)
            f.check(s2[3]?.first?.error == nil, "the retried fsync failed: \(String(describing: s2[3]?.first?.error))")
            q.close()
            try disk.close()
            withExtendedLifetime(b) {}
            try TestSupport.qemuIo(img, format: "qcow2", ["read -P 0x6d 5M 12k"])
            try Self.qemuCheck(img, allowLeaks: false, f)
        }
    }

    /// Proves: an allocating partial-cluster write over a raw backing file whose copy-on-write
    /// read (or whose data write) fails with EIO completes once with an error, and afterwards
    /// the bytes of that cluster the write did not cover still read as the backing file's
    /// data (qemu-io), i.e. a half-built cluster is never linked into the L2 table; qemu-img
    /// check finds no corruption.
    @Test("a failed copy-on-write leaves the backing data visible", arguments: ["cow-read", "data-write"])
    func failedCowKeepsBackingData(_ fault: String) throws {
        let dir = try TestSupport.makeTempDir("q2w-coweio")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/top.qcow2", base = dir + "/base.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", base, "16M"])
        try TestSupport.qemuIo(base, format: "raw", ["write -P 0x42 0 16M"])
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", img, "16M"])
        onThread { f in
            let (disk, q) = try Self.openQueue(img, depth: 4)
            let b = AlignedBuffer(count: 16384)
            b.bytes.initializeMemory(as: UInt8.self, repeating: 0x99)
            final class Counter { var fired = 0 }
            let counter = Counter()
            let victim = b.baseAddress
            q.context.faultInjector = { op, _ in
                let hit = fault == "cow-read" ? op.opcode == .readv
                    : (op.opcode == .writev && op.buffer.map { $0 >= victim && $0 < victim + 16384 } == true)
                    || (fault == "data-write" && op.opcode == .writev && op.length >= 65536)
                if hit { counter.fired += 1; return .error(errno: EIO) }
                return .none
            }
            // 16 KiB in the middle of the cluster at 2 MiB: 24 KiB before and after come from the backing file.
            try q.write(at: (2 << 20) + 24576, from: UnsafeRawBufferPointer(b.bytes), userData: 1)
            try q.submit()
            let w = try Self.collect(q, [1], f)
            f.check(counter.fired > 0, "the fault injector never matched (\(fault))")
            if counter.fired > 0 { f.check(w[1]?.first?.error != nil, "the write succeeded although its \(fault) failed") }
            q.context.faultInjector = nil
            try q.fsync(userData: 2)
            try q.submit()
            _ = try Self.collect(q, [2], f)
            q.close()
            try disk.close()
            withExtendedLifetime(b) {}
            let r = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x42 2M 24k", "-c", "read -P 0x42 2088960 24k",
                                                    "-c", "read -P 0x42 0 2M", img])
            f.check(!r.stdoutText.contains("failed"), "bytes the failed write did not cover lost their backing data: \(r.stdoutText)")
            try Self.qemuCheck(img, allowLeaks: true, f)
        }
    }
}

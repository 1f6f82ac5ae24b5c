import Testing
import Foundation
import BlockCore
import TestSupport

/// Several io_uring queues on their own threads write one VMDK concurrently (512 B..200 KiB,
/// crossing grain and, for split images, extent boundaries, allocating grains; a child also
/// copies its parent's grains): the image then equals a raw mirror under `qemu-img compare`,
/// `qemu-img check` is clean, and every queue reads the mirror back.
@Suite struct VmdkMultiQueueTests {
    final class Box: @unchecked Sendable {
        let lock = NSLock()
        var errors: [String] = []
        var writes: [(UInt64, Int, UInt8)] = []
        func add(_ e: String) { lock.lock(); errors.append(e); lock.unlock() }
        func add(_ w: [(UInt64, Int, UInt8)]) { lock.lock(); writes += w; lock.unlock() }
    }

    static let zone: UInt64 = 4 << 20
    static let threads = 4

    /// One queue's work: batches of 8 writes into 8 disjoint slots of its zone (one batch in 4
    /// ends with a flush and one writes zeroes), then a read-back of the zone.
    static func worker(disk: any DiskFile, id: Int, base: UInt64, box: Box) {
        do {
            let q = try disk.makeQueue(QueueOptions(depth: 8, queueID: id, engine: .uring))
            defer { q.close() }
            var rng = SeededRandom(seed: UInt64(id + 11))
            let slot = zone / 8
            let start = base + UInt64(id) * zone
            let bufs = (0..<8).map { _ in AlignedBuffer(count: 200 << 10) }
            var log: [(UInt64, Int, UInt8)] = []
            for batch in 0..<10 {
                for s in 0..<8 {
                    let len = Int((rng.next() % 400 + 1) * 512)
                    let off = start + UInt64(s) * slot + (rng.next() % ((slot - UInt64(len)) / 512)) * 512
                    if batch == 5 && s == 3 {
                        try q.writeZeroes(at: off, length: UInt64(len), userData: UInt64(s))
                        log.append((off, len, 0))
                        continue
                    }
                    let pat = UInt8(truncatingIfNeeded: id * 64 + batch * 8 + s + 1)
                    bufs[s].bytes.initializeMemory(as: UInt8.self, repeating: pat)
                    try q.write(at: off, from: UnsafeRawBufferPointer(rebasing: bufs[s].bytes[0..<len]), userData: UInt64(s))
                    log.append((off, len, pat))
                }
                try q.submit()
                var done = 0
                while done < 8 {
                    if let c = q.nextCompletion() {
                        if let e = c.error { box.add("queue \(id): \(e)") }
                        done += 1
                    } else { try q.waitForCompletion() }
                }
                if batch % 4 == 3 {
                    try q.fsync(userData: 99)
                    try q.submit()
                    let f = try q.awaitCompletion()
                    if f == nil { box.add("fsync: no completion") } else if let e = f?.error { box.add("fsync: \(e)") }
                }
            }
            box.add(log)
        } catch let e { box.add("queue \(id): \(e)") }
    }

    /// (subformat, size, where the zones start, with a parent)
    static let cases: [(String, UInt64, UInt64, Bool)] = [
        ("monolithicSparse", 64 << 20, 1 << 20, false),
        ("twoGbMaxExtentSparse", (2 << 30) + (32 << 20), (2 << 30) - (6 << 20), false),
        ("monolithicFlat", 64 << 20, 1 << 20, false),
        ("twoGbMaxExtentFlat", (2 << 30) + (32 << 20), (2 << 30) - (6 << 20), false),
        ("monolithicSparse", 64 << 20, 1 << 20, true),
    ]

    @Test(arguments: cases)
    func concurrentQueuesMatchRawMirror(_ sub: String, _ size: UInt64, _ base: UInt64, _ withParent: Bool) throws {
        let dir = try TestSupport.makeTempDir("vmdk-mq"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/mq.vmdk"
        // The mirror of the written window [base, base + threads * zone); the rest of the guest
        // is the parent's pattern or zeroes.
        let span = Int(UInt64(Self.threads) * Self.zone)
        var pattern: [UInt8] = []
        var mirror = [UInt8](repeating: 0, count: span)
        if withParent {
            let parentRaw = dir + "/p.raw"
            pattern = TestSupport.pseudoRandomBytes(count: Int(size), seed: 3)
            try TestSupport.writeFile(parentRaw, pattern)
            try TestSupport.qemuImg(["convert", "-O", "vmdk", parentRaw, dir + "/p.vmdk"])
            try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-b", "p.vmdk", "-F", "vmdk", img])
            mirror = Array(pattern[Int(base)..<(Int(base) + span)])
        } else {
            try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=\(sub)", img, "\(size)"])
        }
        let disk = try openDisk(img, options: OpenOptions(writable: true))
        let box = Box()
        let group = DispatchGroup()
        for t in 0..<Self.threads {
            group.enter()
            Thread { Self.worker(disk: disk, id: t, base: base, box: box); group.leave() }.start()
        }
        try #require(group.wait(timeout: .now() + Progress.defaultTimeout) == .success, "writers did not finish in \(Progress.defaultTimeout) s")
        #expect(box.errors.isEmpty, "\(box.errors)")
        for (off, len, pat) in box.writes { for i in 0..<len { mirror[Int(off - base) + i] = pat } }
        // Read-back through one fresh queue per zone.
        for t in 0..<Self.threads {
            let q = try disk.makeQueue(QueueOptions(depth: 4, queueID: 10 + t, engine: .uring))
            let buf = AlignedBuffer(count: Int(Self.zone))
            let off = base + UInt64(t) * Self.zone
            try q.read(at: off, into: buf.bytes, userData: 1)
            try q.submit()
            let c = try q.awaitCompletion()
            #expect(c != nil && c?.error == nil, "read \(t): \(String(describing: c?.error))")
            #expect(Array(buf.bytes) == Array(mirror[Int(off - base)..<(Int(off - base) + Int(Self.zone))]), "read-back of zone \(t) differs")
            q.close()
        }
        try disk.close()
        let raw = dir + "/mirror.raw"
        try TestSupport.writeFile(raw, pattern)
        let rf = try SystemFile(path: raw, writable: true)
        try rf.truncate(to: size)
        try rf.writeBytes(mirror, at: base)
        rf.close()
        let cmp = try TestSupport.qemuImg(["compare", "-f", "vmdk", "-F", "raw", img, raw])
        #expect(cmp.status == 0, "qemu-img compare: \(cmp.stdoutText) \(cmp.stderr)")
        let chk = try TestSupport.qemuImg(["check", img])
        #expect(chk.status == 0, "\(chk.stdoutText) \(chk.stderr)")
        // blockscope's own map still agrees with qemu-img's after the writes.
        try VmdkEndToEndTests.agree(img, "\(sub) after writes")
    }

    /// A streamOptimized image is refused for writing with what to do instead.
    @Test func streamOptimizedWriteIsRefused() throws {
        let dir = try TestSupport.makeTempDir("vmdk-so"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", img, "10M"])
        do {
            _ = try openDisk(img, options: OpenOptions(writable: true))
            Issue.record("opened for writing")
        } catch let e { #expect(e.description.contains("streamOptimized") && e.description.contains("blockscope create"), "\(e)") }
    }
}

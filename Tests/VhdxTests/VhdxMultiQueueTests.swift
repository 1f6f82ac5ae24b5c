import Testing
import Foundation
import BlockCore
import TestSupport

/// Several io_uring queues on their own threads write one VHDX/VHD concurrently (sizes
/// 512 B..200 KiB, crossing block boundaries, allocating blocks); the image then equals a
/// raw mirror under `qemu-img compare`, passes `qemu-img check`, and reads back per queue.
@Suite struct VhdxMultiQueueTests {
    final class Box: @unchecked Sendable {
        let lock = NSLock()
        var errors: [String] = []
        var writes: [(UInt64, Int, UInt8)] = []
        func add(_ e: String) { lock.lock(); errors.append(e); lock.unlock() }
        func add(_ w: [(UInt64, Int, UInt8)]) { lock.lock(); writes += w; lock.unlock() }
    }

    static let zone: UInt64 = 8 << 20
    static let threads = 4

    /// One queue's work: batches of 8 writes into 8 disjoint slots of its zone, then a read-back.
    static func worker(disk: any DiskFile, id: Int, box: Box) {
        do {
            let q = try disk.makeQueue(QueueOptions(depth: 8, queueID: id, engine: .uring))
            defer { q.close() }
            var rng = SeededRandom(seed: UInt64(id + 1))
            func rnd() -> UInt64 { rng.next() }
            let slot = zone / 8
            let base = UInt64(id) * zone + (512 << 10)
            let bufs = (0..<8).map { _ in AlignedBuffer(count: 200 << 10) }
            var log: [(UInt64, Int, UInt8)] = []
            for batch in 0..<12 {
                for s in 0..<8 {
                    let len = Int((rnd() % 400 + 1) * 512)
                    let off = base + UInt64(s) * slot + (rnd() % ((slot - UInt64(len)) / 512)) * 512
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

    @Test(arguments: [("vhdx", "block_size=1M", false), ("vhdx", "subformat=fixed,block_state_zero=off,block_size=1M", false),
                      ("vpc", "subformat=dynamic", false), ("vhdx", "block_size=1M", true), ("vpc", "subformat=dynamic", true)])
    func concurrentQueuesMatchRawMirror(_ format: String, _ opts: String, _ direct: Bool) throws {
        let dir = try TestSupport.makeTempDir("vhdx-mq"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/mq.\(format)"
        let size = UInt64(Self.threads) * Self.zone + (2 << 20)
        try TestSupport.qemuImg(["create", "-q", "-f", format, "-o", opts, img, "\(size)"])
        var o = OpenOptions(writable: true, format: ImageFormat(rawValue: format))
        o.direct = direct   // data through a second O_DIRECT descriptor (aligned buffers, 512-byte multiples)
        let disk = try openDisk(img, options: o)
        let box = Box()
        let group = DispatchGroup()
        for t in 0..<Self.threads {
            group.enter()
            let th = Thread { Self.worker(disk: disk, id: t, box: box); group.leave() }
            th.start()
        }
        // Bounded: a queue that never completes fails the test instead of hanging the suite.
        try #require(group.wait(timeout: .now() + Progress.defaultTimeout) == .success, "writers did not finish in \(Progress.defaultTimeout) s")
        #expect(box.errors.isEmpty, "\(box.errors)")
        // Concurrent read-back through fresh queues: every queue sees the mirror.
        var mirror = [UInt8](repeating: 0, count: Int(disk.logicalSize))
        for (off, len, pat) in box.writes { for i in 0..<len { mirror[Int(off) + i] = pat } }
        let readBox = Box()
        let mirrorCopy = mirror
        for t in 0..<Self.threads {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let q = try disk.makeQueue(QueueOptions(depth: 4, queueID: 10 + t, engine: .uring))
                    defer { q.close() }
                    let buf = AlignedBuffer(count: Int(Self.zone))
                    let off = UInt64(t) * Self.zone + (512 << 10)
                    try q.read(at: off, into: buf.bytes, userData: 1)
                    try q.submit()
                    let c = try q.awaitCompletion()
                    if c == nil { readBox.add("read \(t): no completion") } else if let e = c?.error { readBox.add("read \(t): \(e)") }
                    if Array(buf.bytes) != Array(mirrorCopy[Int(off)..<(Int(off) + Int(Self.zone))]) { readBox.add("read-back of zone \(t) differs") }
                } catch let e { readBox.add("reader \(t): \(e)") }
            }.start()
        }
        try #require(group.wait(timeout: .now() + Progress.defaultTimeout) == .success, "readers did not finish in \(Progress.defaultTimeout) s")
        #expect(readBox.errors.isEmpty, "\(readBox.errors)")
        try disk.close()
        let raw = dir + "/mirror.raw"
        try TestSupport.writeFile(raw, mirror)
        let cmp = try TestSupport.qemuImg(["compare", "-f", format, "-F", "raw", img, raw])
        #expect(cmp.status == 0, "qemu-img compare: \(cmp.stdoutText)")
        if format == "vhdx" {
            let chk = try TestSupport.qemuImg(["check", "-f", "vhdx", img])
            #expect(chk.status == 0, "\(chk.stdoutText) \(chk.stderr)")
        }
    }
}

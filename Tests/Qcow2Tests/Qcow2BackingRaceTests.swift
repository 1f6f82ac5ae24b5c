import Testing
import Foundation
import BlockCore
import TestSupport

/// Several io_uring queues on their own threads write overlapping ranges of one QCOW2 over a
/// RAW backing file at once (the shape of cloud-hypervisor #8621: multiqueue with a backing
/// file, where allocating writes race on the same clusters and their copy-on-write from the
/// backing file). `--mirror` serialises overlapping requests, so no mirror run checks this.
/// The expected result does not come from blockscope: every 512-byte sector carries a stamp
/// naming the write, the sector and the writer, and after a reopen qemu-img (the reader)
/// must find in every sector either the backing file's bytes, where nobody wrote, or the
/// whole stamp of one write that covered it and that no covering write submitted after its
/// completion (by the test's clock) overwrote; `qemu-img check` must be clean.
@Suite struct Qcow2BackingRaceTests {
    static let writers = 4
    static let batches = 12
    static let perBatch = 8
    /// The contested range: 32 clusters of 64 KiB, 1 MiB into a 4 MiB disk.
    static let region: Range<Int> = (1 << 20)..<((1 << 20) + 32 * 65536)
    static let diskSize = 4 << 20

    /// One write: who, which batch and request, where, and when (monotonic ns: before its
    /// batch's first write call, and when its completion was seen).
    struct Write: Sendable {
        var writer: Int, batch: Int, request: Int
        var offset: Int, length: Int
        var submitted: UInt64 = 0, completed: UInt64 = 0
    }

    final class Box: @unchecked Sendable {
        let lock = NSLock()
        var errors: [String] = []
        var writes: [Write] = []
        func add(_ e: String) { lock.lock(); errors.append(e); lock.unlock() }
        func add(_ w: [Write]) { lock.lock(); writes += w; lock.unlock() }
    }

    /// The 8-byte stamp repeated through sector `sector` of write `w`.
    static func stamp(_ w: Write, sector: Int) -> UInt64 {
        0x5A << 56 | UInt64(w.writer) << 48 | UInt64(w.batch) << 40 | UInt64(w.request) << 32 | UInt64(sector)
    }

    static func fill(_ buf: UnsafeMutableRawBufferPointer, _ w: Write) {
        for s in 0..<(w.length / 512) {
            let v = stamp(w, sector: w.offset / 512 + s).littleEndian
            for k in 0..<64 { buf.storeBytes(of: v, toByteOffset: s * 512 + k * 8, as: UInt64.self) }
        }
    }

    /// One queue's work: batches of writes at seeded random places in the contested range,
    /// all in flight at once, an fsync every third batch. Most writes are 512 B to 8 KiB, so
    /// every cluster is allocated by racing partial writes (each copying the rest from the
    /// backing file) while a sector is covered about twice: a lost or misplaced write shows.
    /// Every other batch's first write is up to 96 KiB and crosses clusters.
    static func writer(disk: any DiskFile, id: Int, box: Box) {
        do {
            let q = try disk.makeQueue(QueueOptions(depth: perBatch, queueID: id, engine: .uring))
            defer { q.close() }
            var rng = SeededRandom(seed: UInt64(8621 + id))
            let bufs = (0..<perBatch).map { _ in AlignedBuffer(count: 96 << 10) }
            var log: [Write] = []
            for batch in 0..<batches {
                let first = log.count
                // Taken before the first write call: a queue may start a request in write().
                let submitted = monotonicNanos()
                for r in 0..<perBatch {
                    let length = (1 + rng.below(r == 0 && batch % 2 == 0 ? 192 : 16)) * 512
                    let offset = region.lowerBound + rng.below((region.count - length) / 512 + 1) * 512
                    let w = Write(writer: id, batch: batch, request: r, offset: offset, length: length)
                    fill(bufs[r].bytes, w)
                    try q.write(at: UInt64(offset), from: UnsafeRawBufferPointer(rebasing: bufs[r].bytes[0..<length]), userData: UInt64(r))
                    log.append(w)
                }
                for i in first..<log.count { log[i].submitted = submitted }
                try q.submit()
                var done = 0
                let deadline = Date().addingTimeInterval(Progress.defaultTimeout)
                while done < perBatch {
                    if let c = q.nextCompletion() {
                        if let e = c.error { box.add("writer \(id) batch \(batch): \(e)") }
                        log[first + Int(c.userData)].completed = monotonicNanos()
                        done += 1
                    } else if Date() > deadline {
                        box.add("writer \(id) batch \(batch): \(perBatch - done) writes never completed"); return
                    } else { try q.waitForCompletion() }
                }
                if batch % 3 == 2 {
                    try q.fsync(userData: 99)
                    try q.submit()
                    if let f = try q.awaitCompletion() { if let e = f.error { box.add("fsync: \(e)") } } else { box.add("fsync: no completion") }
                }
            }
            box.add(log)
        } catch let e { box.add("writer \(id): \(e)") }
    }

    @Test(arguments: ["cluster_size=64k", "cluster_size=64k,extended_l2=on", "cluster_size=4k"])
    func overlappingWritersOnABackedQcow2LeaveOneWholeWritePerSector(_ options: String) throws {
        let dir = try TestSupport.makeTempDir("qcow2-race"); defer { TestSupport.removeTempDir(dir) }
        let base = dir + "/base.raw", top = dir + "/top.qcow2"
        let backing = TestSupport.pseudoRandomBytes(count: Self.diskSize, seed: 8621)
        try TestSupport.writeFile(base, backing)
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", options, "-b", "base.raw", "-F", "raw", top])
        let disk = try openDisk(top, options: OpenOptions(writable: true, format: .qcow2))
        let box = Box()
        let group = DispatchGroup()
        for t in 0..<Self.writers {
            group.enter()
            Thread { Self.writer(disk: disk, id: t, box: box); group.leave() }.start()
        }
        try #require(group.wait(timeout: .now() + Progress.defaultTimeout) == .success, "writers did not finish in \(Progress.defaultTimeout) s")
        try disk.close()
        #expect(box.errors.isEmpty, "\(box.errors)")
        #expect(box.writes.count == Self.writers * Self.batches * Self.perBatch)

        // The reader is qemu-img, after blockscope closed the image.
        let check = try TestSupport.qemuImg(["check", "-f", "qcow2", top])
        #expect(check.status == 0 && check.stdoutText.contains("No errors were found"), "\(check.stdoutText) \(check.stderr)")
        let got = [UInt8](try TestSupport.qemuRaw(top, format: "qcow2"))
        try #require(got.count == Self.diskSize)

        // Per sector: the writes covering it. A write w can be the sector's content only if
        // no covering write was submitted after w completed (that one landed later).
        var covering = [[Write]](repeating: [], count: Self.diskSize / 512)
        for w in box.writes { for s in (w.offset / 512)..<((w.offset + w.length) / 512) { covering[s].append(w) } }
        var bad: [String] = []
        var fromWrites = 0
        for s in 0..<covering.count {
            let sector = got[(s * 512)..<(s * 512 + 512)]
            if covering[s].isEmpty {
                if !sector.elementsEqual(backing[(s * 512)..<(s * 512 + 512)]) { bad.append("sector \(s): nobody wrote it, it is not the backing file's") }
                continue
            }
            let v = sector.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            let whole = sector.withUnsafeBytes { p in (0..<64).allSatisfy { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) == v } }
            let lastSubmitted = covering[s].map(\.submitted).max() ?? 0
            let ok = whole && covering[s].contains { Self.stamp($0, sector: s) == v && $0.completed >= lastSubmitted }
            if ok { fromWrites += 1 } else if bad.count < 10 {
                bad.append("sector \(s) (\(hex(UInt64(s * 512)))): \(whole ? "stamp \(hex(v))" : "a torn sector") is not a covering write that no later one overwrote (\(covering[s].count) covered it)")
            }
        }
        #expect(bad.isEmpty, "\(bad.joined(separator: "\n"))")
        #expect(fromWrites > Self.region.count / 512 / 2, "the writes covered most of the contested range")

        // blockscope reopening the image reads what qemu-img read.
        let again = try openDisk(top, options: OpenOptions(writable: false, format: .qcow2))
        defer { try? again.close() }
        let buf = AlignedBuffer(count: Self.diskSize)
        try again.read(into: buf.bytes, at: 0)
        #expect(Array(buf.bytes) == got, "blockscope after reopen differs from qemu-img")
    }
}

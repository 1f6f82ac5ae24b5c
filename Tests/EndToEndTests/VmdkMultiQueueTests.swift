import Testing
import Foundation
import BlockCore
import TestSupport

/// Several io_uring queues on their own threads write one VMDK concurrently (512 B..200 KiB,
/// crossing grain and, for split images, extent boundaries, allocating grains; a child also
/// copies its parent's grains): the image then equals a raw mirror under `qemu-img compare`,
/// `qemu-img check` is clean, and every queue reads the mirror back.
@Suite struct VmdkMultiQueueTests {
    static let threads = 4

    /// Four 4 MiB zones from `origin`: batches of 8 requests of up to 200 KiB, 10 batches a
    /// queue; one request (batch 5, slot 3) writes zeroes, the rest write a pattern.
    static func plan(_ origin: UInt64) -> MultiQueueHarness.Plan {
        MultiQueueHarness.Plan(origin: origin, zone: 4 << 20, slots: 8, batches: 10, maxSectors: 400, seedBase: 11)
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
        let plan = Self.plan(base)
        let span = Int(UInt64(Self.threads) * plan.zone)
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
        let log = QueueRaceLog()
        try MultiQueueHarness.onThreads(Self.threads, "writers") { id in
            MultiQueueHarness.batchedWriter(disk: disk, id: id, plan: plan, log: log) { id, batch, s, _ in
                batch == 5 && s == 3 ? .zeroes : .write(UInt8(truncatingIfNeeded: id * 64 + batch * 8 + s + 1))
            }
        }
        #expect(log.errors.isEmpty, "\(log.errors)")
        log.apply(to: &mirror, base: base)
        let readLog = QueueRaceLog()
        try MultiQueueHarness.readBack(disk: disk, plan: plan, queues: Self.threads, expected: mirror, base: base, log: readLog)
        #expect(readLog.errors.isEmpty, "\(readLog.errors)")
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

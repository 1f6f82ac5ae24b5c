import Testing
import Foundation
import BlockCore
import TestSupport

/// Several io_uring queues on their own threads write one VHDX/VHD concurrently (sizes
/// 512 B..200 KiB, crossing block boundaries, allocating blocks); the image then equals a
/// raw mirror under `qemu-img compare`, passes `qemu-img check`, and reads back per queue.
@Suite struct VhdxMultiQueueTests {
    static let threads = 4
    /// Four 8 MiB zones from 512 KiB; batches of 8 writes of up to 200 KiB, 12 batches a queue.
    static let plan = MultiQueueHarness.Plan(origin: 512 << 10, zone: 8 << 20, slots: 8, batches: 12, maxSectors: 400, seedBase: 1)

    @Test(arguments: [("vhdx", "block_size=1M", false), ("vhdx", "subformat=fixed,block_state_zero=off,block_size=1M", false),
                      ("vpc", "subformat=dynamic", false), ("vhdx", "block_size=1M", true), ("vpc", "subformat=dynamic", true)])
    func concurrentQueuesMatchRawMirror(_ format: String, _ opts: String, _ direct: Bool) throws {
        let dir = try TestSupport.makeTempDir("vhdx-mq"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/mq.\(format)"
        let size = UInt64(Self.threads) * Self.plan.zone + (2 << 20)
        try TestSupport.qemuImg(["create", "-q", "-f", format, "-o", opts, img, "\(size)"])
        var o = OpenOptions(writable: true, format: ImageFormat(rawValue: format))
        o.direct = direct   // data through a second O_DIRECT descriptor (aligned buffers, 512-byte multiples)
        let disk = try openDisk(img, options: o)
        let log = QueueRaceLog()
        try MultiQueueHarness.onThreads(Self.threads, "writers") { id in
            MultiQueueHarness.batchedWriter(disk: disk, id: id, plan: Self.plan, log: log) { id, batch, s, _ in
                .write(UInt8(truncatingIfNeeded: id * 64 + batch * 8 + s + 1))
            }
        }
        #expect(log.errors.isEmpty, "\(log.errors)")
        // A freshly created image reads as zeroes; the mirror is that plus the completed writes.
        var mirror = [UInt8](repeating: 0, count: Int(disk.logicalSize))
        log.apply(to: &mirror)
        let readLog = QueueRaceLog()
        try MultiQueueHarness.readBack(disk: disk, plan: Self.plan, queues: Self.threads, expected: mirror, log: readLog)
        #expect(readLog.errors.isEmpty, "\(readLog.errors)")
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

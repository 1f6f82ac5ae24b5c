import BlockCore
import Foundation
import Testing
@testable import BlockServe
import TestSupport

/// A guest request whose data lies in several descriptors (a 32-page write from a guest's
/// scattered pages) is one request for the engine: the queue's figures count it once, with
/// its whole length, as the guest sent it (the served-truth rule of issue 21 for the
/// vhost-user front end). qemu-io reads back what the guest wrote.
extension VhostUserServeTests {
    @Test func aRequestInThreeSegmentsCountsAsOneRequestOfItsWholeLength() throws {
        registry = InFlightRegistry()
        try start()
        let fe = try FakeFrontEnd(path: socketPath)
        try fe.setUp()
        // OUT at sector 256 (128 KiB): three 512-byte device-readable buffers, then status.
        for (i, v) in [UInt8(0x11), 0x22, 0x33].enumerated() { memset(fe.mem + 0x10000 + 512 * i, Int32(v), 512) }
        fe.header(at: 0x4000, type: 1, sector: 256)
        (fe.mem + 0x4100).storeBytes(of: UInt8(0xff), as: UInt8.self)
        fe.place([(0x4000, 16, false), (0x10000, 512, false), (0x10200, 512, false), (0x10400, 512, false), (0x4100, 1, true)], staged: 0)
        var used = fe.usedIndex
        _ = fe.publish(1, usedEvent: used)
        #expect(Progress.wait(timeout: 60) { fe.usedIndex == used &+ 1 }, "the write was not answered")
        #expect((fe.mem + 0x4100).load(as: UInt8.self) == 0, "status of the write")
        // IN of the same 1536 bytes into three device-writable buffers.
        fe.header(at: 0x4020, type: 0, sector: 256)
        (fe.mem + 0x4101).storeBytes(of: UInt8(0xff), as: UInt8.self)
        fe.place([(0x4020, 16, false), (0x20000, 512, true), (0x20200, 512, true), (0x20400, 512, true), (0x4101, 1, true)], staged: 0)
        used = fe.usedIndex
        _ = fe.publish(1, usedEvent: used)
        #expect(Progress.wait(timeout: 60) { fe.usedIndex == used &+ 1 }, "the read was not answered")
        #expect((fe.mem + 0x4101).load(as: UInt8.self) == 0, "status of the read")
        #expect(memcmp(fe.mem + 0x10000, fe.mem + 0x20000, 1536) == 0, "the read returned other bytes than the write wrote")
        // The registry's figures: one write and one read of 1536 bytes each.
        var f = QueueFigures()
        #expect(Progress.wait(timeout: 60) {
            f = self.registry!.queues().first { $0.name == "vhost vq0" }?.figures ?? QueueFigures()
            return f.completed >= 2
        }, "figures: \(f)")
        #expect(f.writes == 1 && f.writeBytes == 1536 && f.reads == 1 && f.readBytes == 1536 && f.completed == 2 && f.errors == 0, "\(f)")
        try stop()
        let r = try TestSupport.qemuIo(image, format: "raw", ["read -P 0x11 128k 512", "read -P 0x22 0x20200 512", "read -P 0x33 0x20400 512"])
        #expect(r.status == 0 && !r.stdoutText.contains("Pattern verification failed"), "\(r.stdoutText)")
    }
}

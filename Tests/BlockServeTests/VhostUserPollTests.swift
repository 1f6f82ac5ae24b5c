import BlockCore
import Foundation
import Testing
@testable import BlockServe
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

extension VhostUserServeTests {
    /// A read of 512 bytes at `sector` into guest address `data`, status at `status`, header at `hdr`.
    private func read(_ fe: FakeFrontEnd, hdr: Int, sector: UInt64, data: Int, status: Int, staged: Int) {
        fe.header(at: hdr, type: 0, sector: sector)
        fe.place([(UInt64(hdr), 16, false), (UInt64(data), 512, true), (UInt64(status), 1, true)], staged: staged)
    }

    private func holds(_ fe: FakeFrontEnd, _ data: Int, _ byte: UInt8) -> Bool {
        UnsafeRawBufferPointer(start: fe.mem + data, count: 512).allSatisfy { $0 == byte }
    }

    /// The poll window (ADR 0021): after a batch the device leaves its avail_event behind, so
    /// a driver following EVENT_IDX sends no kick for its next request, and the device still
    /// takes it; once a window passes without a request it arms the kick again, and a single
    /// request keeps it armed. Every used_event the driver set gets its call (a call held
    /// while the driver submits is made once it stops). The bytes each read brings are those
    /// qemu-io wrote.
    @Test func aBatchOpensThePollWindowRequestsNeedNoKickAndAQuietWindowArmsTheKick() throws {
        _ = try TestSupport.qemuIo(image, format: "raw", ["write -P 0x77 128k 4k"])
        registry = InFlightRegistry()
        try start(polling: VhostUserPolling(windowNs: 3_000_000_000, intervalNs: 1_000_000))
        let fe = try FakeFrontEnd(path: socketPath)
        try fe.setUp()
        #expect(Progress.wait(timeout: 60) { fe.availEvent == 0 }, "an idle queue asks for the first kick")
        // Two reads at once, with the kick the driver's rule asks for: a batch.
        read(fe, hdr: 0x4000, sector: 256, data: 0x10000, status: 0x4100, staged: 0)
        read(fe, hdr: 0x4020, sector: 257, data: 0x10200, status: 0x4101, staged: 1)
        let first = fe.publish(2, usedEvent: 0)
        #expect(first.kicked)
        #expect(Progress.wait(timeout: 60) { fe.usedIndex == 2 }, "the batch was not answered")
        #expect(fe.availEvent == 0, "inside the window the device leaves avail_event behind")
        // The call for the batch may wait while the driver submits, not once it stops.
        var calls = 0
        #expect(Progress.wait(timeout: 60) { calls += fe.takeCalls(); return calls == 1 }, "no call for the batch")
        // The next read: past avail_event, so the driver's rule sends no kick; the device
        // takes it by looking at the ring.
        read(fe, hdr: 0x4040, sector: 258, data: 0x10400, status: 0x4102, staged: 0)
        let second = fe.publish(1, usedEvent: 2)
        #expect(!second.kicked, "EVENT_IDX asks no kick past an avail_event left behind")
        #expect(Progress.wait(timeout: 60) { fe.usedIndex == 3 }, "a request made available inside the window without a kick was not taken")
        #expect(Progress.wait(timeout: 60) { calls += fe.takeCalls(); return calls == 2 }, "no call for the request taken in the window")
        // A window without requests: the device arms the kick at the ring's end.
        #expect(Progress.wait(timeout: 60) { fe.availEvent == 3 }, "the kick was not armed after a quiet window")
        // One request at a time: taken on its kick, and the kick is armed again at once.
        read(fe, hdr: 0x4060, sector: 259, data: 0x10600, status: 0x4103, staged: 0)
        let third = fe.publish(1, usedEvent: 3)
        #expect(third.kicked)
        #expect(Progress.wait(timeout: 60) { fe.usedIndex == 4 })
        #expect(fe.availEvent == 4, "a single request does not open the window")
        #expect(Progress.wait(timeout: 60) { calls += fe.takeCalls(); return calls == 3 })
        for i in 0..<4 {
            #expect((fe.mem + 0x4100 + i).load(as: UInt8.self) == VirtioBlk.Status.ok.rawValue)
            #expect(holds(fe, 0x10000 + 512 * i, 0x77), "read \(i) does not hold what qemu-io wrote")
        }
        let g = try #require(registry!.queues().first { $0.name == "vhost vq0" }?.ring)
        #expect(g.kicks == 2 && g.chains == 4 && g.usedIndex == 4 && g.calls == 3, "\(g)")
        try stop()
    }

    /// Without a window (`VhostUserPolling.off`) the device arms the kick whenever the ring
    /// is empty, a batch too: the behaviour the window changes.
    @Test func withoutAWindowABatchLeavesTheKickArmed() throws {
        try start(polling: .off)
        let fe = try FakeFrontEnd(path: socketPath)
        try fe.setUp()
        read(fe, hdr: 0x4000, sector: 128, data: 0x10000, status: 0x4100, staged: 0)
        read(fe, hdr: 0x4020, sector: 129, data: 0x10200, status: 0x4101, staged: 1)
        #expect(fe.publish(2, usedEvent: 0).kicked)
        #expect(Progress.wait(timeout: 60) { fe.usedIndex == 2 })
        #expect(fe.availEvent == 2)
        #expect(holds(fe, 0x10000, 0x5a) && holds(fe, 0x10200, 0x5a))
        try stop()
    }
}

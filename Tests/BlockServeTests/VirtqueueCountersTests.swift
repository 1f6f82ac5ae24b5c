import BlockCore
import Foundation
import Testing
@testable import BlockServe
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A driver that follows EVENT_IDX's rules as a guest's does: it chains requests, makes them
/// available in batches, kicks only when the device's avail_event asks for it, and sets its
/// used_event per batch. It tallies what it did (kicks sent, entries it made available past
/// avail_event, the calls its used_event asks for), which the server's counters must equal.
extension FakeFrontEnd {
    /// Where the device's avail_event sits (after the used ring's entries).
    var availEvent: UInt16 { (mem + Self.usedAt + 4 + 8 * Self.ringSize).load(as: UInt16.self) }

    /// EVENT_IDX's test (vring_need_event): whether moving an index from `old` to `new`
    /// passes `event`.
    static func needEvent(_ event: UInt16, _ new: UInt16, _ old: UInt16) -> Bool { new &- event &- 1 < new &- old }

    /// Writes the chain of `buffers` into the descriptor table and its head into the next
    /// avail slot after `staged` entries not yet published; nothing is published.
    func place(_ buffers: [(addr: UInt64, len: UInt32, write: Bool)], staged: Int) {
        let head = nextDesc
        for (i, b) in buffers.enumerated() {
            let d = mem + Self.descAt + 16 * ((head + i) % Self.ringSize)
            d.storeBytes(of: b.addr, as: UInt64.self)
            d.storeBytes(of: b.len, toByteOffset: 8, as: UInt32.self)
            d.storeBytes(of: UInt16((i + 1 < buffers.count ? 1 : 0) | (b.write ? 2 : 0)), toByteOffset: 12, as: UInt16.self)
            d.storeBytes(of: UInt16((head + i + 1) % Self.ringSize), toByteOffset: 14, as: UInt16.self)
        }
        nextDesc = (head + buffers.count) % Self.ringSize
        (mem + Self.availAt + 4 + 2 * ((Int(availIdx) + staged) % Self.ringSize)).storeBytes(of: UInt16(head), as: UInt16.self)
    }

    /// Publishes `count` placed entries with `usedEvent` as the used_event, and kicks when
    /// the device's avail_event falls inside them. Returns (kicked, entries past avail_event).
    func publish(_ count: Int, usedEvent: UInt16) -> (kicked: Bool, pastAvailEvent: Int) {
        (mem + Self.availAt + 4 + 2 * Self.ringSize).storeBytes(of: usedEvent, as: UInt16.self)
        let old = availIdx, event = availEvent
        availIdx &+= UInt16(count)
        (mem + Self.availAt + 2).storeBytes(of: availIdx, as: UInt16.self)
        let kick = Self.needEvent(event, availIdx, old)
        if kick { var one: UInt64 = 1; _ = write(self.kick[1], &one, 8) }
        return (kick, (0..<count).filter { old &+ UInt16($0) != event }.count)
    }

    /// Calls waiting in the call pipe (8 bytes each), read without blocking.
    func takeCalls() -> Int {
        var p = pollfd(fd: call[0], events: Int16(POLLIN), revents: 0)
        var n = 0, b = [UInt8](repeating: 0, count: 8)
        while poll(&p, 1, 0) > 0, read(call[0], &b, 8) == 8 { n += 1 }
        return n
    }
}

extension VhostUserServeTests {
    @Test func theVirtqueueCountersEqualWhatTheDriverDidWithEventIdx() throws {
        registry = InFlightRegistry()
        try start()
        let fe = try FakeFrontEnd(path: socketPath)
        try fe.setUp()
        var kicks = 0, past = 0, callsWanted = 0, suppressedWanted = 0
        // Four reads one at a time: the even ones ask for a call (used_event = the used index
        // now), the odd ones do not (used_event far ahead), so each used entry is one decision.
        for i in 0..<4 {
            fe.header(at: 0x4000 + 32 * i, type: 0, sector: UInt64(128 + i))
            fe.place([(UInt64(0x4000 + 32 * i), 16, false), (UInt64(0x10000 + 512 * i), 512, true), (UInt64(0x4100 + i), 1, true)], staged: 0)
            let used = fe.usedIndex
            let r = fe.publish(1, usedEvent: i % 2 == 0 ? used : used &+ 50)
            kicks += r.kicked ? 1 : 0; past += r.pastAvailEvent
            if FakeFrontEnd.needEvent(i % 2 == 0 ? used : used &+ 50, used &+ 1, used) { callsWanted += 1 } else { suppressedWanted += 1 }
            #expect(Progress.wait(timeout: 60) { fe.usedIndex == used &+ 1 }, "read \(i) not answered")
        }
        // Three requests of an unknown type (two descriptors each: the 8-entry table holds
        // them) made available at once with one kick: the device takes the first at its
        // avail_event and the other two past it; they are answered UNSUPP without engine
        // I/O, so they reach the used ring in one batch: one call decision.
        let used = fe.usedIndex
        for i in 0..<3 {
            fe.header(at: 0x5000 + 32 * i, type: 99, sector: 0)
            fe.place([(UInt64(0x5000 + 32 * i), 16, false), (UInt64(0x4200 + i), 1, true)], staged: i)
        }
        let r = fe.publish(3, usedEvent: used)
        kicks += r.kicked ? 1 : 0; past += r.pastAvailEvent
        callsWanted += FakeFrontEnd.needEvent(used, used &+ 3, used) ? 1 : 0
        #expect(Progress.wait(timeout: 60) { fe.usedIndex == used &+ 3 })
        // The used ring can be published before its call: inside the poll window the call
        // waits while the driver is still submitting (ADR 0021). So wait for the calls the
        // driver's EVENT_IDX rule asks for to reach the pipe, and for the view's snapshot to
        // count the same calls, then compare.
        var calls = 0
        func ring() -> FrontEndQueue.Ring? { self.registry!.queues().first { $0.name == "vhost vq0" }?.ring }
        #expect(Progress.wait(timeout: 60) {
            calls += fe.takeCalls()
            return calls >= callsWanted && ring()?.usedIndex == 7 && ring()?.calls == UInt64(calls)
        }, "calls in the pipe: \(calls), wanted \(callsWanted)")
        let g = try #require(ring())
        #expect(kicks == 5 && past == 2 && callsWanted == 3 && suppressedWanted == 2, "the driver's own tally")
        #expect(g.availIndex == fe.availIdx && g.usedIndex == fe.usedIndex && g.lastAvail == fe.availIdx && g.size == FakeFrontEnd.ringSize)
        #expect(g.kicks == UInt64(kicks) && g.calls == UInt64(calls) && g.calls == UInt64(callsWanted) && g.suppressed == UInt64(suppressedWanted))
        #expect(g.eventIdx && g.pastAvailEvent == UInt64(past) && g.chains == 7 && g.inFlight == 0 && g.held.isEmpty, "\(g)")
        for i in 0..<3 {
            #expect((fe.mem + 0x4200 + i).load(as: UInt8.self) == VirtioBlk.Status.unsupported.rawValue)
        }
        try stop()
    }
}

extension DescriptorChainTests {
    @Test func aRecordingWalkListsEachDescriptorAsTheDriverWroteItIndirectTableIncluded() throws {
        desc(0, 0x800, 48, Virtq.descIndirect, 0)
        desc(0, 0x400, 16, Virtq.descNext, 1, table: 0x800)
        desc(1, 0x1f00, 0x200, Virtq.descNext | Virtq.descWrite, 2, table: 0x800)   // crosses a region end: one descriptor still
        desc(2, 0x3ff, 1, Virtq.descWrite, 0, table: 0x800)
        let c = try DescriptorChain.walk(memory: memory, table: UnsafeRawPointer(mem.baseAddress!), size: 8, head: 0, indirect: true, record: true).get()
        #expect(c.segments == [
            VirtqSegment(address: 0x800, length: 48, writable: false, isIndirectTable: true),
            VirtqSegment(address: 0x400, length: 16, writable: false, inIndirectTable: true),
            VirtqSegment(address: 0x1f00, length: 0x200, writable: true, inIndirectTable: true),
            VirtqSegment(address: 0x3ff, length: 1, writable: true, inIndirectTable: true),
        ])
        #expect(c.writable.count == 3, "the walk's pieces split at the region end; the record keeps the driver's descriptors")
        #expect(try walk().get().segments == nil, "an unwatched walk records nothing")
    }
}

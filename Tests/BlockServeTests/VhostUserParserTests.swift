import Testing
@testable import BlockServe

/// The pure vhost-user decoding, the descriptor walk over memory the test owns, and the
/// virtio-blk framing: well-formed input decodes, malformed input is a sentence, never a trap.
struct VhostUserParserTests {
    func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
    func header(_ req: UInt32, flags: UInt32 = 1, size: UInt32) -> [UInt8] { le(UInt64(req), 4) + le(UInt64(flags), 4) + le(UInt64(size), 4) }
    func parse(_ req: UInt32, _ payload: [UInt8], flags: UInt32 = 1) -> Result<VhostUserMessage, VhostUserParseError> {
        let h = header(req, flags: flags, size: UInt32(payload.count)).withUnsafeBytes { VhostUserParser.header($0) }
        guard case let .success(hh) = h else { return .failure(VhostUserParseError("header")) }
        return payload.withUnsafeBytes { VhostUserParser.message(hh, $0) }
    }

    @Test func headersWithAWrongVersionTheReplyBitOrAHugePayloadAreRefused() {
        for (flags, size, word) in [(UInt32(2), UInt32(0), "version"), (5, 0, "reply flag"), (1, 1 << 20, "payload of 1048576")] {
            let r = header(1, flags: flags, size: size).withUnsafeBytes { VhostUserParser.header($0) }
            guard case let .failure(e) = r else { Issue.record("accepted flags \(flags) size \(size)"); continue }
            #expect(e.description.contains(word), "\(e)")
        }
        let ok = header(8, flags: 9, size: 8).withUnsafeBytes { VhostUserParser.header($0) }
        #expect((try? ok.get())?.needsReply == true)
    }

    @Test func memTableDecodesEachRegionAndRefusesBadCounts() throws {
        var p = le(2, 4) + le(0, 4)
        p += le(0, 8) + le(0xa0000, 8) + le(0x7f00_0000_0000, 8) + le(0, 8)
        p += le(0xc0000, 8) + le(0xff40000, 8) + le(0x7f00_000c_0000, 8) + le(0xc0000, 8)
        #expect(try parse(5, p).get() == .setMemTable([
            VhostUserMemoryRegion(guestPhysical: 0, size: 0xa0000, userAddress: 0x7f00_0000_0000, mmapOffset: 0),
            VhostUserMemoryRegion(guestPhysical: 0xc0000, size: 0xff40000, userAddress: 0x7f00_000c_0000, mmapOffset: 0xc0000),
        ]))
        for count in [0, 9] {
            guard case let .failure(e) = parse(5, le(UInt64(count), 4) + le(0, 4) + [UInt8](repeating: 1, count: 32 * 9)) else { Issue.record("count \(count) accepted"); continue }
            #expect(e.description.contains("\(count) regions"))
        }
        // Two regions announced, one present.
        guard case let .failure(e) = parse(5, Array(p.prefix(8 + 32))) else { Issue.record("short table accepted"); return }
        #expect(e.description.contains("SET_MEM_TABLE payload of 40 bytes, need 72"))
        // A region that wraps the address space.
        let wrap = le(1, 4) + le(0, 4) + le(UInt64.max - 10, 8) + le(4096, 8) + le(0, 8) + le(0, 8)
        guard case let .failure(w) = parse(5, wrap) else { Issue.record("wrapping region accepted"); return }
        #expect(w.description.contains("wraps"))
    }

    @Test func vringMessagesAndConfigDecode() throws {
        #expect(try parse(8, le(1, 4) + le(256, 4)).get() == .setVringNum(index: 1, num: 256))
        #expect(try parse(11, le(0, 4) + le(0, 4)).get() == .getVringBase(index: 0))
        #expect(try parse(12, le(1 | (1 << 8), 8)).get() == .setVringFd(.setVringKick, index: 1, hasFd: false))
        #expect(try parse(13, le(0, 8)).get() == .setVringFd(.setVringCall, index: 0, hasFd: true))
        let addr = le(1, 4) + le(0, 4) + le(0x1000, 8) + le(0x3000, 8) + le(0x2000, 8) + le(0, 8)
        #expect(try parse(9, addr).get() == .setVringAddr(VhostUserVringAddress(index: 1, flags: 0, descriptor: 0x1000, used: 0x3000, available: 0x2000)))
        #expect(try parse(24, le(0, 4) + le(60, 4) + le(0, 4) + [UInt8](repeating: 0, count: 60)).get() == .getConfig(offset: 0, size: 60, flags: 0))
        guard case let .failure(e) = parse(24, le(200, 4) + le(100, 4) + le(0, 4)) else { Issue.record("config past 256 accepted"); return }
        #expect(e.description.contains("GET_CONFIG of 100 bytes at offset 200"))
        #expect(try parse(999, []).get() == .unsupported(code: 999))
        guard case let .failure(s) = parse(2, [1, 2, 3]) else { Issue.record("short SET_FEATURES accepted"); return }
        #expect(s.description == "SET_FEATURES payload of 3 bytes, need 8")
    }

    @Test func configSpaceHasTheFieldsLinuxReadsAtTheirOffsets() {
        let d = VirtioBlkDevice(size: (64 << 20) + 100, writable: true, queues: 2)
        let c = d.config(count: 60)
        func at(_ o: Int, _ n: Int) -> UInt64 { (0..<n).reduce(UInt64(0)) { $0 | UInt64(c[o + $1]) << (8 * UInt64($1)) } }
        // struct virtio_blk_config (virtio 1.2, 5.2.4): capacity at 0, seg_max at 12,
        // blk_size at 20, num_queues at 34, max_discard_sectors at 36, max_discard_seg at 40,
        // max_write_zeroes_sectors at 48, write_zeroes_may_unmap at 56.
        #expect(at(0, 8) == 131072)   // whole 512-byte sectors; the 100-byte tail is not offered
        #expect(at(12, 4) == 126)
        #expect(at(20, 4) == 512)
        #expect(at(34, 2) == 2)
        #expect(at(36, 4) > 0 && at(40, 4) > 0 && at(48, 4) > 0 && at(56, 1) == 1)
        let ro = VirtioBlkDevice(size: 1 << 20, writable: false, queues: 1)
        #expect(ro.features & VhostUser.Feature.blkRo != 0 && ro.features & VhostUser.Feature.blkDiscard == 0)
        #expect(ro.config(count: 60)[36..<60].allSatisfy { $0 == 0 })
    }
}

/// Descriptor chains walked over two regions of memory the test owns.
final class DescriptorChainTests {
    let mem = UnsafeMutableRawBufferPointer.allocate(byteCount: 0x4000, alignment: 4096)
    var memory: GuestMemory {
        GuestMemory(regions: [(guestPhysical: 0, userAddress: 0x1000_0000, buffer: UnsafeMutableRawBufferPointer(rebasing: mem[0..<0x2000])),
                              (guestPhysical: 0x2000, userAddress: 0x1000_2000, buffer: UnsafeMutableRawBufferPointer(rebasing: mem[0x2000...]))])
    }
    init() { mem.initializeMemory(as: UInt8.self, repeating: 0) }
    deinit { mem.deallocate() }

    func desc(_ i: Int, _ addr: UInt64, _ len: UInt32, _ flags: UInt16, _ next: UInt16, table: Int = 0) {
        let p = mem.baseAddress! + table + 16 * i
        p.storeBytes(of: addr.littleEndian, as: UInt64.self)
        p.storeBytes(of: len.littleEndian, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: flags.littleEndian, toByteOffset: 12, as: UInt16.self)
        p.storeBytes(of: next.littleEndian, toByteOffset: 14, as: UInt16.self)
    }
    func walk(_ head: UInt16 = 0, indirect: Bool = true) -> Result<DescriptorChain, VirtqChainError> {
        DescriptorChain.walk(memory: memory, table: UnsafeRawPointer(mem.baseAddress!), size: 8, head: head, indirect: indirect)
    }

    @Test func aChainGivesReadableThenWritablePiecesSplitAtRegionEnds() throws {
        desc(0, 0x400, 16, Virtq.descNext, 1)
        desc(1, 0x1f00, 0x200, Virtq.descNext | Virtq.descWrite, 2)   // crosses 0x2000
        desc(2, 0x3ff, 1, Virtq.descWrite, 0)
        let c = try walk().get()
        #expect(c.readable.count == 1 && c.readableBytes == 16)
        #expect(c.writable.map(\.length) == [0x100, 0x100, 1])
        #expect(c.writable[1].guestPhysical == 0x2000 && c.writable[1].host == mem.baseAddress! + 0x2000)
        guard case let .request(r) = VirtioBlkRequest.parse(c) else { Issue.record("not a request"); return }
        #expect(r.dataBytes == 0x200 && r.status == mem.baseAddress! + 0x3ff)
    }

    @Test func loopsOutsideAddressesAndOrderViolationsAreRefused() {
        desc(0, 0x400, 16, Virtq.descNext, 1)
        desc(1, 0x500, 16, Virtq.descNext, 0)
        #expect(failure(walk()).contains("loops"))
        desc(1, 0x3f00, 0x200, Virtq.descWrite, 0)   // runs past the second region
        #expect(failure(walk()).contains("outside guest memory"))
        desc(0, 0x400, 16, Virtq.descWrite | Virtq.descNext, 1)
        desc(1, 0x500, 16, 0, 0)
        #expect(failure(walk()).contains("readable buffer after a device-writable"))
        desc(0, 0x400, 16, Virtq.descNext, 9)
        #expect(failure(walk()).contains("past its table"))
        #expect(failure(walk(8)).contains("head 8 is past"))
    }

    @Test func indirectTablesNeedTheFeatureAndDoNotNest() {
        desc(0, 0x800, 32, Virtq.descIndirect, 0)
        desc(0, 0x400, 16, Virtq.descNext, 1, table: 0x800)
        desc(1, 0x3ff, 1, Virtq.descWrite, 0, table: 0x800)
        #expect((try? walk().get())?.descriptors == 3)
        #expect(failure(walk(indirect: false)).contains("not negotiated"))
        desc(1, 0x900, 16, Virtq.descIndirect, 0, table: 0x800)
        #expect(failure(walk()).contains("another INDIRECT"))
        desc(0, 0x800, 24, Virtq.descIndirect, 0)
        #expect(failure(walk()).contains("multiple of 16"))
    }

    @Test func framingWithoutStatusOrWithAShortHeaderIsNotServed() throws {
        desc(0, 0x400, 16, 0, 0)
        guard case .unanswerable = VirtioBlkRequest.parse(try walk().get()) else { Issue.record("no status byte, yet answerable"); return }
        desc(0, 0x400, 8, Virtq.descNext, 1)
        desc(1, 0x3ff, 1, Virtq.descWrite, 0)
        guard case let .reject(_, st, why) = VirtioBlkRequest.parse(try walk().get()) else { Issue.record("short header served"); return }
        #expect(st == .ioError && why.contains("8 bytes"))
        // A header split over two descriptors is read across them.
        desc(0, 0x400, 4, Virtq.descNext, 1)
        desc(1, 0x600, 12, Virtq.descNext, 2)
        desc(2, 0x3ff, 1, Virtq.descWrite, 0)
        (mem.baseAddress! + 0x400).storeBytes(of: UInt32(4).littleEndian, as: UInt32.self)
        (mem.baseAddress! + 0x604).storeBytes(of: UInt64(77).littleEndian, as: UInt64.self)
        guard case let .request(r) = VirtioBlkRequest.parse(try walk().get()) else { Issue.record("split header refused"); return }
        #expect(r.type == 4 && r.sector == 77)
    }

    func failure(_ r: Result<DescriptorChain, VirtqChainError>) -> String {
        if case let .failure(e) = r { return e.description }
        return "walked"
    }
}

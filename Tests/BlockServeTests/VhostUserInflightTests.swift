import Foundation
import Testing
@testable import BlockServe
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// INFLIGHT_SHMFD end to end: `blockscope serve --vhost-user` as a child process, SIGKILLed
/// while it holds guest requests, then started again; the front end (``FakeFrontEnd``'s
/// memory, rings and eventfds, as a VMM keeps them across a back-end crash) hands the same
/// inflight region back. qemu-io reads the image afterwards (the oracle for the bytes).
final class VhostUserInflightTests {
    let dir: String
    let image: String
    var socketPath: String { dir + "/vu.sock" }
    /// Each request writes this many 256 KiB buffers (30 MiB: long enough to be caught in flight).
    static let segments = 120
    static let segmentBytes = 256 << 10

    init() throws {
        dir = try TestSupport.makeTempDir("vhost-inflight")
        image = dir + "/disk.raw"
        _ = try TestSupport.qemuImg(["create", "-q", "-f", "raw", image, "64M"])
    }

    deinit { TestSupport.removeTempDir(dir) }

    func serve(_ name: String) throws -> BackgroundProcess {
        unlink(socketPath)
        let p = try BackgroundProcess(TestSupport.blockscopeBinary, ["serve", image, "--write", "--vhost-user", socketPath],
                                      stdoutPath: dir + "/\(name).out", stderrPath: dir + "/\(name).log")
        guard Progress.wait(interval: 0.02, child: p, { FileManager.default.fileExists(atPath: socketPath) }) else {
            throw TestFailure("blockscope serve did not listen: \(log(name))")
        }
        return p
    }

    /// A front end connected to the server (which binds the socket just before it listens:
    /// a refused connection is tried again).
    func connect() throws -> FakeFrontEnd {
        var fe: FakeFrontEnd? = nil
        _ = Progress.wait(timeout: 60, interval: 0.02) { fe = try? FakeFrontEnd(path: socketPath); return fe != nil }
        guard let fe else { return try FakeFrontEnd(path: socketPath) }
        return fe
    }

    func log(_ name: String) -> String {
        ((try? String(contentsOfFile: dir + "/\(name).log", encoding: .utf8)) ?? "") + ((try? String(contentsOfFile: dir + "/\(name).out", encoding: .utf8)) ?? "")
    }

    @Test func aServerKilledMidRequestIsRestartedOnTheSameRegionAndEachRequestCompletesExactlyOnce() throws {
        let first = try serve("first")
        defer { if !first.hasExited { first.kill(SIGKILL); _ = first.wait() } }
        let fe = try connect()
        let (region, regionFD, regionBytes) = try fe.getInflight(queueSize: FakeFrontEnd.ringSize)
        defer { munmap(region, regionBytes); close(regionFD) }
        try fe.setUp(inflight: (regionFD, UInt64(regionBytes)), base: 0, socket: fe)
        // Two OUT requests of 30 MiB each (indirect tables of 122 descriptors), 0xa1 at 0 and 0xb2 at 32 MiB.
        memset(fe.mem + 0x10000, 0xa1, Self.segmentBytes)
        memset(fe.mem + 0x50000, 0xb2, Self.segmentBytes)
        fe.submitIndirectWrite(slot: 0, header: 0x4000, table: 0x5000, buffer: 0x10000, segments: Self.segments, segmentBytes: Self.segmentBytes,
                               sector: 0, status: 0x4100)
        fe.submitIndirectWrite(slot: 1, header: 0x4020, table: 0x6000, buffer: 0x50000, segments: Self.segments, segmentBytes: Self.segmentBytes,
                               sector: 65536, status: 0x4101)
        (fe.mem + 0x4100).storeBytes(of: UInt8(0xff), as: UInt8.self)
        (fe.mem + 0x4101).storeBytes(of: UInt8(0xff), as: UInt8.self)
        fe.publishAvail(2)
        // Kill the server the moment the region shows a request taken and not yet used.
        func marked() -> [Int] { (0..<FakeFrontEnd.ringSize).filter { (region + 16 + 16 * $0).load(as: UInt8.self) == 1 } }
        let caught = Progress.wait(timeout: 60, interval: 0) { !marked().isEmpty && fe.usedIndex < 2 }
        first.kill(SIGKILL)
        _ = first.wait()
        #expect(caught, "no request was seen in flight: \(log("first"))")
        let inFlight = marked()
        let usedAtKill = fe.usedIndex
        #expect(!inFlight.isEmpty && usedAtKill < 2, "marks \(inFlight), used \(usedAtKill)")

        // A new back end; the VMM reconnects with its memory, rings, eventfds and the region,
        // and (as QEMU does after a back end died) sets the ring base to its used index.
        let second = try serve("second")
        defer { if !second.hasExited { second.kill(SIGKILL); _ = second.wait() } }
        let again = try connect()
        try again.setUp(inflight: (regionFD, UInt64(regionBytes)), base: usedAtKill, socket: fe)
        #expect(fe.waitUsed(2), "\(log("second"))")
        // The new back end serves again the requests still marked (at most those marked at the
        // kill; a request the first had not yet marked is still in the avail ring and is taken
        // as a new one), so each completes exactly once: the used heads below say so.
        #expect(Progress.wait(timeout: 60) { self.log("second").contains("serving again ") }, "\(log("second"))")
        let servedAgain = log("second").components(separatedBy: "serving again ").dropFirst().first?.split(separator: " ").first.flatMap { Int($0) } ?? 0
        #expect(servedAgain >= 1 && servedAgain <= inFlight.count, "served again \(servedAgain), marked at the kill \(inFlight)")
        let heads = (0..<2).map { fe.used($0).head }
        #expect(Set(heads) == [0, 1], "used heads \(heads)")
        #expect((fe.mem + 0x4100).load(as: UInt8.self) == 0 && (fe.mem + 0x4101).load(as: UInt8.self) == 0)
        // SIGTERM drains: nothing more enters the used ring, and the region holds no mark.
        second.kill(SIGTERM)
        #expect(second.wait() == 0, "\(log("second"))")
        #expect(fe.usedIndex == 2 && marked().isEmpty, "used \(fe.usedIndex), marks \(marked())")
        let r = try TestSupport.qemuIo(image, format: "raw", ["read -P 0xa1 0 30M", "read -P 0xb2 32M 30M"])
        #expect(r.status == 0 && !r.stdoutText.contains("Pattern verification failed"), "\(r.stdoutText)")
    }

    @Test func badInflightMessagesAreOneLogLineEachAndTheConnectionGoesOn() throws {
        let server = try serve("bad")
        defer { if !server.hasExited { server.kill(SIGKILL); _ = server.wait() } }
        let fe = try connect()
        fe.send(.getProtocolFeatures)
        #expect((fe.u64Reply() ?? 0) & VhostUser.ProtocolFeature.inflightShmfd != 0)
        fe.send(.setProtocolFeatures, fe.le(VhostUser.ProtocolFeature.offered, 8))
        // A queue size that is not a power of two: a reply of size 0 (no region), no descriptor.
        fe.send(.getInflightFd, fe.le(0, 8) + fe.le(0, 8) + fe.le(1, 2) + fe.le(100, 2) + fe.le(0, 4))
        let r = fe.reply()
        #expect(r?.request == VhostUser.Request.getInflightFd.rawValue && r?.payload.count == 24 && r?.payload[0..<8].allSatisfy { $0 == 0 } == true)
        // SET_INFLIGHT_FD without a descriptor, then with a region too small for its queues.
        fe.send(.setInflightFd, fe.le(4096, 8) + fe.le(0, 8) + fe.le(1, 2) + fe.le(8, 2) + fe.le(0, 4), needReply: true)
        #expect(fe.u64Reply() == 1)
        fe.send(.setInflightFd, fe.le(64, 8) + fe.le(0, 8) + fe.le(4, 2) + fe.le(256, 2) + fe.le(0, 4), fds: [fe.memFD], needReply: true)
        #expect(fe.u64Reply() == 1)
        // The connection still works: a read is served.
        try fe.setUp()
        fe.header(at: 0x4000, type: 0, sector: 0)
        fe.submit([(0x4000, 16, false), (0x10000, 512, true), (0x4100, 1, true)])
        #expect(fe.waitUsed(1))
        // A region asked for while the ring runs: none (the ring keeps writing where it does).
        fe.send(.getInflightFd, fe.le(0, 8) + fe.le(0, 8) + fe.le(1, 2) + fe.le(8, 2) + fe.le(0, 4))
        let running = fe.reply()
        #expect(running?.payload.count == 24 && running?.payload[0..<8].allSatisfy { $0 == 0 } == true)
        fe.header(at: 0x4000, type: 0, sector: 1)
        fe.submit([(0x4000, 16, false), (0x10000, 512, true), (0x4101, 1, true)])
        #expect(fe.waitUsed(2))
        let text = log("bad")
        #expect(text.contains("GET_INFLIGHT_FD with queue size 100"), "\(text)")
        #expect(text.contains("SET_INFLIGHT_FD without a descriptor"), "\(text)")
        #expect(text.contains("SET_INFLIGHT_FD of 64 bytes for 4 queues of 256"), "\(text)")
        #expect(text.contains("GET_INFLIGHT_FD while rings run: no new region"), "\(text)")
        #expect(!text.contains("disconnected"), "\(text)")
    }
}

extension FakeFrontEnd {

    /// GET_INFLIGHT_FD for one queue of `queueSize`: the region mapped, its descriptor and size.
    func getInflight(queueSize: Int) throws -> (UnsafeMutableRawPointer, Int32, Int) {
        send(.getInflightFd, le(0, 8) + le(0, 8) + le(1, 2) + le(UInt64(queueSize), 2) + le(0, 4))
        var buf = [UInt8](repeating: 0, count: 12 + 24)
        let control = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { control.deallocate() }
        let n: Int = buf.withUnsafeMutableBytes { b in
            var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
            return withUnsafeMutablePointer(to: &iov) { iovp in
                var msg = msghdr()
                msg.msg_iov = iovp
                msg.msg_iovlen = 1
                msg.msg_control = control
                msg.msg_controllen = 64
                return recvmsg(fd, &msg, Int32(MSG_WAITALL))
            }
        }
        guard n == 36, buf[8] == 24 else { throw TestFailure("GET_INFLIGHT_FD reply of \(n) bytes") }
        let regionFD = control.load(fromByteOffset: 16, as: Int32.self)
        let size = buf[12..<20].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard size >= 16 + 16 * queueSize, let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, regionFD, 0), p != MAP_FAILED else {
            throw TestFailure("GET_INFLIGHT_FD gave \(size) bytes that cannot be mapped")
        }
        return (p, regionFD, size)
    }

    /// The setup QEMU performs with INFLIGHT_SHMFD, on this socket but with the memory, the
    /// eventfds and the ring of `socket`'s front end (the same one, or the one a VMM kept
    /// when its back end died): features, SET_INFLIGHT_FD, memory table, ring with `base`.
    func setUp(inflight: (fd: Int32, size: UInt64), base: UInt16, socket keeper: FakeFrontEnd) throws {
        send(.getFeatures)
        guard let offered = u64Reply() else { throw TestFailure("no GET_FEATURES reply") }
        send(.setFeatures, le(offered, 8))
        send(.getProtocolFeatures)
        guard let pf = u64Reply() else { throw TestFailure("no GET_PROTOCOL_FEATURES reply") }
        send(.setProtocolFeatures, le(pf, 8))
        send(.setOwner)
        send(.setInflightFd, le(inflight.size, 8) + le(0, 8) + le(1, 2) + le(UInt64(Self.ringSize), 2) + le(0, 4), fds: [inflight.fd], needReply: true)
        guard u64Reply() == 0 else { throw TestFailure("SET_INFLIGHT_FD not acknowledged") }
        send(.setMemTable, le(1, 4) + le(0, 4) + le(0, 8) + le(UInt64(Self.memSize), 8) + le(Self.userBase, 8) + le(0, 8),
             fds: [keeper.memFD], needReply: true)
        guard u64Reply() == 0 else { throw TestFailure("SET_MEM_TABLE not acknowledged") }
        send(.setVringNum, le(0, 4) + le(UInt64(Self.ringSize), 4))
        send(.setVringBase, le(0, 4) + le(UInt64(base), 4))
        send(.setVringAddr, le(0, 4) + le(0, 4) + le(Self.userBase + UInt64(Self.descAt), 8) + le(Self.userBase + UInt64(Self.usedAt), 8)
             + le(Self.userBase + UInt64(Self.availAt), 8) + le(0, 8))
        send(.setVringKick, le(0, 8), fds: [keeper.kick[0]])
        send(.setVringCall, le(0, 8), fds: [keeper.call[1]])
        send(.setVringEnable, le(0, 4) + le(1, 4), needReply: true)
        guard u64Reply() == 0 else { throw TestFailure("SET_VRING_ENABLE not acknowledged") }
    }

    /// Puts an OUT request in ring descriptor `slot` through an indirect table at `table`:
    /// the header at `header`, `segments` buffers all reading `buffer` (`segmentBytes` each),
    /// the status byte at `status`; and makes it available (not yet published: see
    /// ``publishAvail(_:)``).
    func submitIndirectWrite(slot: Int, header at: Int, table: Int, buffer: Int, segments: Int, segmentBytes: Int, sector: UInt64, status: Int) {
        self.header(at: at, type: 1, sector: sector)
        let entries: [(UInt64, UInt32, Bool)] = [(UInt64(at), 16, false)] + Array(repeating: (UInt64(buffer), UInt32(segmentBytes), false), count: segments)
            + [(UInt64(status), 1, true)]
        for (i, e) in entries.enumerated() {
            let d = mem + table + 16 * i
            d.storeBytes(of: e.0, as: UInt64.self)
            d.storeBytes(of: e.1, toByteOffset: 8, as: UInt32.self)
            d.storeBytes(of: UInt16((i + 1 < entries.count ? 1 : 0) | (e.2 ? 2 : 0)), toByteOffset: 12, as: UInt16.self)
            d.storeBytes(of: UInt16(i + 1), toByteOffset: 14, as: UInt16.self)
        }
        let d = mem + Self.descAt + 16 * slot
        d.storeBytes(of: UInt64(table), as: UInt64.self)
        d.storeBytes(of: UInt32(16 * entries.count), toByteOffset: 8, as: UInt32.self)
        d.storeBytes(of: UInt16(4), toByteOffset: 12, as: UInt16.self)
        d.storeBytes(of: UInt16(0), toByteOffset: 14, as: UInt16.self)
        (mem + Self.availAt + 4 + 2 * (Int(availIdx) % Self.ringSize)).storeBytes(of: UInt16(slot), as: UInt16.self)
        availIdx &+= 1
    }

    /// Publishes the available index, asks for an interrupt at `used` entries and kicks.
    func publishAvail(_ used: UInt16) {
        (mem + Self.availAt + 4 + 2 * Self.ringSize).storeBytes(of: used &- 1, as: UInt16.self)
        (mem + Self.availAt + 2).storeBytes(of: availIdx, as: UInt16.self)
        var one: UInt64 = 1
        _ = write(kick[1], &one, 8)
    }
}

/// The inflight region's decoding and the recovery rules of vhost-user.rst ("Inflight I/O
/// tracking", split virtqueue), on regions laid out by hand from the spec's structures.
struct VhostUserInflightRegionTests {
    func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

    @Test func getAndSetInflightFdDecodeTheirTwentyBytesAndRefuseShorterOnes() throws {
        let p = le(8192, 8) + le(4096, 8) + le(2, 2) + le(128, 2) + le(0, 4)
        let want = VhostUserInflightDescription(mmapSize: 8192, mmapOffset: 4096, numQueues: 2, queueSize: 128)
        for (code, wire) in [(UInt32(31), p), (32, Array(p.prefix(20)))] {
            let h = VhostUserHeader(request: code, flags: 1, size: UInt32(wire.count))
            let m = try wire.withUnsafeBytes { try VhostUserParser.message(h, $0).get() }
            #expect(m == (code == 31 ? .getInflightFd(want) : .setInflightFd(want)))
        }
        let short = VhostUserHeader(request: 32, flags: 1, size: 19)
        let r = Array(p.prefix(19)).withUnsafeBytes { VhostUserParser.message(short, $0) }
        guard case let .failure(e) = r else { Issue.record("a 19-byte SET_INFLIGHT_FD decoded"); return }
        #expect(e.description == "SET_INFLIGHT_FD payload of 19 bytes, need 20")
        // The reply QEMU checks: 24 bytes, size and offset first.
        #expect(VhostUserParser.reply(31, inflight: want) == le(31, 4) + le(5, 4) + le(24, 4) + p)
    }

    @Test func recoveryFinishesTheLastBatchAndResubmitsTheRestInCounterOrder() {
        // 8 entries: header {features, version 1, desc_num 8, last_batch_head 5, used_idx 3}.
        var bytes = le(0, 8) + le(1, 2) + le(8, 2) + le(5, 2) + le(3, 2)
        var entries = [[UInt8]](repeating: [UInt8](repeating: 0, count: 16), count: 8)
        func set(_ h: Int, inflight: UInt8, next: UInt16, counter: UInt64) {
            entries[h] = [inflight] + [UInt8](repeating: 0, count: 5) + le(UInt64(next), 2) + le(counter, 8)
        }
        // The batch 5 -> 2 reached the used ring (its index went 3 -> 5) before the marks were cleared.
        set(5, inflight: 1, next: 2, counter: 6)
        set(2, inflight: 1, next: 0, counter: 3)
        // Still in flight: 7 (taken after 1), 1.
        set(7, inflight: 1, next: 0, counter: 9)
        set(1, inflight: 1, next: 0, counter: 4)
        bytes += entries.flatMap { $0 }
        bytes.withUnsafeMutableBytes { b in
            var q = InflightQueue(base: b.baseAddress!, size: 8)
            #expect(q.recover(ringUsed: 5) == [1, 7])
            #expect(b[16 + 16 * 5] == 0 && b[16 + 16 * 2] == 0)
            #expect(UInt16(b[14]) | UInt16(b[15]) << 8 == 5)    // used_idx caught up
            #expect(q.counter == 10)
        }
        // A used_idx already equal to the ring's: no batch is undone, every mark stays.
        bytes[14] = 5
        bytes[16 + 16 * 5] = 1
        bytes.withUnsafeMutableBytes { b in
            var q = InflightQueue(base: b.baseAddress!, size: 8)
            #expect(q.recover(ringUsed: 5) == [1, 5, 7])
        }
    }
}

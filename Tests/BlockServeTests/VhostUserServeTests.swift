import BlockCore
import Foundation
import Synchronization
import Testing
@testable import BlockServe
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `VhostUserServer` in this process, driven from outside by ``FakeFrontEnd`` over its Unix
/// socket. qemu-io prepares and then reads the image (the oracle); the guest's bytes are
/// read from the shared memory the server wrote in place.
final class VhostUserServeTests {
    let dir: String
    let image: String
    var server: VhostUserServer!
    var disk: (any DiskFile)!
    var thread: Thread!
    /// Log lines from the server's thread.
    final class Lines: Sendable { let lines = Mutex<[String]>([]) }
    let lines = Lines()
    let done = DispatchSemaphore(value: 0)
    var socketPath: String { dir + "/vu.sock" }

    init() throws {
        dir = try TestSupport.makeTempDir("vhost")
        image = dir + "/disk.raw"
        _ = try TestSupport.qemuImg(["create", "-q", "-f", "raw", image, "1M"])
        _ = try TestSupport.qemuIo(image, format: "raw", ["write -P 0x5a 64k 64k"])
    }

    deinit {
        server?.stop()
        if thread != nil { done.wait() }
        try? disk?.close()
        TestSupport.removeTempDir(dir)
    }

    /// Set before ``start(writable:)`` to watch the queues as the TUI does.
    var registry: InFlightRegistry? = nil

    /// Starts the server on the image (`polling`: the virtqueues' poll window, the default's
    /// unless a test needs another).
    func start(writable: Bool = true, polling: VhostUserPolling = .standard) throws {
        var o = OpenOptions(writable: writable)
        o.engine = .uring
        disk = try openDisk(image, options: o)
        let box = lines
        server = try VhostUserServer(export: VhostUserBlkExport(disk: disk, queues: 1, inFlightRegistry: registry, polling: polling), path: socketPath,
                                     log: { l in box.lines.withLock { $0.append(l) } })
        try server.listen()
        let s = server!, d = done
        thread = Thread { try? s.run(handleSignals: false); d.signal() }
        thread.start()
    }

    func stop() throws {
        server.stop()
        done.wait()
        thread = nil
        try disk.flush()
        try disk.close()
        disk = nil
    }

    var log: String { lines.lines.withLock { $0.joined(separator: "\n") } }

    @Test func requestsMoveBytesInPlaceAndQemuIoSeesTheWrites() throws {
        try start()
        let fe = try FakeFrontEnd(path: socketPath)
        try fe.setUp()
        // IN: 4 KiB at sector 128 (64 KiB, where qemu-io wrote 0x5a), split over two buffers.
        fe.header(at: 0x4000, type: 0, sector: 128)
        fe.submit([(0x4000, 16, false), (0x10000, 1024, true), (0x20000, 3072, true), (0x4100, 1, true)])
        #expect(fe.waitUsed(1))
        #expect((fe.mem + 0x4100).load(as: UInt8.self) == 0)
        #expect(fe.used(0).len == 4097)
        #expect(UnsafeRawBufferPointer(start: fe.mem + 0x10000, count: 1024).allSatisfy { $0 == 0x5a })
        #expect(UnsafeRawBufferPointer(start: fe.mem + 0x20000, count: 3072).allSatisfy { $0 == 0x5a })
        // OUT: 8 KiB of 0xc3 at sector 512 (256 KiB), then FLUSH, then GET_ID.
        memset(fe.mem + 0x30000, 0xc3, 8192)
        fe.header(at: 0x4200, type: 1, sector: 512)
        fe.submit([(0x4200, 16, false), (0x30000, 8192, false), (0x4101, 1, true)])
        fe.header(at: 0x4300, type: 4, sector: 0)
        fe.submit([(0x4300, 16, false), (0x4102, 1, true)])
        #expect(fe.waitUsed(3))
        #expect((fe.mem + 0x4101).load(as: UInt8.self) == 0 && (fe.mem + 0x4102).load(as: UInt8.self) == 0)
        fe.header(at: 0x4400, type: 8, sector: 0)
        fe.submit([(0x4400, 16, false), (0x40000, 20, true), (0x4103, 1, true)])
        #expect(fe.waitUsed(4))
        #expect(String(decoding: UnsafeRawBufferPointer(start: fe.mem + 0x40000, count: 10), as: UTF8.self) == "blockscope")
        // Past the end: IOERR; an unknown type: UNSUPP; the connection goes on.
        fe.header(at: 0x4500, type: 0, sector: 2047)
        fe.submit([(0x4500, 16, false), (0x50000, 1024, true), (0x4104, 1, true)])
        fe.header(at: 0x4600, type: 99, sector: 0)
        fe.submit([(0x4600, 16, false), (0x4105, 1, true)])
        #expect(fe.waitUsed(6))
        #expect((fe.mem + 0x4104).load(as: UInt8.self) == VirtioBlk.Status.ioError.rawValue)
        #expect((fe.mem + 0x4105).load(as: UInt8.self) == VirtioBlk.Status.unsupported.rawValue)
        // GET_VRING_BASE stops the ring and says where the driver left it.
        fe.send(.getVringBase, fe.le(0, 4) + fe.le(0, 4))
        let base = fe.reply()
        #expect(base?.payload == fe.le(0, 4) + fe.le(6, 4))
        try stop()
        #expect(log.contains("runs past the disk"), "\(log)")
        let r = try TestSupport.qemuIo(image, format: "raw", ["read -P 0xc3 256k 8k", "read -P 0x5a 64k 64k"])
        #expect(r.status == 0 && !r.stdoutText.contains("Pattern verification failed"), "\(r.stdoutText)")
    }

    @Test func underARegistryEachVirtqueueIsAServedQueueWithItsRingPublished() throws {
        registry = InFlightRegistry()
        try start()
        let fe = try FakeFrontEnd(path: socketPath)
        try fe.setUp()
        for i in 0..<5 {
            fe.header(at: 0x4000 + 32 * i, type: 0, sector: UInt64(128 + i))
            fe.submit([(UInt64(0x4000 + 32 * i), 16, false), (UInt64(0x10000 + 512 * i), 512, true), (UInt64(0x4100 + i), 1, true)])
            #expect(fe.waitUsed(UInt16(i + 1)))
        }
        // The ring is published right after the call that woke the front end: wait for it.
        let usedSeen = (fe.mem + FakeFrontEnd.usedAt + 2).load(as: UInt16.self)
        #expect(Progress.wait(timeout: 60) { self.registry!.queues().first { $0.name == "vhost vq0" }?.ring?.usedIndex == usedSeen })
        let q = registry!.queues().first { $0.name == "vhost vq0" }
        #expect(q?.clientTagName == "head" && q?.open == true)
        #expect(q?.figures.completed == 5 && q?.figures.reads == 5)
        // What the front end sees in its own ring memory, and the calls it received.
        #expect(q?.ring?.usedIndex == usedSeen && q?.ring?.availIndex == fe.availIdx)
        #expect(q?.ring?.chains == 5 && q?.ring?.inFlight == 0 && q?.ring?.calls == 5 && q?.ring?.kicks == 5)
        #expect(registry!.snapshot().isEmpty, "requests left in the registry after their used entries")
        try stop()
    }

    @Test func aBrokenChainOrMessageEndsItsConnectionAndTheServerServesTheNext() throws {
        try start()
        // A descriptor far outside guest memory.
        let fe = try FakeFrontEnd(path: socketPath)
        try fe.setUp()
        fe.header(at: 0x4000, type: 0, sector: 0)
        fe.submit([(0x4000, 16, false), (0x7_0000_0000, 512, true), (0x4100, 1, true)])
        #expect(fe.closedByServer())
        #expect(Progress.wait(timeout: 60) { self.log.contains("disconnected: queue 0: buffer of head 0 at guest 0x700000000 (512 bytes) lies outside guest memory") }, "\(log)")
        // A header with protocol version 2.
        let bad = try FakeFrontEnd(path: socketPath)
        bad.sendRaw([1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
        #expect(bad.closedByServer())
        #expect(Progress.wait(timeout: 60) { self.log.contains("protocol error: message 1 has protocol version 2, not 1") }, "\(log)")
        // A ring placed outside guest memory.
        let off = try FakeFrontEnd(path: socketPath)
        off.send(.setFeatures, off.le(VhostUser.Feature.version1, 8))
        off.send(.setMemTable, off.le(1, 4) + off.le(0, 4) + off.le(0, 8) + off.le(UInt64(FakeFrontEnd.memSize), 8) + off.le(FakeFrontEnd.userBase, 8) + off.le(0, 8), fds: [off.memFD])
        off.send(.setVringNum, off.le(0, 4) + off.le(8, 4))
        off.send(.setVringAddr, off.le(0, 4) + off.le(0, 4) + off.le(1 << 40, 8) + off.le(1 << 40, 8) + off.le(1 << 40, 8) + off.le(0, 8))
        off.send(.setVringKick, off.le(0, 8), fds: [off.kick[0]])
        #expect(off.closedByServer())
        #expect(Progress.wait(timeout: 60) { self.log.contains("ring addresses") && self.log.contains("lie outside guest memory") }, "\(log)")
        // The next front end is served as if nothing happened.
        let good = try FakeFrontEnd(path: socketPath)
        try good.setUp()
        good.header(at: 0x4000, type: 0, sector: 128)
        good.submit([(0x4000, 16, false), (0x10000, 512, true), (0x4100, 1, true)])
        #expect(good.waitUsed(1))
        #expect((good.mem + 0x4100).load(as: UInt8.self) == 0 && (good.mem + 0x10000).load(as: UInt8.self) == 0x5a)
        try stop()
    }

    @Test func aReadOnlyDiskRefusesWritesAndSaysSoInItsFeatures() throws {
        try start(writable: false)
        let fe = try FakeFrontEnd(path: socketPath)
        fe.send(.getFeatures)
        let f = fe.u64Reply() ?? 0
        #expect(f & VhostUser.Feature.blkRo != 0 && f & VhostUser.Feature.blkWriteZeroes == 0)
        try fe.setUp()
        memset(fe.mem + 0x30000, 0xee, 512)
        fe.header(at: 0x4000, type: 1, sector: 0)
        fe.submit([(0x4000, 16, false), (0x30000, 512, false), (0x4100, 1, true)])
        #expect(fe.waitUsed(1))
        #expect((fe.mem + 0x4100).load(as: UInt8.self) == VirtioBlk.Status.ioError.rawValue)
        try stop()
        let r = try TestSupport.qemuIo(image, format: "raw", ["read -P 0 0 512"])
        #expect(r.status == 0 && !r.stdoutText.contains("Pattern verification failed"), "\(r.stdoutText)")
    }
}

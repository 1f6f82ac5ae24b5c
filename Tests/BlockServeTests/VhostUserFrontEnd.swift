import Foundation
@testable import BlockServe
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A minimal vhost-user front end written for the tests: it speaks the protocol from the
/// outside (messages with SCM_RIGHTS descriptors), shares 1 MiB of "guest memory" (a file in
/// /dev/shm) and lays out one 8-entry split ring in it, as a VMM and its guest driver would.
final class FakeFrontEnd {
    let fd: Int32
    let memFD: Int32
    let mem: UnsafeMutableRawPointer
    static let memSize = 1 << 20
    /// The front end's "virtual address" of guest memory (SET_MEM_TABLE, SET_VRING_ADDR).
    static let userBase: UInt64 = 0x5555_0000_0000
    static let ringSize = 8
    static let descAt = 0x0, availAt = 0x1000, usedAt = 0x2000
    var kick: [Int32] = [-1, -1]
    var call: [Int32] = [-1, -1]
    var availIdx: UInt16 = 0
    var nextDesc = 0

    /// The used index the device published in the ring's memory.
    var usedIndex: UInt16 { (mem + Self.usedAt + 2).load(as: UInt16.self) }

    init(path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        if r != 0 { close(fd); throw TestFailure("connect \(path): \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: 60, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let shm = "/dev/shm/blockscope-test-vu-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        memFD = open(shm, O_RDWR | O_CREAT | O_EXCL, 0o600)
        unlink(shm)
        _ = ftruncate(memFD, off_t(Self.memSize))
        mem = mmap(nil, Self.memSize, PROT_READ | PROT_WRITE, MAP_SHARED, memFD, 0)!
        _ = pipe(&kick)
        _ = pipe(&call)
    }

    deinit {
        close(fd); close(memFD); munmap(mem, Self.memSize)
        for f in kick + call { close(f) }
    }

    func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

    /// Sends a message (version 1, NEED_REPLY when asked) with `fds` attached.
    func send(_ req: VhostUser.Request, _ payload: [UInt8] = [], fds: [Int32] = [], needReply: Bool = false) {
        sendRaw(le(UInt64(req.rawValue), 4) + le(needReply ? 9 : 1, 4) + le(UInt64(payload.count), 4) + payload, fds: fds)
    }

    func sendRaw(_ bytes: [UInt8], fds: [Int32] = []) {
        var bytes = bytes
        bytes.withUnsafeMutableBytes { b in
            var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
            var msg = msghdr()
            let space = fds.isEmpty ? 0 : 16 + ((4 * fds.count + 7) & ~7)
            let control = UnsafeMutableRawPointer.allocate(byteCount: max(space, 8), alignment: 8)
            defer { control.deallocate() }
            if !fds.isEmpty {
                control.initializeMemory(as: UInt8.self, repeating: 0, count: space)
                control.storeBytes(of: 16 + 4 * fds.count, as: Int.self)          // cmsg_len
                control.storeBytes(of: SOL_SOCKET, toByteOffset: 8, as: Int32.self)
                control.storeBytes(of: Int32(SCM_RIGHTS), toByteOffset: 12, as: Int32.self)
                for (i, f) in fds.enumerated() { control.storeBytes(of: f, toByteOffset: 16 + 4 * i, as: Int32.self) }
            }
            withUnsafeMutablePointer(to: &iov) { iovp in
                msg.msg_iov = iovp
                msg.msg_iovlen = 1
                msg.msg_control = fds.isEmpty ? nil : control
                msg.msg_controllen = space
                _ = sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
            }
        }
    }

    /// Reads one reply: its request code and payload (nil when the server closed the socket).
    func reply() -> (request: UInt32, payload: [UInt8])? {
        var h = [UInt8](repeating: 0, count: 12)
        guard readExact(&h) else { return nil }
        let size = Int(h[8]) | Int(h[9]) << 8
        var p = [UInt8](repeating: 0, count: size)
        guard readExact(&p) else { return nil }
        return (UInt32(h[0]) | UInt32(h[1]) << 8, p)
    }

    func u64Reply() -> UInt64? {
        guard let r = reply(), r.payload.count == 8 else { return nil }
        return r.payload.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    private func readExact(_ b: inout [UInt8]) -> Bool {
        var got = 0
        while got < b.count {
            let n = b.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, $0.count - got, 0) }
            // A receive with SO_RCVTIMEO is not restarted after a signal handler runs, even with
            // SA_RESTART (signal(7)): the SIGCHLD of another test's qemu-img ended it with EINTR.
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            got += n
        }
        return true
    }

    /// Whether the server has closed the connection (a read sees end of file within 60 s).
    func closedByServer() -> Bool {
        var b = [UInt8](repeating: 0, count: 64)
        while true {
            let n = recv(fd, &b, 64, 0)
            if n == 0 { return true }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return false }
        }
    }

    /// The setup a VMM performs before the guest driver runs: features with EVENT_IDX and
    /// INDIRECT_DESC, REPLY_ACK, the memory table and queue 0's ring, kick, call and enable.
    func setUp() throws {
        send(.getFeatures)
        guard let offered = u64Reply() else { throw TestFailure("no GET_FEATURES reply") }
        send(.setFeatures, le(offered, 8))
        send(.getProtocolFeatures)
        guard let pf = u64Reply() else { throw TestFailure("no GET_PROTOCOL_FEATURES reply") }
        send(.setProtocolFeatures, le(pf, 8))
        send(.setOwner, needReply: true)
        guard u64Reply() == 0 else { throw TestFailure("SET_OWNER not acknowledged") }
        send(.setMemTable, le(1, 4) + le(0, 4) + le(0, 8) + le(UInt64(Self.memSize), 8) + le(Self.userBase, 8) + le(0, 8),
             fds: [memFD], needReply: true)
        guard u64Reply() == 0 else { throw TestFailure("SET_MEM_TABLE not acknowledged") }
        send(.setVringNum, le(0, 4) + le(UInt64(Self.ringSize), 4))
        send(.setVringBase, le(0, 4) + le(0, 4))
        send(.setVringAddr, le(0, 4) + le(0, 4) + le(Self.userBase + UInt64(Self.descAt), 8) + le(Self.userBase + UInt64(Self.usedAt), 8)
             + le(Self.userBase + UInt64(Self.availAt), 8) + le(0, 8))
        send(.setVringKick, le(0, 8), fds: [kick[0]])
        send(.setVringCall, le(0, 8), fds: [call[1]])
        send(.setVringEnable, le(0, 4) + le(1, 4), needReply: true)
        guard u64Reply() == 0 else { throw TestFailure("SET_VRING_ENABLE not acknowledged") }
    }

    /// Chains `buffers` (guest address, length, device-writable) from the next free
    /// descriptors, makes the chain available and kicks. Returns the head.
    @discardableResult
    func submit(_ buffers: [(addr: UInt64, len: UInt32, write: Bool)]) -> UInt16 {
        let head = nextDesc
        for (i, b) in buffers.enumerated() {
            let d = mem + Self.descAt + 16 * ((head + i) % Self.ringSize)
            d.storeBytes(of: b.addr, as: UInt64.self)
            d.storeBytes(of: b.len, toByteOffset: 8, as: UInt32.self)
            let more = i + 1 < buffers.count
            d.storeBytes(of: UInt16((more ? 1 : 0) | (b.write ? 2 : 0)), toByteOffset: 12, as: UInt16.self)
            d.storeBytes(of: UInt16((head + i + 1) % Self.ringSize), toByteOffset: 14, as: UInt16.self)
        }
        nextDesc = (head + buffers.count) % Self.ringSize
        (mem + Self.availAt + 4 + 2 * (Int(availIdx) % Self.ringSize)).storeBytes(of: UInt16(head), as: UInt16.self)
        availIdx &+= 1
        // The used_event (EVENT_IDX): interrupt me for every entry.
        (mem + Self.availAt + 4 + 2 * Self.ringSize).storeBytes(of: availIdx &- 1, as: UInt16.self)
        (mem + Self.availAt + 2).storeBytes(of: availIdx, as: UInt16.self)
        var one: UInt64 = 1
        _ = write(kick[1], &one, 8)
        return UInt16(head)
    }

    /// Waits (at most 60 s) for the call that says the used index reached `index`; drains
    /// the call pipe. False when no call came or the index is not there.
    func waitUsed(_ index: UInt16) -> Bool {
        var p = pollfd(fd: call[0], events: Int16(POLLIN), revents: 0)
        var b = [UInt8](repeating: 0, count: 64)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if (mem + Self.usedAt + 2).load(as: UInt16.self) == index && poll(&p, 1, 0) > 0 {
                while poll(&p, 1, 0) > 0 { _ = read(call[0], &b, 64) }
                return true
            }
            _ = poll(&p, 1, 100)
        }
        return false
    }

    /// The used entry `i`: head and length.
    func used(_ i: Int) -> (head: UInt32, len: UInt32) {
        let e = mem + Self.usedAt + 4 + 8 * (i % Self.ringSize)
        return (e.load(as: UInt32.self), e.load(fromByteOffset: 4, as: UInt32.self))
    }

    /// Writes a virtio-blk request header at guest address `at`.
    func header(at: Int, type: UInt32, sector: UInt64) {
        (mem + at).storeBytes(of: type, as: UInt32.self)
        (mem + at + 4).storeBytes(of: UInt32(0), as: UInt32.self)
        (mem + at + 8).storeBytes(of: sector, as: UInt64.self)
    }
}

import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// One front end (a VMM) on the vhost-user socket: the message loop and its virtqueues, all
/// on one thread (ADR 0021). A poll waits on the socket, the server's stop pipe, each
/// running queue's kick eventfd and, while it has requests out, each engine queue's
/// completion eventfd; one turn reaps
/// completions, fills used rings and calls the driver, then handles what woke it. While a
/// queue is in its poll window (``VhostUserPolling``) the wait is timed and each turn looks
/// at that queue's available ring.
///
/// A protocol violation or a ring the driver broke ends the connection with one log line;
/// the server then accepts the next front end. On shutdown the loop stops taking requests,
/// lets those in flight complete into the used rings and returns.
final class VhostUserConnection {
    let socket: VhostUserSocket
    let stopFD: Int32
    let export: VhostUserBlkExport
    let log: (String) -> Void
    var features: UInt64 = 0
    var protocolFeatures: UInt64 = 0
    var memory: GuestMemory? = nil
    /// The region recording requests in flight (INFLIGHT_SHMFD), once the front end asked
    /// for one or handed one back.
    var inflight: VhostUserInflight? = nil
    var queues: [VhostUserVirtqueue]
    /// Why the connection stops taking requests (set once).
    var closing: String? = nil
    var messages: UInt64 = 0
    /// The features last logged (a line when the driver's choice changes).
    var loggedFeatures: UInt64? = nil

    init(fd: Int32, stopFD: Int32, export: VhostUserBlkExport, log: @escaping (String) -> Void) {
        socket = VhostUserSocket(fd: fd)
        self.stopFD = stopFD
        self.export = export
        self.log = log
        queues = (0..<export.device.queues).map { VhostUserVirtqueue(index: $0, export: export) }
    }

    var eventIdx: Bool { features & VhostUser.Feature.eventIdx != 0 }
    var indirect: Bool { features & VhostUser.Feature.indirectDesc != 0 }

    /// Serves the front end until it leaves, breaks the protocol or the server stops;
    /// returns why. Every request taken has completed into its used ring on return, every
    /// engine queue is closed, guest memory unmapped and every descriptor closed (the socket too).
    func run() -> String {
        defer {
            for q in queues { _ = q.stop(); q.closeFDs() }
            memory?.unmapAll()
            memory = nil
            Glibc.close(socket.fd)
        }
        var fds: [pollfd] = []
        var owners: [(queue: Int, kick: Bool)] = []
        while true {
            for q in queues where q.queue != nil {
                q.reap()
                q.flushUsed()
                if q.needSubmit, let e = submit(q) { fail(e) }
            }
            if closing != nil {
                if queues.allSatisfy({ $0.inFlight == 0 }) { break }
            }
            fds.removeAll(keepingCapacity: true)
            owners.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: closing == nil ? socket.fd : -1, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: closing == nil ? stopFD : -1, events: Int16(POLLIN), revents: 0))
            for q in queues {
                if closing == nil && q.running && q.enabled && q.kickFD >= 0 {
                    fds.append(pollfd(fd: q.kickFD, events: Int16(POLLIN), revents: 0)); owners.append((q.index, true))
                }
                // The completion eventfd only while requests are out: completions that came
                // inside io_uring_enter (page-cache hits) were reaped above, and waking for
                // their signal would cost a poll and a read per batch. A signal left unread
                // wakes the next poll once, harmlessly.
                if q.inFlight > 0, let e = q.queue?.eventFD {
                    fds.append(pollfd(fd: e, events: Int16(POLLIN), revents: 0)); owners.append((q.index, false))
                }
            }
            // Completions of a backing file's queue and deferred requests do not signal the
            // eventfd: look again every millisecond while requests are in flight.
            let busy = queues.contains { $0.inFlight > 0 }
            // A queue in its poll window looks at its ring again after the interval.
            let looking = closing == nil && queues.contains { $0.pollUntil != 0 }
            // (poll's timeout is in milliseconds: it looks without waiting, then sleeps.)
            let r = poll(&fds, nfds_t(fds.count), looking ? 0 : busy ? 1 : -1)
            if looking && r == 0 {
                let ns = export.polling.intervalNs
                var ts = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
                _ = nanosleep(&ts, nil)
            }
            if r < 0 {
                if errno == EINTR { continue }
                fail("poll: \(String(cString: strerror(errno)))")
                continue
            }
            if fds[1].revents != 0 { fail("server shutting down") }
            for (i, o) in owners.enumerated() where fds[i + 2].revents != 0 {
                var v: UInt64 = 0
                _ = Glibc.read(fds[i + 2].fd, &v, 8)
                if o.kick {
                    // An eventfd counts the kicks written since the last read.
                    queues[o.queue].kicks &+= max(v, 1)
                    if closing == nil, let m = memory, let e = queues[o.queue].process(memory: m, indirect: indirect, log: log) { fail(e) }
                }
            }
            if looking, closing == nil, let m = memory {
                for q in queues where q.pollUntil != 0 {
                    if let e = q.process(memory: m, indirect: indirect, log: log) { fail(e) }
                }
            }
            if closing == nil && fds[0].revents != 0 { receiveMessage() }
        }
        return closing ?? "done"
    }

    /// The named feature bits of `f`, for the log.
    static func describe(_ f: UInt64) -> String {
        typealias F = VhostUser.Feature
        let names: [(UInt64, String)] = [(F.version1, "VERSION_1"), (F.indirectDesc, "INDIRECT_DESC"), (F.eventIdx, "EVENT_IDX"),
                                         (F.blkMq, "MQ"), (F.blkFlush, "FLUSH"), (F.blkDiscard, "DISCARD"),
                                         (F.blkWriteZeroes, "WRITE_ZEROES"), (F.blkRo, "RO"), (F.blkSegMax, "SEG_MAX"),
                                         (F.blkBlkSize, "BLK_SIZE"), (F.blkTopology, "TOPOLOGY")]
        return names.filter { f & $0.0 != 0 }.map(\.1).joined(separator: " ")
    }

    func fail(_ why: String) {
        if closing == nil { closing = why }
    }

    private func submit(_ q: VhostUserVirtqueue) -> String? {
        q.needSubmit = false
        do { _ = try q.queue?.submit() } catch { return "queue \(q.index): io_uring submit failed: \(error.description)" }
        return nil
    }

    /// Reads one message and acts on it; the end of the socket or a malformed message ends
    /// the connection.
    func receiveMessage() {
        let hbuf = UnsafeMutableRawBufferPointer.allocate(byteCount: VhostUser.headerSize, alignment: 8)
        defer { hbuf.deallocate() }
        var fds: [Int32] = []
        defer { for f in fds where f >= 0 { Glibc.close(f) } }
        do throws(VhostUserParseError) {
            guard let got = try socket.receiveHeader(into: hbuf) else {
                fail("the front end closed the connection (\(messages) messages)")
                return
            }
            fds = got
            let h = try VhostUserParser.header(UnsafeRawBufferPointer(hbuf)).get()
            let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(h.size), alignment: 8)
            defer { payload.deallocate() }
            try socket.receiveExact(into: payload)
            let m = try VhostUserParser.message(h, UnsafeRawBufferPointer(payload)).get()
            messages += 1
            try handle(m, h, &fds)
        } catch {
            fail("protocol error: \(error.description)")
        }
    }

    private func reply(_ bytes: [UInt8]) throws(VhostUserParseError) { try socket.send(bytes) }

    /// GET_INFLIGHT_FD: a fresh region for the queues the front end names, sent with its
    /// descriptor. Numbers that make no region are one log line and a reply of size 0,
    /// with which QEMU goes on without tracking.
    private func giveInflight(_ d: VhostUserInflightDescription, _ h: VhostUserHeader) throws(VhostUserParseError) {
        var answer = VhostUserInflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: d.numQueues, queueSize: d.queueSize)
        if let why = VhostUserInflight.check(d) {
            log("GET_INFLIGHT_FD with \(why): requests are not tracked")
            try reply(VhostUserParser.reply(h.request, inflight: answer)); return
        }
        // A running ring writes into the region it has: it is not swapped under it.
        if queues.contains(where: \.running) {
            log("GET_INFLIGHT_FD while rings run: no new region")
            try reply(VhostUserParser.reply(h.request, inflight: answer)); return
        }
        switch VhostUserInflight.create(queues: Int(d.numQueues), queueSize: Int(d.queueSize)) {
        case let .failure(e):
            log("\(e.description): requests are not tracked")
            try reply(VhostUserParser.reply(h.request, inflight: answer))
        case let .success((region, fd)):
            defer { Glibc.close(fd) }
            answer.mmapSize = UInt64(region.mappedBytes)
            try socket.send(VhostUserParser.reply(h.request, inflight: answer), fd: fd)
            for q in queues { q.inflight = nil }
            inflight = region
        }
    }

    /// SET_INFLIGHT_FD: maps the region the front end hands back; rings started later serve
    /// again what it marks. A missing descriptor, sizes that do not fit, or rings already
    /// running are one log line, and the connection goes on without tracking.
    private func takeInflight(_ d: VhostUserInflightDescription, _ fd: Int32) -> Bool {
        if queues.contains(where: \.running) {
            log("SET_INFLIGHT_FD while rings run: ignored")
            return false
        }
        inflight = nil
        for q in queues { q.inflight = nil }
        guard fd >= 0 else {
            log("SET_INFLIGHT_FD without a descriptor: requests are not tracked")
            return false
        }
        switch VhostUserInflight.adopt(fd: fd, d) {
        case let .failure(e):
            log("\(e.description): requests are not tracked")
            return false
        case let .success(r):
            inflight = r
            log("requests in flight are recorded in the front end's region (\(d.numQueues) queues of \(d.queueSize), \(d.mmapSize) bytes)")
            return true
        }
    }

    /// Acts on one message. Descriptors it keeps are taken out of `fds` (set to -1); the
    /// rest are closed by the caller.
    func handle(_ m: VhostUserMessage, _ h: VhostUserHeader, _ fds: inout [Int32]) throws(VhostUserParseError) {
        var ok = true
        func queue(_ i: UInt32) throws(VhostUserParseError) -> VhostUserVirtqueue {
            guard Int(i) < queues.count else { throw VhostUserParseError("queue index \(i), but \(queues.count) queues were offered") }
            return queues[Int(i)]
        }
        switch m {
        case .getFeatures:
            try reply(VhostUserParser.reply(h.request, u64: export.device.features)); return
        case let .setFeatures(f):
            if f & ~export.device.features != 0 { throw VhostUserParseError("SET_FEATURES 0x\(String(f, radix: 16)) has bits that were not offered") }
            features = f
            if loggedFeatures != f && f & VhostUser.Feature.version1 != 0 {
                loggedFeatures = f
                log("driver features: \(Self.describe(f))")
            }
        case .getProtocolFeatures:
            try reply(VhostUserParser.reply(h.request, u64: VhostUser.ProtocolFeature.offered)); return
        case let .setProtocolFeatures(f):
            protocolFeatures = f & VhostUser.ProtocolFeature.offered
        case .getQueueNum:
            try reply(VhostUserParser.reply(h.request, u64: UInt64(queues.count))); return
        case .setOwner:
            break
        case .resetOwner, .resetDevice:
            for q in queues { _ = q.stop(); q.base = 0; q.enabled = false }
            features = 0
        case let .setMemTable(table):
            // Requests in flight use the old mappings: let them finish first.
            for q in queues { q.drain() }
            let fresh = try GuestMemory(table: table, fds: fds)
            memory?.unmapAll()
            memory = fresh
            for q in queues { if let e = q.remap(memory: fresh, eventIdx: eventIdx) { throw VhostUserParseError(e) } }
        case let .setVringNum(i, num):
            let q = try queue(i)
            guard num > 0, num <= UInt32(Virtq.maxSize), num & (num - 1) == 0 else { throw VhostUserParseError("SET_VRING_NUM \(num) for queue \(i) (a power of two up to 32768)") }
            if q.running { throw VhostUserParseError("SET_VRING_NUM for queue \(i) while its ring runs") }
            q.size = Int(num)
        case let .setVringAddr(a):
            let q = try queue(a.index)
            if q.running { throw VhostUserParseError("SET_VRING_ADDR for queue \(a.index) while its ring runs") }
            q.address = a
        case let .setVringBase(i, num):
            let q = try queue(i)
            if q.running { throw VhostUserParseError("SET_VRING_BASE for queue \(i) while its ring runs") }
            q.base = UInt16(truncatingIfNeeded: num)
        case let .getVringBase(i):
            let q = try queue(i)
            let last = q.stop()
            if q.kickFD >= 0 { Glibc.close(q.kickFD); q.kickFD = -1 }
            try reply(VhostUserParser.reply(h.request, index: i, num: UInt32(last))); return
        case let .setVringFd(req, i, hasFd):
            let q = try queue(i)
            var fd: Int32 = -1
            if hasFd {
                guard let f = fds.first, f >= 0 else { throw VhostUserParseError("\(req.name) for queue \(i) without a file descriptor") }
                fd = f
                fds[0] = -1
            }
            switch req {
            case .setVringKick:
                if !hasFd { throw VhostUserParseError("SET_VRING_KICK without a descriptor (polling) is not supported") }
                VhostUserVirtqueue.replace(&q.kickFD, with: fd)
                if !q.running {
                    // Without VHOST_USER_F_PROTOCOL_FEATURES a ring starts enabled.
                    if features & VhostUser.Feature.protocolFeatures == 0 { q.enabled = true }
                    if let e = q.start(memory: memory, eventIdx: eventIdx) { throw VhostUserParseError(e) }
                    if let r = inflight, let m = memory, let e = q.resume(region: r, memory: m, indirect: indirect, log: log) { fail(e) }
                }
                if let m = memory, let e = q.process(memory: m, indirect: indirect, log: log) { fail(e) }
            case .setVringCall:
                VhostUserVirtqueue.replace(&q.callFD, with: fd)
                // A running ring may have used entries the old descriptor never announced
                // (QEMU sends CALL after KICK, and resubmitted requests complete at once):
                // one spare interrupt, which a driver tolerates, counted with the others.
                // A ring that has used nothing yet has nothing to announce.
                if q.running && fd >= 0, let used = q.ring?.usedIdx, used != 0 {
                    var one: UInt64 = 1
                    _ = Glibc.write(fd, &one, 8)
                    q.ring!.calls += 1
                }
            default:
                VhostUserVirtqueue.replace(&q.errFD, with: fd)
            }
        case let .setVringEnable(i, enable):
            let q = try queue(i)
            q.enabled = enable
            if enable, let m = memory, let e = q.process(memory: m, indirect: indirect, log: log) { fail(e) }
        case let .getConfig(offset, size, flags):
            let cfg = export.device.config()
            var p: [UInt8] = []
            LE.append(&p, UInt64(offset), 4)
            LE.append(&p, UInt64(size), 4)
            LE.append(&p, UInt64(flags), 4)
            p += cfg[Int(offset)..<Int(offset + size)]
            try reply(VhostUserParser.reply(h.request, p)); return
        case let .getInflightFd(d):
            try giveInflight(d, h); return
        case let .setInflightFd(d):
            ok = takeInflight(d, fds.first ?? -1)
        case .setConfig:
            // The only writable field is `writeback`; the cache mode stays write-back.
            break
        case let .unsupported(code):
            let name = VhostUser.Request(rawValue: code)?.name ?? "request \(code)"
            log("ignoring \(name) (not supported)")
            ok = false
        }
        if protocolFeatures & VhostUser.ProtocolFeature.replyAck != 0 && h.needsReply {
            try reply(VhostUserParser.reply(h.request, u64: ok ? 0 : 1))
        }
    }
}

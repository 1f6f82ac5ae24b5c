import BlockIO

/// Taking requests from the available ring and turning them into operations on the
/// virtqueue's engine queue, with data read and written in place in guest memory.
extension VhostUserVirtqueue {
    /// Bad requests logged per queue; later ones are only counted in the connection's summary.
    static let badLogLimit = 8

    /// Takes every available request, queues its operations and submits them. Returns a
    /// sentence when the driver broke the ring so badly that the connection must end (an
    /// available index running ahead of the ring, a head reused while in flight, a chain
    /// without a status byte).
    ///
    /// Inside the queue's poll window (``VhostUserPolling``) the kick stays unarmed and the
    /// connection calls this again at the window's interval; the kick is armed once a window
    /// passes without a request.
    func process(memory: GuestMemory, indirect: Bool, log: (String) -> Void) -> String? {
        guard enabled, ring != nil, queue != nil else { pollUntil = 0; lastTook = 0; return nil }
        var overrun = false
        var took = 0
        repeat {
            while let head = ring!.nextHead(overrun: &overrun) {
                took += 1
                let h = Int(head)
                guard h < size else { return "queue \(index): the driver made head \(head) available in a ring of \(size)" }
                if slots[h].busy { return "queue \(index): the driver made head \(head) available again while it is in flight" }
                requests += 1
                // No status byte can be trusted in a chain that could not be walked.
                if let e = DescriptorChain.walk(memory: memory, table: ring!.desc, size: size, head: head, indirect: indirect, record: frontEnd != nil, into: &scratchChain) {
                    return "queue \(index): \(e.description)"
                }
                if frontEnd != nil { popped(h, scratchChain) }
                if let e = begin(h, scratchChain, log: log) { return e }
                inflight?.mark(h)
            }
            if overrun { return "queue \(index): the driver's available index runs more than \(size) entries ahead" }
            lastTook = took
            if staysPolling(took: took) { break }
            took = 0
        } while ring!.armKick()
        if needSubmit, let q = queue {
            needSubmit = false
            do { _ = try q.submit() } catch { return "queue \(index): io_uring submit failed: \(error.description)" }
        }
        publishRing()
        return nil
    }

    /// Whether the queue stays in its poll window after a look that took `took` requests: a
    /// look that found a batch (``VhostUserPolling/minBatch`` or more: the driver keeps
    /// several requests out) opens or extends the window; a window that ran out, or no
    /// window (none configured, or no EVENT_IDX to leave the kick unarmed with), arms the
    /// kick. A driver sending one request at a time keeps its kicks, and their latency.
    private func staysPolling(took: Int) -> Bool {
        let w = export.polling.windowNs
        guard w > 0, ring!.eventIdx else { pollUntil = 0; return false }
        let now = monotonicNanos()
        if took >= VhostUserPolling.minBatch { pollUntil = now + w }
        if pollUntil > now { return true }
        pollUntil = 0
        return false
    }

    private func bad(_ h: Int, _ status: VirtioBlk.Status, _ why: String, log: (String) -> Void) {
        if badLogged < Self.badLogLimit {
            badLogged += 1
            log("queue \(index) head \(h): \(why): answered \(status == .unsupported ? "UNSUPP" : "IOERR")\(badLogged == Self.badLogLimit ? " (further bad requests on this queue are only counted)" : "")")
        }
        slots[h].status = status
        slots[h].usedLength = 1
    }

    /// Starts the request in `chain` under head `h`; its status is written when its
    /// operations complete (at once when there are none).
    func begin(_ h: Int, _ chain: DescriptorChain, log: (String) -> Void) -> String? {
        slots[h].busy = true
        slots[h].pending = 0
        slots[h].status = .ok
        slots[h].usedLength = 1
        slots[h].statusByte = nil
        // The instant only the views use (monotonicNanos per request otherwise).
        slots[h].receivedNs = frontEnd == nil ? 0 : monotonicNanos()
        inFlight += 1
        switch VirtioBlkRequest.parse(chain, data: &scratchData) {
        case let .unanswerable(why):
            slots[h].busy = false
            inFlight -= 1
            return "queue \(index) head \(h): \(why)"
        case let .reject(status, st, why):
            slots[h].statusByte = status
            if export.eventSink != nil { stage(.decoded, h, .max) }
            bad(h, st, why, log: log)
        case let .request(r):
            slots[h].statusByte = r.status
            if export.eventSink != nil { stage(.decoded, h, r.type) }
            run(h, r, log: log)
        }
        if slots[h].pending == 0 { finish(h) }
        return nil
    }

    /// The guest byte range of `r`'s data at its sector, when it lies inside the disk.
    private func range(_ r: VirtioBlkRequest) -> UInt64? {
        let (off, o1) = r.sector.multipliedReportingOverflow(by: VirtioBlk.sectorSize)
        if o1 { return nil }
        let (end, o2) = off.addingReportingOverflow(r.dataBytes)
        return o2 || end > export.disk.logicalSize ? nil : off
    }

    private func run(_ h: Int, _ r: VirtioBlkRequest, log: (String) -> Void) {
        let writable = export.device.writable
        switch VirtioBlk.RequestType(rawValue: r.type) {
        case .read?, .write?:
            let isRead = r.type == VirtioBlk.RequestType.read.rawValue
            if !isRead && !writable { bad(h, .ioError, "OUT on a read-only disk", log: log); return }
            if r.dataBytes % VirtioBlk.sectorSize != 0 { bad(h, .ioError, "\(isRead ? "IN" : "OUT") of \(r.dataBytes) bytes, not a multiple of 512", log: log); return }
            guard var off = range(r) else { bad(h, .ioError, "\(isRead ? "IN" : "OUT") of \(r.dataBytes) bytes at sector \(r.sector) runs past the disk's \(export.disk.logicalSize) bytes", log: log); return }
            if isRead { slots[h].usedLength = UInt32(truncatingIfNeeded: r.dataBytes + 1) }
            inParts(h, isRead ? .read : .write, length: r.dataBytes, count: r.data.count) {
                for seg in r.data {
                    let at = off
                    if isRead {
                        op(h) { q, t throws(BlockError) in try q.read(at: at, into: UnsafeMutableRawBufferPointer(start: seg.host, count: seg.length), userData: t) }
                    } else {
                        op(h) { q, t throws(BlockError) in try q.write(at: at, from: UnsafeRawBufferPointer(start: seg.host, count: seg.length), userData: t) }
                    }
                    off += UInt64(seg.length)
                }
            }
        case .flush?:
            op(h) { q, t throws(BlockError) in try q.fsync(userData: t) }
        case .getId?:
            var id = [UInt8](repeating: 0, count: VirtioBlk.idBytes)
            for (i, c) in export.device.serial.utf8.prefix(VirtioBlk.idBytes).enumerated() { id[i] = c }
            let n = id.withUnsafeBytes { VirtioBlkRequest.copy(UnsafeRawBufferPointer(rebasing: $0[0..<min(VirtioBlk.idBytes, Int(r.dataBytes))]), into: r.data) }
            slots[h].usedLength = UInt32(n + 1)
        case .discard?, .writeZeroes?:
            zeroes(h, r, discard: r.type == VirtioBlk.RequestType.discard.rawValue, log: log)
        case nil:
            bad(h, .unsupported, "request type \(r.type) is not supported", log: log)
        }
    }

    /// DISCARD and WRITE_ZEROES: each segment becomes a discard or a write of zeroes on
    /// the engine queue. A discard deallocates as the queue's discard does (QCOW2: zero
    /// clusters, so no discarded data stays in the image; RAW: a punched hole); WRITE_ZEROES
    /// with UNMAP on RAW punches a hole, as qemu does, and writes zeroes otherwise.
    private func zeroes(_ h: Int, _ r: VirtioBlkRequest, discard: Bool, log: (String) -> Void) {
        let name = discard ? "DISCARD" : "WRITE_ZEROES"
        if !export.device.writable { bad(h, .ioError, "\(name) on a read-only disk", log: log); return }
        let count = Int(r.dataBytes) / VirtioBlk.segmentSize
        if r.dataBytes == 0 || r.dataBytes % UInt64(VirtioBlk.segmentSize) != 0 || count > Int(VirtioBlkDevice.maxZeroSegments) {
            bad(h, .ioError, "\(name) with \(r.dataBytes) bytes of segments (16 each, at most \(VirtioBlkDevice.maxZeroSegments))", log: log); return
        }
        var raw = [UInt8](repeating: 0, count: count * VirtioBlk.segmentSize)
        raw.withUnsafeMutableBytes { _ = VirtioBlkRequest.copy(from: r.data, skip: 0, into: $0) }
        var ops: [(UInt64, UInt64, Bool)] = []
        for i in 0..<count {
            let (sector, sectors, flags) = raw.withUnsafeBytes { (LE.u64($0, 16 * i), LE.u32($0, 16 * i + 8), LE.u32($0, 16 * i + 12)) }
            let allowed: UInt32 = discard ? 0 : VirtioBlk.segmentUnmap
            if flags & ~allowed != 0 { bad(h, .unsupported, "\(name) segment \(i) has flags 0x\(String(flags, radix: 16))", log: log); return }
            if sectors > VirtioBlkDevice.maxZeroSectors { bad(h, .ioError, "\(name) segment \(i) of \(sectors) sectors (at most \(VirtioBlkDevice.maxZeroSectors))", log: log); return }
            let off = sector.multipliedReportingOverflow(by: VirtioBlk.sectorSize)
            let len = UInt64(sectors) * VirtioBlk.sectorSize
            if off.overflow || off.partialValue > export.disk.logicalSize || len > export.disk.logicalSize - off.partialValue {
                bad(h, .ioError, "\(name) segment \(i) at sector \(sector) (\(sectors) sectors) runs past the disk", log: log); return
            }
            if len > 0 { ops.append((off.partialValue, len, discard || (flags & VirtioBlk.segmentUnmap != 0 && export.disk.identityFile != nil))) }
        }
        inParts(h, discard ? .discard : .zero, length: ops.reduce(0) { $0 + $1.1 }, count: ops.count) {
            for (at, len, dealloc) in ops {
                if dealloc {
                    op(h) { q, t throws(BlockError) in try q.discard(at: at, length: len, userData: t) }
                } else {
                    op(h) { q, t throws(BlockError) in try q.writeZeroes(at: at, length: len, userData: t) }
                }
            }
        }
    }

    /// Runs `queueAll` (which queues `count` engine operations of request `h` through
    /// ``op(_:_:)``) so that the engine sees one request of kind `kind` and `length` bytes,
    /// as the guest sent it: with more than one operation they are the parts of one request
    /// (``AsyncIo/beginParts(userData:op:length:)``), counted, traced and completed once, so
    /// Completions and In-flight count a guest's 32-segment write as one write. One
    /// operation is queued as it is.
    private func inParts(_ h: Int, _ kind: GuestOp, length: UInt64, count: Int, _ queueAll: () -> Void) {
        guard count > 1, let q = queue else { queueAll(); return }
        let t = tag(h)
        let before = slots[h].pending
        q.beginParts(userData: t, op: kind, length: length)
        queueAll()
        q.endParts(userData: t)
        // One completion comes back for all the parts queued (none when the first was refused).
        if slots[h].pending > before { slots[h].pending = before + 1 }
    }

    /// Queues one engine operation of request `h`; a synchronous refusal makes it IOERR.
    private func op(_ h: Int, _ body: (any AsyncIo, UInt64) throws(BlockError) -> Void) {
        guard slots[h].status == .ok, let q = queue else { return }
        frontEnd?.origin(clientTag: UInt64(h), receivedNs: slots[h].receivedNs)
        do {
            try body(q, tag(h))
            slots[h].pending += 1
            needSubmit = true
        } catch {
            slots[h].status = .ioError
        }
    }
}

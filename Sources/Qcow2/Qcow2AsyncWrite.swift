import BlockIO
import BlockInspect

#if canImport(Glibc)
import Glibc
#endif

/// A guest write, zero or flush that could not start yet: a cluster it touches has an
/// allocation in flight, or another flush is running. Retried after every reap.
/// Each keeps its acceptance time, so its latency counts the wait.
enum DeferredRequest {
    case write(offset: UInt64, buffer: UnsafeRawBufferPointer, userData: UInt64, start: UInt64)
    case zero(offset: UInt64, length: UInt64, userData: UInt64, op: GuestOp, start: UInt64)
    case fsync(userData: UInt64, start: UInt64)
}

/// What one sub-operation of a write or flush request is for.
enum SubRole {
    /// A copy-on-write read into piece `piece`'s span (compressed input when `input` is set).
    case fill(piece: Int, input: UnsafeMutableRawBufferPointer?, descriptor: Qcow2CompressedDescriptor?, offsetInCluster: Int, spanOffset: Int, length: Int)
    /// The host write of piece `piece`.
    case write(piece: Int)
    /// A metadata write or datasync of a flush.
    case flush
}

/// One planned host write of a guest request and its progress.
final class WritePiece {
    let plan: Qcow2ClusterWrite
    /// The bounce buffer (guest data plus fills), when the piece is not direct.
    var span: UnsafeMutableRawBufferPointer?
    /// Fill reads still in flight.
    var fillsLeft = 0
    /// The sub-op index of the host write.
    var writeSub = -1
    /// The first fill failure.
    var failure: BlockError?

    init(_ plan: Qcow2ClusterWrite) { self.plan = plan }
}

/// A flush's batch and which step it is on.
final class FlushProgress {
    let batch: Qcow2FlushBatch
    var step = 0
    var left = 0
    var failed = false
    /// Buffers of the metadata writes in flight.
    var buffers: [UnsafeMutableRawBufferPointer] = []

    init(_ batch: Qcow2FlushBatch) { self.batch = batch }
}

/// The write side of ``QcowAsync``: guest writes, zeroes and discards become the host writes
/// that ``QcowMetadata/planWrite(offset:length:zeroData:events:)`` plans (copy-on-write fills
/// read through the same ring first), their allocations commit when the write's CQE is
/// reaped, and a flush writes the dirty metadata and datasyncs through IORING_OP_FSYNC, in
/// the order ``Qcow2FlushBatch`` gives. Nothing here calls `pwrite` or `fsync`.
extension QcowAsync {
    /// Queues a guest write.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, userData: UInt64) throws(BlockError) {
        let t0 = core.accept(.write, offset: offset, length: UInt64(buffer.count), userData: userData)
        if disk.isWritable, buffer.count > 0, let host = try? disk.metadata.inPlaceHost(offset: offset, length: UInt64(buffer.count)) {
            let p = UnsafeMutableRawPointer(mutating: buffer.baseAddress!)
            issueDirect(.write, fd: fd(for: host, buffer.baseAddress!, buffer.count, write: true), host: host, buffer: p, length: buffer.count,
                        userData: userData, offset: offset, start: t0)
            return
        }
        startWrite(offset: offset, buffer: buffer, length: UInt64(buffer.count), userData: userData, op: .write, start: t0)
    }

    /// Queues making a guest range read as zeroes.
    public func writeZeroes(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = core.accept(.zero, offset: offset, length: length, userData: userData)
        startWrite(offset: offset, buffer: nil, length: length, userData: userData, op: .zero, start: t0)
    }

    /// Queues a discard (the range reads as zeroes afterwards; whole clusters are released).
    public func discard(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError) {
        let t0 = core.accept(.discard, offset: offset, length: length, userData: userData)
        startWrite(offset: offset, buffer: nil, length: length, userData: userData, op: .discard, start: t0)
    }

    /// Queues a flush: dirty metadata is written in its ordered phases, each followed by an
    /// IORING_OP_FSYNC (datasync); the guest flush completes on the last CQE.
    public func fsync(userData: UInt64) throws(BlockError) {
        let t0 = core.accept(.fsync, offset: 0, length: 0, userData: userData)
        if !disk.isWritable { finishEarly(userData, .fsync, 0, t0, nil); return }
        startFlush(userData: userData, start: t0)
    }

    /// Marks the next request under `userData` force unit access (its flush runs inside it).
    public func forceUnitAccess(userData: UInt64) { core.armForceUnitAccess(userData) }
    /// Makes the next requests under `userData` parts of one request (``QueueCore``).
    public func beginParts(userData: UInt64, op: GuestOp, length: UInt64) { core.beginParts(userData, op: op, length: length) }
    /// Ends the parts of request `userData`.
    public func endParts(userData: UInt64) { core.endParts(userData) }

    /// Retries deferred requests once each (they defer again if still blocked).
    func retryDeferred() {
        var n = deferred.count
        while n > 0, let d = deferred.popFirst() {
            n -= 1
            switch d {
            case let .write(offset, buffer, userData, start):
                startWrite(offset: offset, buffer: buffer, length: UInt64(buffer.count), userData: userData, op: .write, start: start)
            case let .zero(offset, length, userData, op, start):
                startWrite(offset: offset, buffer: nil, length: length, userData: userData, op: op, start: start)
            case let .fsync(userData, start):
                startFlush(userData: userData, start: start)
            }
        }
        if ctx.inFlight > 0 { _ = ctx.submit() }
    }

    /// Plans a write/zero and issues its pieces, or defers it while a cluster is busy.
    func startWrite(offset: UInt64, buffer: UnsafeRawBufferPointer?, length: UInt64, userData: UInt64, op: GuestOp, start: UInt64) {
        let plan: Qcow2WritePlan
        do throws(BlockError) {
            if !disk.isWritable {
                throw BlockError(.readOnly, "image is open read-only: cannot \(op)", path: disk.path, guestOffset: offset, operation: "\(op)")
            }
            plan = op == .write
                ? try disk.metadata.planWrite(offset: offset, length: length, events: sink != nil)
                : try disk.metadata.planZero(offset: offset, length: length, hasBacking: disk.backing != nil, events: sink != nil)
        } catch let e {
            finishEarly(userData, op, length, start, e)
            return
        }
        guard case let .ready(pieces, events) = plan else {
            deferred.append(buffer.map { .write(offset: offset, buffer: $0, userData: userData, start: start) }
                            ?? .zero(offset: offset, length: length, userData: userData, op: op, start: start))
            return
        }
        let pending = core.track(userData, op, offset: offset, length: length, subOps: 0, start: start)
        let id = pending.id
        let raw = buffer.map { UnsafeMutableRawBufferPointer(mutating: $0) } ?? UnsafeMutableRawBufferPointer(start: nil, count: 0)
        let req = Request(pending: pending, buffer: raw, multi: pieces.count > 1)
        req.pieces = pieces.map(WritePiece.init)
        requests[id] = req
        if let sink {
            let m = Qcow2WritePlan.mappingSummary(events, pieces: pieces)   // how the range mapped before this request
            sink.publish(IoEvent(queue: queueID, request: userData, .mappingResolved(offset: offset, length: length, regions: m.regions, kind: m.kind, hostOffset: m.host)))
            for e in events { sink.publish(IoEvent(queue: queueID, request: userData, e)) }
        }
        if req.multi { core.announce(pending, subOps: pieces.count) }
        for i in req.pieces.indices { issuePiece(req, i) }
        if pending.seal() { completeRequest(id) }
    }

    private func addSub(_ req: Request, _ role: SubRole, opcode: IoOpcode?, host: UInt64, guest: UInt64, length: UInt64) -> Int {
        let i = req.pending.add(opcode: opcode, hostOffset: host, guestOffset: guest, length: length)
        while req.roles.count <= i { req.roles.append(.flush) }
        req.roles[i] = role
        return i
    }

    /// Issues one piece: a direct write from the guest buffer, or the fills of its span
    /// (the write follows when the last fill completes).
    private func issuePiece(_ req: Request, _ pi: Int) {
        let piece = req.pieces[pi]
        let p = piece.plan
        piece.writeSub = addSub(req, .write(piece: pi), opcode: .writev, host: p.hostOffset, guest: p.guestOffset, length: p.spanLength)
        if p.isDirect, let base = req.buffer.baseAddress {
            issueHostWrite(req, piece, UnsafeRawPointer(base + Int(p.guestOffset - req.pending.guestOffset)), Int(p.length))
            return
        }
        let span = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(p.spanLength), alignment: 4096)
        piece.span = span
        let data = UnsafeMutableRawBufferPointer(rebasing: span[p.dataOffsetInSpan..<(p.dataOffsetInSpan + Int(p.length))])
        if p.zeroData || req.buffer.baseAddress == nil {
            data.initializeMemory(as: UInt8.self, repeating: 0)
        } else {
            let s = Int(p.guestOffset - req.pending.guestOffset)
            data.copyMemory(from: UnsafeRawBufferPointer(rebasing: req.buffer[s..<(s + Int(p.length))]))
        }
        for f in p.fills {
            let dst = UnsafeMutableRawBufferPointer(rebasing: span[f.spanOffset..<(f.spanOffset + f.length)])
            switch f.source {
            case .zero:
                dst.initializeMemory(as: UInt8.self, repeating: 0)
            case let .host(off):
                let i = addSub(req, .fill(piece: pi, input: nil, descriptor: nil, offsetInCluster: 0, spanOffset: f.spanOffset, length: f.length),
                               opcode: .readv, host: off, guest: p.guestOffset, length: UInt64(f.length))
                piece.fillsLeft += 1
                enqueue(req, i, .read(fd: disk.dataFile.fd, offset: off, buffer: dst.baseAddress!, length: dst.count))
            case let .backing(g):
                let n = disk.backingBytes(at: g, length: UInt64(f.length))
                if n < dst.count { UnsafeMutableRawBufferPointer(rebasing: dst[n...]).initializeMemory(as: UInt8.self, repeating: 0) }
                if n == 0 { continue }
                let i = addSub(req, .fill(piece: pi, input: nil, descriptor: nil, offsetInCluster: 0, spanOffset: f.spanOffset, length: n),
                               opcode: .readv, host: g, guest: g, length: UInt64(n))
                piece.fillsLeft += 1
                let part = UnsafeMutableRawBufferPointer(rebasing: dst[0..<n])
                if let raw = rawBacking {
                    enqueue(req, i, .read(fd: raw.fd, offset: g, buffer: part.baseAddress!, length: n))
                } else {
                    let t = tag(req.pending.id, i)
                    req.pending.markInFlight(i, sqeTag: t)
                    do throws(BlockError) {
                        if backingQueue == nil {
                            backingQueue = try disk.backing!.makeQueue(QueueOptions(depth: options.depth, queueID: options.queueID, engine: options.engine, eventSink: nil))
                        }
                        try backingQueue!.read(at: g, into: part, userData: t)
                        backingInFlight += 1
                    } catch let e {
                        fillDone(req, i, -EIO, e)
                    }
                }
            case let .compressed(d, off):
                let input = UnsafeMutableRawBufferPointer.allocate(byteCount: d.length, alignment: 512)
                let i = addSub(req, .fill(piece: pi, input: input, descriptor: d, offsetInCluster: off, spanOffset: f.spanOffset, length: f.length),
                               opcode: .readv, host: d.hostOffset, guest: p.guestOffset, length: UInt64(d.length))
                piece.fillsLeft += 1
                enqueue(req, i, .read(fd: disk.file.fd, offset: d.hostOffset, buffer: input.baseAddress!, length: d.length))
            }
        }
        if piece.fillsLeft == 0 { issueHostWrite(req, piece, UnsafeRawPointer(span.baseAddress!), span.count) }
    }

    private func enqueue(_ req: Request, _ sub: Int, _ op: HostOp) {
        let t = tag(req.pending.id, sub)
        req.pending.markInFlight(sub, sqeTag: t)
        ctx.enqueue(op, tag: t, request: req.pending.userData)
    }

    /// Queues the host write of a piece (O_DIRECT descriptor when everything is 4 KiB-aligned).
    private func issueHostWrite(_ req: Request, _ piece: WritePiece, _ src: UnsafeRawPointer, _ count: Int) {
        let host = piece.plan.hostOffset
        enqueue(req, piece.writeSub, .write(fd: fd(for: host, src, count, write: true), offset: host, buffer: src, length: count))
    }

    /// Handles a finished sub-op of a write or flush request.
    func handleWrite(_ req: Request, _ id: UInt64, _ sub: Int, _ res: Int32, _ error: BlockError?) {
        guard sub < req.roles.count else { return }
        switch req.roles[sub] {
        case .fill:
            fillDone(req, sub, res, error)
        case let .write(pi):
            let piece = req.pieces[pi]
            var err = error
            if res < 0 && err == nil {
                err = BlockError.system(-res, "write", path: disk.dataFile.path, hostOffset: piece.plan.hostOffset, guestOffset: piece.plan.guestOffset)
            }
            commitPiece(req, piece, success: err == nil, &err)
            piece.span?.deallocate()
            piece.span = nil
            if req.pending.finish(sub, result: err == nil ? Int32(clamping: piece.plan.spanLength) : -(err?.errno ?? EIO), error: err) {
                completeRequest(id)
            }
        case .flush:
            flushOpDone(req, id, sub, res, error)
        }
    }

    /// Commits (or drops) a piece's allocations and publishes what changed.
    private func commitPiece(_ req: Request, _ piece: WritePiece, success: Bool, _ err: inout BlockError?) {
        if piece.plan.tokens.isEmpty { return }
        do throws(BlockError) {
            let ev = try disk.metadata.commit(piece.plan.tokens, success: success, events: sink != nil)
            if let sink { for e in ev { sink.publish(IoEvent(queue: queueID, request: req.pending.userData, e)) } }
        } catch let e {
            if err == nil { err = e }
        }
    }

    /// A copy-on-write read finished: decompress if needed; when the piece's last fill is
    /// in, issue its write (or fail it).
    func fillDone(_ req: Request, _ sub: Int, _ res: Int32, _ error: BlockError?) {
        guard case let .fill(pi, input, d, off, spanOffset, length) = req.roles[sub] else { return }
        let piece = req.pieces[pi]
        var err = error
        if res < 0 && err == nil { err = BlockError.system(-res, "read", path: disk.path, guestOffset: piece.plan.guestOffset) }
        if let input {
            if err == nil, let d, let span = piece.span {
                do throws(BlockError) {
                    try decompressor.decompress(UnsafeRawBufferPointer(input), part: UnsafeMutableRawBufferPointer(rebasing: span[spanOffset..<(spanOffset + length)]),
                                                offsetInCluster: off, scratch: scratch, path: disk.path, hostOffset: d.hostOffset, guestOffset: piece.plan.guestOffset)
                } catch let e { err = e }
            }
            input.deallocate()
            req.roles[sub] = .fill(piece: pi, input: nil, descriptor: nil, offsetInCluster: 0, spanOffset: spanOffset, length: length)
        }
        if let err, piece.failure == nil { piece.failure = err }
        _ = req.pending.finish(sub, result: err == nil ? Int32(clamping: length) : -(err?.errno ?? EIO), error: err)
        piece.fillsLeft -= 1
        if piece.fillsLeft > 0 { return }
        if let f = piece.failure {
            var e: BlockError? = f
            commitPiece(req, piece, success: false, &e)
            piece.span?.deallocate()
            piece.span = nil
            if req.pending.finish(piece.writeSub, result: -(f.errno ?? EIO), error: f) { completeRequest(req.pending.id) }
            return
        }
        if let span = piece.span { issueHostWrite(req, piece, UnsafeRawPointer(span.baseAddress!), span.count) }
    }

    /// Starts a flush, or defers it while another flush of the image runs.
    func startFlush(userData: UInt64, start: UInt64) {
        let batch: Qcow2FlushBatch?
        do throws(BlockError) { batch = try disk.metadata.beginFlush() } catch let e {
            finishEarly(userData, .fsync, 0, start, e)
            return
        }
        guard let batch else { deferred.append(.fsync(userData: userData, start: start)); return }
        let p = core.track(userData, .fsync, offset: 0, length: 0, subOps: 0, start: start)
        let id = p.id
        let req = Request(pending: p, buffer: UnsafeMutableRawBufferPointer(start: nil, count: 0), multi: false)
        req.flush = FlushProgress(batch)
        if let sink { for e in batch.events { sink.publish(IoEvent(queue: queueID, request: userData, e)) } }   // refcount releases
        requests[id] = req
        advanceFlush(req)
    }

    /// Issues the flush's next step (metadata writes, or a datasync of the image and, in
    /// the first one, the data file); seals the request with its last step.
    private func advanceFlush(_ req: Request) {
        guard let f = req.flush, f.step < f.batch.steps.count else { return }
        let step = f.batch.steps[f.step]
        f.step += 1
        switch step {
        case let .write(ws):
            sink?.publish(IoEvent(queue: queueID, request: req.pending.userData, .fsyncPhase(f.batch.phase(ofStep: f.step - 1))))
            for w in ws {
                let b = UnsafeMutableRawBufferPointer.allocate(byteCount: w.bytes.count, alignment: 4096)
                b.copyBytes(from: w.bytes)
                f.buffers.append(b)
                let i = addSub(req, .flush, opcode: .writev, host: w.offset, guest: 0, length: UInt64(w.bytes.count))
                f.left += 1
                enqueue(req, i, .write(fd: disk.file.fd, offset: w.offset, buffer: UnsafeRawPointer(b.baseAddress!), length: b.count))
            }
        case let .sync(both):
            var files = [disk.file]
            if both && disk.dataFile !== disk.file { files.append(disk.dataFile) }
            // The last sync is the flush's final datasync: every metadata write is done.
            if f.step == f.batch.steps.count { core.fsyncPhase(req.pending.userData, .fsyncSubmitted) }
            for file in files {
                let i = addSub(req, .flush, opcode: .fdatasync, host: 0, guest: 0, length: 0)
                f.left += 1
                enqueue(req, i, .fsync(fd: file.fd, dataOnly: true))
            }
        }
        if f.step == f.batch.steps.count { _ = req.pending.seal() }
    }

    /// A flush op finished: on to the next step when this one is done; a failure ends the
    /// flush (its tables stay dirty).
    private func flushOpDone(_ req: Request, _ id: UInt64, _ sub: Int, _ res: Int32, _ error: BlockError?) {
        guard let f = req.flush else { return }
        f.left -= 1
        var err = error
        if res < 0 && err == nil { err = BlockError.system(-res, "fsync", path: disk.path) }
        if err != nil { f.failed = true }
        if req.pending.finish(sub, result: err == nil ? max(res, 0) : -(err?.errno ?? EIO), error: err) {
            completeRequest(id)
            return
        }
        if f.left > 0 { return }
        if f.failed {
            if req.pending.seal() { completeRequest(id) }
            return
        }
        advanceFlush(req)
    }

    /// Frees a write or flush request's buffers and ends its flush (called once, on completion or close).
    func releaseWriteState(_ req: Request) {
        for p in req.pieces {
            p.span?.deallocate()
            p.span = nil
        }
        for case let .fill(_, input?, _, _, _, _) in req.roles { input.deallocate() }
        req.roles.removeAll()
        if let f = req.flush {
            for b in f.buffers { b.deallocate() }
            f.buffers.removeAll()
            disk.metadata.endFlush(f.batch, success: !f.failed && req.pending.firstError == nil && f.step == f.batch.steps.count)
            req.flush = nil
        }
    }
}

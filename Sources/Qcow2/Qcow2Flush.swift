import BlockIO
import BlockInspect

#if canImport(Glibc)
import Glibc
#endif

/// Writing dirty metadata back: one flush at a time per image, three ordered phases (see
/// ``Qcow2FlushBatch``). The async queue issues a batch's steps through io_uring; the
/// synchronous path (`--engine=sync`, close) with `pwrite` and `fdatasync`.
extension QcowMetadata {
    /// Starts a flush: applies refcount releases made safe by earlier flushes, extends the
    /// file to cover every allocated cluster, and snapshots the dirty refcount blocks, L2
    /// tables, refcount table entries and L1 entries. Returns nil while another flush runs
    /// (retry after it ends), and a one-step batch (a datasync) on a read-only open.
    public func beginFlush() throws(BlockError) -> Qcow2FlushBatch? {
        try state.withLock { (s) throws(BlockError) -> Qcow2FlushBatch? in
            if !s.w.prepared {
                return Qcow2FlushBatch(seq: 0, steps: [.sync(dataFileToo: true)], l2: [], refblocks: [], refTable: [], l1: [])
            }
            if s.w.flushing { return nil }
            s.w.flushing = true
            s.w.flushSeq += 1
            var released: [IoEventPayload]? = []
            var keep: [QcowPendingFree] = []
            for f in s.w.pendingFrees {
                if f.safeAfter > s.w.flushDone { keep.append(f); continue }
                var c = f.offset >> cb
                // A failed release leaves a leak, never a corruption.
                while c <= (f.offset + f.length - 1) >> cb { try? changeRefcount(&s, c, by: -1, events: &released); c += 1 }
            }
            s.w.pendingFrees = keep
            if s.w.hostEnd > s.w.fileEnd {
                do throws(BlockError) { try file.truncate(to: s.w.hostEnd) } catch let e { s.w.flushing = false; throw e }
                s.w.fileEnd = s.w.hostEnd
            }
            var a: [(offset: UInt64, bytes: [UInt8])] = []
            for off in s.w.dirtyRefblocks.sorted() {
                if let b = s.refblockCache.peek(off) { a.append((off, b)) }
            }
            var b: [(offset: UInt64, bytes: [UInt8])] = []
            for off in s.w.dirtyL2.sorted() {
                guard let t = s.l2Cache.peek(off) else { continue }
                var bytes = [UInt8](repeating: 0, count: t.count * 8)
                bytes.withUnsafeMutableBytes { p in
                    for (i, w) in t.enumerated() { p.storeBytes(of: w.bigEndian, toByteOffset: i * 8, as: UInt64.self) }
                }
                b.append((off, bytes))
            }
            for i in s.w.dirtyRefTable.sorted() {
                var e = [UInt8](repeating: 0, count: 8)
                storeBE(s.refcountTable[i], into: &e, at: 0, width: 8)
                b.append((s.w.refcountTableOffset + UInt64(i) * 8, e))
            }
            var c: [(offset: UInt64, bytes: [UInt8])] = []
            for i in s.w.dirtyL1.sorted() {
                var e = [UInt8](repeating: 0, count: 8)
                storeBE(s.l1[i], into: &e, at: 0, width: 8)
                c.append((l1Offset + UInt64(i) * 8, e))
            }
            var steps: [Qcow2FlushStep] = []
            var phases: [FsyncPhase] = []
            if !a.isEmpty { steps.append(.write(a)); phases.append(.writingRefcountBlocks) }
            steps.append(.sync(dataFileToo: true)); phases.append(.fsyncSubmitted)
            if !b.isEmpty {
                steps += [.write(b), .sync(dataFileToo: false)]
                phases += [s.w.dirtyL2.isEmpty ? .writingRefcountTable : .writingL2Tables, .fsyncSubmitted]
            }
            if !c.isEmpty { steps += [.write(c), .sync(dataFileToo: false)]; phases += [.writingL1Table, .fsyncSubmitted] }
            let batch = Qcow2FlushBatch(seq: s.w.flushSeq, steps: steps, l2: s.w.dirtyL2, refblocks: s.w.dirtyRefblocks,
                                        refTable: s.w.dirtyRefTable, l1: s.w.dirtyL1, phases: phases, events: released ?? [])
            s.w.dirtyL2 = []
            s.w.dirtyRefblocks = []
            s.w.dirtyRefTable = []
            s.w.dirtyL1 = []
            return batch
        }
    }

    /// Ends a flush begun by ``beginFlush()``: on success the tables it wrote are clean (and
    /// unpinned unless changed again); on failure they are dirty again.
    public func endFlush(_ batch: Qcow2FlushBatch, success: Bool) {
        if batch.seq == 0 { return }
        defer { changes.bump() }
        state.withLock { s in
            s.w.flushing = false
            if success {
                s.w.flushDone = batch.seq
            } else {
                s.w.dirtyL2.formUnion(batch.l2)
                s.w.dirtyRefblocks.formUnion(batch.refblocks)
                s.w.dirtyRefTable.formUnion(batch.refTable)
                s.w.dirtyL1.formUnion(batch.l1)
            }
            for off in batch.l2 where !s.w.dirtyL2.contains(off) { s.l2Cache.pinned.remove(off) }
            for off in batch.refblocks where !s.w.dirtyRefblocks.contains(off) { s.refblockCache.pinned.remove(off) }
        }
    }

    /// Refcount releases queued and not yet applied (docs/adr/0006): host cluster index ->
    /// how many references a later flush drops from it. A cluster here has a stored refcount
    /// above its references on purpose (a release pending, not a leak); empty on a read-only open.
    public var pendingReleases: [UInt64: UInt64] {
        state.withLock { s in
            var out: [UInt64: UInt64] = [:]
            for f in s.w.pendingFrees where f.length > 0 {
                var c = f.offset >> cb
                while c <= (f.offset + f.length - 1) >> cb { out[c, default: 0] += 1; c += 1 }
            }
            return out
        }
    }

    /// Whether anything waits to be written back (dirty tables or refcount releases).
    public var hasUnflushedMetadata: Bool {
        state.withLock { s in
            !s.w.dirtyL2.isEmpty || !s.w.dirtyRefblocks.isEmpty || !s.w.dirtyRefTable.isEmpty || !s.w.dirtyL1.isEmpty || !s.w.pendingFrees.isEmpty
        }
    }

    /// A whole flush, waiting for it: through a private io_uring (`useRing`, what a close
    /// with the io_uring engine does, so no `fdatasync` syscall is made) or with `pwrite`
    /// and `fdatasync` (the sync engine). Waits for a flush another queue runs to end first.
    public func flushSynchronously(dataFile: SystemFile, useRing: Bool = false) throws(BlockError) {
        var batch: Qcow2FlushBatch? = nil
        while batch == nil {
            let seen = changes.generation
            batch = try beginFlush()
            if batch == nil { changes.wait(past: seen) }   // another queue's flush ends and bumps
        }
        let b = batch!
        do throws(BlockError) {
            let ring = useRing ? try IoUringContext(depth: 64) : nil
            defer { ring?.close() }
            for step in b.steps {
                switch step {
                case let .write(ws):
                    if let ring {
                        try ws.withUnsafeBufferPointer { (all) throws(BlockError) in
                            var i = 0
                            while i < all.count {
                                let chunk = all[i..<min(all.count, i + 64)]
                                try runOnRing(ring, chunk.map { w in (file.fd, w.offset, w.bytes) })
                                i += 64
                            }
                        }
                    } else {
                        for w in ws { try file.writeBytes(w.bytes, at: w.offset) }
                    }
                case let .sync(both):
                    let files = both && dataFile !== file ? [dataFile, file] : [file]
                    if let ring {
                        for f in files { ring.enqueue(.fsync(fd: f.fd, dataOnly: true), tag: 0) }
                        try reapAll(ring, files.count, what: "fdatasync")
                    } else {
                        for f in files { try f.sync(dataOnly: true) }
                    }
                }
            }
        } catch let e {
            endFlush(b, success: false)
            throw e
        }
        endFlush(b, success: true)
    }

    /// Writes `(fd, offset, bytes)` through `ring` and waits for all of them.
    private func runOnRing(_ ring: IoUringContext, _ writes: [(Int32, UInt64, [UInt8])]) throws(BlockError) {
        let bufs = writes.map { w in
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: w.2.count, alignment: 4096)
            b.copyBytes(from: w.2)
            return b
        }
        defer { for b in bufs { b.deallocate() } }
        for (i, w) in writes.enumerated() {
            ring.enqueue(.write(fd: w.0, offset: w.1, buffer: UnsafeRawPointer(bufs[i].baseAddress!), length: bufs[i].count), tag: UInt64(i))
        }
        try reapAll(ring, writes.count, what: "metadata write")
    }

    /// Submits and waits for `count` ops; the first failure is thrown.
    private func reapAll(_ ring: IoUringContext, _ count: Int, what: String) throws(BlockError) {
        ring.submit()
        var done = 0
        var failure: Int32 = 0
        while done < count {
            try ring.reap(wait: true) { _, res in
                done += 1
                if res < 0 && failure == 0 { failure = -res }
            }
        }
        if failure != 0 { throw BlockError.system(failure, what, path: file.path) }
    }

    /// A clean close's metadata work: flush until every refcount release is applied and
    /// written, then clear the dirty bit blockscope set (lazy refcounts).
    public func finishWrites(dataFile: SystemFile, useRing: Bool = false) throws(BlockError) {
        guard state.withLock({ $0.w.prepared }) else { return }
        try flushSynchronously(dataFile: dataFile, useRing: useRing)
        var rounds = 0
        while hasUnflushedMetadata && rounds < 3 {
            try flushSynchronously(dataFile: dataFile, useRing: useRing)
            rounds += 1
        }
        let clear = try state.withLock { (s) throws(BlockError) -> Bool in
            // Drop the hole extendFile left past the last allocated cluster.
            if s.w.fileEnd > s.w.hostEnd {
                try file.truncate(to: s.w.hostEnd)
                s.w.fileEnd = s.w.hostEnd
            }
            guard s.w.setDirtyBit else { return false }
            s.w.incompatible &= ~Qcow2Feature.dirty
            try writeHeaderField(at: 72, value: s.w.incompatible, width: 8)
            s.w.setDirtyBit = false
            return true
        }
        if clear {
            if useRing {
                let ring = try IoUringContext(depth: 4)
                defer { ring.close() }
                ring.enqueue(.fsync(fd: file.fd, dataOnly: true), tag: 0)
                try reapAll(ring, 1, what: "fdatasync")
            } else {
                try file.sync(dataOnly: true)
            }
        }
    }
}

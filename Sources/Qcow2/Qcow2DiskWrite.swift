import BlockIO
import BlockInspect

#if canImport(Glibc)
import Glibc
#endif

/// The synchronous write path of QCOW2 (`--engine=sync`, the command language's direct
/// calls, and what ``SyncQueue`` runs): the same plans as the io_uring queue, executed with
/// `pread`/`pwrite`.
extension Qcow2Disk {
    /// Runs a planner until it is not `.busy` (another thread's allocation of the same
    /// cluster is in flight: that thread's commit wakes this one through `metadata.changes`).
    func waitForPlan(_ body: () throws(BlockError) -> Qcow2WritePlan) throws(BlockError) -> [Qcow2ClusterWrite] {
        while true {
            let seen = metadata.changes.generation
            switch try body() {
            case .busy: metadata.changes.wait(past: seen)
            case let .ready(pieces, _): return pieces
            }
        }
    }

    /// Writes guest bytes synchronously: allocation and copy-on-write as planned, data with
    /// `pwrite`, then the L2 updates.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockError) {
        let pieces = try waitForPlan { () throws(BlockError) in try metadata.planWrite(offset: offset, length: UInt64(buffer.count)) }
        try perform(pieces, buffer: buffer, base: offset)
    }

    /// Makes a guest range read as zeroes (zero flags where whole clusters are covered).
    public func writeZeroes(at offset: UInt64, length: UInt64) throws(BlockError) {
        let hb = backing != nil
        let pieces = try waitForPlan { () throws(BlockError) in try metadata.planZero(offset: offset, length: length, hasBacking: hb) }
        try perform(pieces, buffer: nil, base: offset)
    }

    /// Discards a guest range: it reads as zeroes afterwards, and whole clusters are
    /// released (v3: zero flag; extended L2: zero bits; v2 without backing: unallocated).
    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        try writeZeroes(at: offset, length: length)
    }

    /// Writes dirty metadata back in order and datasyncs the image (and data file); through
    /// a private io_uring unless the sync engine was chosen.
    public func flush() throws(BlockError) {
        guard isWritable else { return }
        try metadata.flushSynchronously(dataFile: dataFile, useRing: usesRing)
    }

    /// Executes planned pieces in order; the first failure fails the call (later pieces'
    /// allocations are dropped).
    func perform(_ pieces: [Qcow2ClusterWrite], buffer: UnsafeRawBufferPointer?, base: UInt64) throws(BlockError) {
        var firstError: BlockError?
        for p in pieces {
            if firstError != nil { _ = try? metadata.commit(p.tokens, success: false); continue }
            do throws(BlockError) {
                if p.isDirect, let buffer {
                    let s = Int(p.guestOffset - base)
                    try dataDescriptor(host: p.hostOffset, length: Int(p.length), buffer: buffer.baseAddress! + s, write: true).write(UnsafeRawBufferPointer(rebasing: buffer[s..<(s + Int(p.length))]), at: p.hostOffset)
                } else {
                    let span = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(p.spanLength), alignment: 4096)
                    defer { span.deallocate() }
                    try fillSynchronously(p, span)
                    let dst = UnsafeMutableRawBufferPointer(rebasing: span[p.dataOffsetInSpan..<(p.dataOffsetInSpan + Int(p.length))])
                    if p.zeroData || buffer == nil {
                        dst.initializeMemory(as: UInt8.self, repeating: 0)
                    } else {
                        let s = Int(p.guestOffset - base)
                        dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer![s..<(s + Int(p.length))]))
                    }
                    try dataDescriptor(host: p.hostOffset, length: span.count, buffer: UnsafeRawPointer(span.baseAddress!), write: true).write(UnsafeRawBufferPointer(span), at: p.hostOffset)
                }
                _ = try metadata.commit(p.tokens, success: true)
            } catch let e {
                firstError = e
                _ = try? metadata.commit(p.tokens, success: false)
            }
        }
        if let firstError { throw firstError }
    }

    /// The descriptor for data I/O of `length` bytes at host offset `host` with `buffer`: the
    /// `O_DIRECT` one (`--direct`) when all three are 4 KiB-aligned (and, for a write, it was
    /// opened writable), else the buffered one. Every read and write path asks here.
    func dataDescriptor(host: UInt64, length: Int, buffer: UnsafeRawPointer, write: Bool) -> SystemFile {
        if let d = directDataFile, !write || d.writable, (host | UInt64(length) | UInt64(UInt(bitPattern: buffer))) & 4095 == 0 { return d }
        return dataFile
    }

    /// Fills the copy-on-write pieces of a span synchronously.
    func fillSynchronously(_ p: Qcow2ClusterWrite, _ span: UnsafeMutableRawBufferPointer) throws(BlockError) {
        for f in p.fills {
            let dst = UnsafeMutableRawBufferPointer(rebasing: span[f.spanOffset..<(f.spanOffset + f.length)])
            switch f.source {
            case .zero:
                dst.initializeMemory(as: UInt8.self, repeating: 0)
            case let .backing(g):
                try readBacking(into: dst, at: g)
            case let .host(off):
                try dataFile.read(into: dst, at: off)
            case let .compressed(d, off):
                let input = UnsafeMutableRawBufferPointer.allocate(byteCount: d.length, alignment: 512)
                defer { input.deallocate() }
                let cluster = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(header.clusterSize), alignment: 4096)
                defer { cluster.deallocate() }
                try file.read(into: input, at: d.hostOffset)
                try Qcow2Decompressor(type: header.compressionType).decompress(UnsafeRawBufferPointer(input), part: dst, offsetInCluster: off, scratch: cluster,
                                                                                 path: path, hostOffset: d.hostOffset, guestOffset: p.guestOffset)
            }
        }
    }
}

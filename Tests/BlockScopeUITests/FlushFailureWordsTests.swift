import BlockCore
@testable import BlockScopeUI
import Foundation
import Synchronization
import Testing
import TestSupport

/// A flush whose writes fail says FAILED with the errno in the words step mode and the
/// event log use, never "data and metadata are stable": the QCOW2 io_uring queue's real
/// events, with ENOSPC injected into the flush's host ops, explained by the live model.
@Suite struct FlushFailureWordsTests {
    /// Collects events (thread-safe).
    final class Log: IoEventSink, @unchecked Sendable {
        private let lock = Mutex<[IoEvent]>([])
        func publish(_ event: IoEvent) { lock.withLock { $0.append(event) } }
        var events: [IoEvent] { lock.withLock { $0 } }
    }

    /// Completions of `q` until `userData` has completed (bounded by progress, not time).
    static func complete(_ q: any AsyncIo, _ userData: UInt64) throws -> IoCompletion? {
        var spins = 0
        while spins < 100_000 {
            while let c = q.nextCompletion() { if c.userData == userData { return c } }
            if q.inFlight == 0 { return nil }
            try q.waitForCompletion()
            spins += 1
        }
        return nil
    }

    @Test("a flush that fails with ENOSPC is explained as FAILED with ENOSPC, never as stable; a flush that works still says stable")
    func failedFlushSaysFailed() throws {
        let dir = try TestSupport.makeTempDir("flush-enospc")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/f.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        let log = Log()
        var o = OpenOptions(writable: true, format: .qcow2)
        o.eventSink = log
        let disk = try openDisk(img, options: o)
        let q = try disk.makeQueue(QueueOptions(depth: 8, engine: .uring))
        guard let qa = q as? QcowAsync else { throw TestFailure("a .uring queue of a qcow2 is \(type(of: q)), not QcowAsync") }
        let buf = AlignedBuffer(count: 65536)
        buf.bytes.initializeMemory(as: UInt8.self, repeating: 0x5a)
        try q.write(at: 0x10000, from: UnsafeRawBufferPointer(buf.bytes), userData: 1)
        try q.submit()
        let w = try Self.complete(q, 1)
        #expect(w?.error == nil, "the data write: \(String(describing: w?.error))")
        // The flush writes the new refcounts, L2 table and L1 entry: the disk is full.
        qa.context.faultInjector = { op, _ in op.opcode == .writev || op.opcode == .fdatasync ? .error(errno: ENOSPC) : .none }
        try q.fsync(userData: 2)
        try q.submit()
        let f = try Self.complete(q, 2)
        #expect(f?.error?.errno == ENOSPC, "the flush: \(String(describing: f?.error))")
        qa.context.faultInjector = nil
        try q.fsync(userData: 3)
        try q.submit()
        let ok = try Self.complete(q, 3)
        #expect(ok != nil && ok?.error == nil, "the second flush: \(String(describing: ok?.error))")
        q.close()
        try disk.close()
        let live = LiveModel()
        live.context = ExplainContext(words: Qcow2EventWords(clusterBits: 16))
        for e in log.events { live.apply(e) }
        let lines = live.log
        let failed = lines.filter { $0.hasPrefix("req 0x2:") }
        #expect(failed.contains { $0.contains("flush FAILED with ENOSPC (No space left on device)") }, "\(failed.joined(separator: "\n"))")
        #expect(!failed.contains { $0.contains("flush complete") || $0.contains("data and metadata are stable") }, "\(failed.joined(separator: "\n"))")
        #expect(lines.contains { $0.hasPrefix("req 0x3:") && $0.contains("flush complete: data and metadata are stable") }, "\(lines.joined(separator: "\n"))")
        // Nothing was lost: qemu-io reads the write back; qemu-img check finds no corruption.
        let io = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x5a 0x10000 0x10000", img])
        #expect(io.status == 0 && !io.stdoutText.contains("Pattern verification failed"), "\(io.stdoutText)")
        let check = try TestSupport.qemuImg(["check", img])
        #expect(check.status == 0, "\(check.stdoutText)")
    }
}

import Testing
import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// PendingIo: N sub-ops, any completion order, exactly one guest completion, first error wins.
@Suite("PendingIo")
struct PendingIoTests {
    @Test("completes exactly once after all N sub-ops, in any order")
    func outOfOrder() throws {
        for n in [1, 2, 5, 17] {
            let p = PendingIo(id: 1, userData: 42, op: .write, guestOffset: 0, length: UInt64(n * 512))
            for i in 0..<n { p.add(opcode: .writev, hostOffset: UInt64(i * 65536), guestOffset: UInt64(i * 512), length: 512) }
            #expect(!p.seal())
            var completions = 0
            // Reverse-interleaved order.
            let order = (0..<n).filter { $0 % 2 == 1 }.reversed() + (0..<n).filter { $0 % 2 == 0 }
            for i in order { if p.finish(i, result: 512) { completions += 1 } }
            // A duplicate finish is ignored and does not complete again.
            if p.finish(0, result: 512) { completions += 1 }
            #expect(completions == 1)
            #expect(p.isComplete)
            #expect(try p.result.get() == n * 512)
        }
    }

    @Test("partial failure: the first error wins and the request still completes once")
    func partialFailure() {
        let p = PendingIo(id: 2, userData: 7, op: .read, guestOffset: 4096, length: 3 * 4096)
        for i in 0..<3 { p.add(opcode: .readv, hostOffset: UInt64(i) * 8192, guestOffset: 4096 + UInt64(i) * 4096, length: 4096) }
        p.seal()
        #expect(!p.finish(2, result: -EIO))
        #expect(!p.finish(0, result: -ENOSPC))
        #expect(p.finish(1, result: 4096))
        guard case let .failure(e) = p.result else { Issue.record("expected failure"); return }
        #expect(e.errno == EIO)
        #expect(e.guestOffset == 4096 + 2 * 4096)
        #expect(p.subOps.map(\.state) == [.failed, .done, .failed])
    }

    @Test("sub-ops that finish before the request is sealed complete it at seal time")
    func finishBeforeSeal() {
        let p = PendingIo(id: 3, userData: 1, op: .write, guestOffset: 0, length: 1024)
        let a = p.add(opcode: nil, hostOffset: 0, guestOffset: 0, length: 512)
        #expect(!p.finish(a, result: 512))
        let b = p.add(opcode: .writev, hostOffset: 512, guestOffset: 512, length: 512)
        p.markInFlight(b, sqeTag: 99)
        #expect(p.subOps[b].state == .inFlight && p.subOps[b].sqeTag == 99)
        #expect(!p.finish(b, result: 512))
        #expect(p.seal())
        #expect(!p.seal())
    }

    @Test("a request with no sub-ops completes when sealed")
    func empty() {
        let p = PendingIo(id: 4, userData: 1, op: .fsync, guestOffset: 0, length: 0)
        #expect(p.seal())
    }
}

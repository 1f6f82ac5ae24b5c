import Testing
import BlockIO
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Real io_uring on temp files: round trips, SQ full, short transfers, injected errors.
@Suite("IoUringContext")
struct IoUringContextTests {
    /// A temp file of `size` pseudo-random bytes, opened read-write.
    func tempFile(_ size: Int, seed: UInt64 = 7) throws -> (String, SystemFile, [UInt8]) {
        let dir = try TestSupport.makeTempDir("uring")
        let path = dir + "/f.bin"
        let bytes = TestSupport.pseudoRandomBytes(count: size, seed: seed)
        try TestSupport.writeFile(path, bytes)
        return (dir, try SystemFile(path: path, writable: true), bytes)
    }

    @Test("writev then readv round-trips the bytes, and fdatasync completes with 0")
    func roundTrip() throws {
        let (dir, f, _) = try tempFile(1 << 20)
        defer { TestSupport.removeTempDir(dir) }
        let ctx = try IoUringContext(depth: 8)
        let data = TestSupport.pseudoRandomBytes(count: 65536, seed: 99)
        let wbuf = AlignedBuffer(count: 65536)
        wbuf.bytes.copyBytes(from: data)
        ctx.enqueue(.write(fd: f.fd, offset: 12288, buffer: wbuf.baseAddress, length: 65536), tag: 1)
        ctx.enqueue(.fsync(fd: f.fd, dataOnly: true), tag: 2)
        ctx.submit()
        var results: [UInt64: Int32] = [:]
        while results.count < 2 { try ctx.reap(wait: true) { results[$0] = $1 } }
        #expect(results[1] == 65536)
        #expect(results[2] == 0)
        let rbuf = AlignedBuffer(count: 65536)
        ctx.enqueue(.read(fd: f.fd, offset: 12288, buffer: rbuf.baseAddress, length: 65536), tag: 3)
        var r3: Int32 = -1
        while r3 < 0 { try ctx.reap(wait: true) { if $0 == 3 { r3 = $1 } } }
        #expect(r3 == 65536)
        #expect(Array(rbuf.bytes) == data)
        // An independent read with pread agrees.
        #expect(try f.readBytes(at: 12288, count: 65536) == data)
    }

    @Test("ring depth 2 with 500 requests: every request completes exactly once")
    func sqFull() throws {
        let (dir, f, bytes) = try tempFile(500 * 512)
        defer { TestSupport.removeTempDir(dir) }
        let ctx = try IoUringContext(depth: 2)
        let buf = AlignedBuffer(count: 500 * 512)
        for i in 0..<500 {
            ctx.enqueue(.read(fd: f.fd, offset: UInt64(i * 512), buffer: buf.baseAddress + i * 512, length: 512), tag: UInt64(i))
        }
        ctx.submit()
        var seen = [Int](repeating: 0, count: 500)
        var spins = 0
        while seen.reduce(0, +) < 500 && spins < 100_000 {
            try ctx.reap(wait: true) { tag, res in
                #expect(res == 512)
                seen[Int(tag)] += 1
            }
            spins += 1
        }
        #expect(seen.allSatisfy { $0 == 1 })
        #expect(ctx.inFlight == 0)
        #expect(ctx.stats.backlogged > 0)
        #expect(Array(buf.bytes) == bytes)
    }

    @Test("an injected short read is resubmitted for the remainder and the data is whole")
    func shortRead() throws {
        let (dir, f, bytes) = try tempFile(65536)
        defer { TestSupport.removeTempDir(dir) }
        let ctx = try IoUringContext(depth: 4)
        ctx.faultInjector = { op, tag in tag == 5 ? .shortTransfer(bytes: 1000) : .none }
        let buf = AlignedBuffer(count: 65536)
        ctx.enqueue(.read(fd: f.fd, offset: 0, buffer: buf.baseAddress, length: 65536), tag: 5)
        var res: Int32? = nil
        while res == nil { try ctx.reap(wait: true) { _, r in res = r } }
        #expect(res == 65536)
        #expect(ctx.stats.shortResubmits >= 1)
        #expect(Array(buf.bytes) == bytes)
    }

    @Test("an injected short write is completed by resubmission")
    func shortWrite() throws {
        let (dir, f, _) = try tempFile(65536)
        defer { TestSupport.removeTempDir(dir) }
        let ctx = try IoUringContext(depth: 4)
        ctx.faultInjector = { _, _ in .shortTransfer(bytes: 513) }
        let data = TestSupport.pseudoRandomBytes(count: 8192, seed: 3)
        let buf = AlignedBuffer(count: 8192)
        buf.bytes.copyBytes(from: data)
        ctx.enqueue(.write(fd: f.fd, offset: 4096, buffer: buf.baseAddress, length: 8192), tag: 1)
        var res: Int32? = nil
        while res == nil { try ctx.reap(wait: true) { _, r in res = r } }
        #expect(res == 8192)
        #expect(try f.readBytes(at: 4096, count: 8192) == data)
    }

    @Test("an injected EIO surfaces as -EIO for that request only")
    func injectedError() throws {
        let (dir, f, _) = try tempFile(16384)
        defer { TestSupport.removeTempDir(dir) }
        let ctx = try IoUringContext(depth: 4)
        ctx.faultInjector = { _, tag in tag == 2 ? .error(errno: EIO) : .none }
        let buf = AlignedBuffer(count: 16384)
        for i in 0..<4 {
            ctx.enqueue(.read(fd: f.fd, offset: UInt64(i * 4096), buffer: buf.baseAddress + i * 4096, length: 4096), tag: UInt64(i))
        }
        var results: [UInt64: Int32] = [:]
        while results.count < 4 { try ctx.reap(wait: true) { results[$0] = $1 } }
        #expect(results[2] == -EIO)
        #expect(results[0] == 4096 && results[1] == 4096 && results[3] == 4096)
    }

    @Test("a read past end of file fills the rest with zeroes")
    func readPastEOF() throws {
        let (dir, f, bytes) = try tempFile(1000)
        defer { TestSupport.removeTempDir(dir) }
        let ctx = try IoUringContext(depth: 2)
        let buf = AlignedBuffer(count: 4096)
        buf.bytes.initializeMemory(as: UInt8.self, repeating: 0xee)
        ctx.enqueue(.read(fd: f.fd, offset: 0, buffer: buf.baseAddress, length: 4096), tag: 1)
        var res: Int32? = nil
        while res == nil { try ctx.reap(wait: true) { _, r in res = r } }
        #expect(res == 4096)
        #expect(Array(buf.bytes[0..<1000]) == bytes)
        #expect(buf.bytes[1000..<4096].allSatisfy { $0 == 0 })
    }

    @Test("a bad file descriptor fails the request with -EBADF, not a hang")
    func badFD() throws {
        let ctx = try IoUringContext(depth: 2)
        let buf = AlignedBuffer(count: 512)
        ctx.enqueue(.read(fd: 987, offset: 0, buffer: buf.baseAddress, length: 512), tag: 9)
        var res: Int32? = nil
        while res == nil { try ctx.reap(wait: true) { _, r in res = r } }
        #expect(res == -EBADF)
    }

    @Test("the kernel supports the opcodes blockscope needs")
    func probe() {
        #expect(IoUringContext.isSupported)
    }
}

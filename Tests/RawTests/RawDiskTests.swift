import Testing
import Foundation
import BlockCore
@testable import BlockIO
@testable import Raw
import TestSupport

/// RAW in process: its io_uring queue against qemu-io, and the identity mapping other formats
/// read a RAW backing file through.
@Suite struct RawDiskTests {
    @Test("writes through the io_uring queue land at the same file offsets: qemu-io read -P finds each pattern")
    func queueWritesAreReadBackByQemuIo() throws {
        let dir = try TestSupport.makeTempDir("raw-queue"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/d.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", img, "4M"])
        let disk = try openDisk(img, options: OpenOptions(writable: true, format: .raw))
        let q = try disk.makeQueue(QueueOptions(depth: 8, engine: .uring))
        let writes: [(offset: UInt64, length: Int, pattern: UInt8)] = [(0, 4096, 0x11), (1 << 20, 65536, 0x22), (3 << 20 + 512, 1024, 0x33)]
        let buffers = writes.map { w -> UnsafeMutableRawBufferPointer in
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: w.length, alignment: 4096)
            b.initializeMemory(as: UInt8.self, repeating: w.pattern)
            return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        for (i, w) in writes.enumerated() { try q.write(at: w.offset, from: UnsafeRawBufferPointer(buffers[i]), userData: UInt64(i)) }
        try q.submit()
        var seen = Set<UInt64>()
        while let c = try q.awaitCompletion() {
            #expect(c.error == nil)
            #expect(c.bytes == writes[Int(c.userData)].length)
            seen.insert(c.userData)
        }
        #expect(seen == [0, 1, 2])
        q.close()
        try disk.close()
        let cmds = writes.map { "read -P \($0.pattern) \($0.offset) \($0.length)" } + ["read -P 0 4096 4096"]
        let r = try TestSupport.qemuIo(img, format: "raw", cmds)
        #expect(r.status == 0, "\(r.stdoutText) \(r.stderr)")
        #expect(!r.stdoutText.contains("Pattern verification failed"), "\(r.stdoutText)")
    }

    @Test("a RAW disk states its identity mapping (its own file); every mapped format states none")
    func identityFileIsRawsOnly() throws {
        let dir = try TestSupport.makeTempDir("raw-identity"); defer { TestSupport.removeTempDir(dir) }
        let raw = dir + "/d.raw", q = dir + "/d.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", raw, "1M"])
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", q, "1M"])
        let r = try openDisk(raw)
        defer { try? r.close() }
        #expect(r.format == .raw)
        #expect(r.identityFile?.path == raw)
        let d = try openDisk(q)
        defer { try? d.close() }
        #expect(d.identityFile == nil)
    }
}

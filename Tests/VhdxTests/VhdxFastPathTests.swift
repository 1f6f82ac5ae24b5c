import BlockCore
@testable import BlockIO
@testable import BlockMap
@testable import Vhdx
import Foundation
import Testing
import TestSupport

/// The io_uring queue's fast path for requests inside one FULLY_PRESENT block.
@Suite("Vhdx fast path")
struct VhdxFastPathTests {
    private func roundTrip(_ q: any AsyncIo, write: Bool, at off: UInt64, _ buf: AlignedBuffer) throws {
        if write { try q.write(at: off, from: UnsafeRawBufferPointer(buf.bytes), userData: 7) } else { try q.read(at: off, into: buf.bytes, userData: 7) }
        try q.submit()
        let c = try q.awaitCompletion()
        #expect(c != nil && c?.error == nil, "\(String(describing: c?.error))")
    }

    @Test("the first write of a session into an allocated block still starts the session (new DataWriteGuid)")
    func firstWriteIntoAllocatedBlockStartsSession() throws {
        let dir = try TestSupport.makeTempDir("vhdx-fast")
        defer { TestSupport.removeTempDir(dir) }
        let path = dir + "/d.vhdx"
        var co = VhdxCreateOptions()
        co.blockSize = 1 << 20
        try VhdxFormat.create(path: path, size: 4 << 20, options: co)
        let buf = AlignedBuffer(count: 4096)
        buf.bytes.initializeMemory(as: UInt8.self, repeating: 0xA5)

        let first = try #require(try openDisk(path, options: OpenOptions(writable: true, format: .vhdx, engine: .uring)) as? VhdxDisk)
        let q1 = try first.makeQueue(QueueOptions(depth: 4, engine: .uring))
        try roundTrip(q1, write: true, at: 8192, buf)        // allocates block 0
        #expect(first.metadata.presentHostOffset(8192, 4096, write: true) != nil)
        q1.close()
        try first.close()

        let second = try #require(try openDisk(path, options: OpenOptions(writable: true, format: .vhdx, engine: .uring)) as? VhdxDisk)
        let before = second.metadata.currentHeader.dataWriteGuid
        #expect(second.metadata.presentHostOffset(0, 4096, write: true) == nil, "no fast write before the session starts")
        #expect(second.metadata.presentHostOffset(0, 4096, write: false) != nil)
        #expect(second.metadata.presentHostOffset((1 << 20) - 512, 1024, write: false) == nil, "ranges crossing a block take the mapped path")
        let q2 = try second.makeQueue(QueueOptions(depth: 4, engine: .uring))
        buf.bytes.initializeMemory(as: UInt8.self, repeating: 0x5A)
        try roundTrip(q2, write: true, at: 0, buf)
        #expect(second.metadata.currentHeader.dataWriteGuid != before)
        try roundTrip(q2, write: true, at: 4096, buf)        // fast path now
        let back = AlignedBuffer(count: 4096)
        for off: UInt64 in [0, 4096] {
            try roundTrip(q2, write: false, at: off, back)
            #expect(memcmp(back.baseAddress, buf.baseAddress, 4096) == 0)
        }
        try roundTrip(q2, write: false, at: 8192, back)
        #expect(back.bytes.allSatisfy { $0 == 0xA5 })
        q2.close()
        try second.close()
        #expect(try TestSupport.qemuImg(["check", "-f", "vhdx", path]).status == 0)
    }
}

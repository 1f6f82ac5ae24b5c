import BlockCore
@testable import BlockIO
@testable import Qcow2
import Foundation
import Testing
import TestSupport

/// Force unit access in every engine: a request armed with
/// ``AsyncIo/forceUnitAccess(userData:)`` is one request (one acceptance, one completion,
/// counted once) whose own flush runs inside it, under its id, before it completes.
@Suite("Queue core: force unit access is one request in every engine")
struct QueueCoreFuaTests {
    @Test("a FUA write and a FUA write-zeroes: one completion each, counted once, their flush under their own id before it; a plain write has none")
    func fuaIsOneRequestEverywhere() throws {
        let dir = try TestSupport.makeTempDir("queue-core-fua"); defer { TestSupport.removeTempDir(dir) }
        for (ext, fmt, opts) in [("raw", "raw", [String]()), ("qcow2", "qcow2", []), ("vhdx", "vhdx", ["-o", "block_size=1M"]), ("vhd", "vpc", ["-o", "subformat=dynamic"])] {
            for engine in [EngineKind.uring, .sync] {
                let what = "\(ext)/\(engine)"
                let img = dir + "/\(engine).\(ext)"
                try TestSupport.qemuImg(["create", "-q", "-f", fmt] + opts + [img, "8M"])
                var o = OpenOptions(writable: true, engine: engine)
                o.ignoreLocks = true
                let disk = try openDisk(img, options: o)
                let registry = InFlightRegistry()
                let log = Qcow2EventLog()
                let q = try disk.makeQueue(QueueOptions(depth: 8, queueID: 5, eventSink: log, inFlightRegistry: registry))
                let a = AlignedBuffer(count: 12288), b = AlignedBuffer(count: 4096)
                a.bytes.initializeMemory(as: UInt8.self, repeating: 0x7e)
                b.bytes.initializeMemory(as: UInt8.self, repeating: 0x3d)
                // Across a cluster and a block boundary (a split request in QCOW2, VHDX, VHD).
                q.forceUnitAccess(userData: 7)
                try q.write(at: 0x1ff000, from: UnsafeRawBufferPointer(a.bytes), userData: 7)
                q.forceUnitAccess(userData: 8)
                // Apart from the write: concurrent requests over one range complete in no set order.
                try q.writeZeroes(at: 0x380000, length: 4096, userData: 8)
                try q.write(at: 0x300000, from: UnsafeRawBufferPointer(b.bytes), userData: 9)
                try q.submit()
                var got: [UInt64: Int] = [:]
                while let c = try q.awaitCompletion() {
                    #expect(c.error == nil, "\(what): \(String(describing: c.error))")
                    #expect(got[c.userData] == nil, "\(what): request \(c.userData) completed twice")
                    got[c.userData] = c.bytes
                }
                #expect(got == [7: 12288, 8: 4096, 9: 4096], "\(what): \(got)")
                #expect(q.inFlight == 0 && registry.count == 0, "\(what)")
                let f = try #require(registry.queues().first?.figures)
                #expect(f.completed == 3 && f.writes == 2 && f.zeroes == 1 && f.flushes == 0 && f.engine.count == 3, "\(what): \(f)")
                for (u, op) in [(UInt64(7), GuestOp.write), (8, .zero)] {
                    let mine = log.events.filter { $0.request == u }
                    let requests = mine.filter { if case .guestRequest = $0.payload { return true } else { return false } }
                    let fua = mine.firstIndex { $0.payload == .fsyncPhase(.fuaFlush) } ?? -1
                    let stable = mine.firstIndex { $0.payload == .fsyncPhase(.completed) } ?? -1
                    let done = mine.indices.filter { if case let .guestCompleted(o, _, r, _) = mine[$0].payload { return o == op && r >= 0 } else { return false } }
                    #expect(requests.count == 1, "\(what) req \(u): \(mine)")
                    #expect(done.count == 1 && fua >= 0 && stable > fua && done[0] > stable, "\(what) req \(u): \(mine)")
                    if engine == .uring {
                        // The durable part: the flush's fsync SQE, under this request's id.
                        let sqe = mine.firstIndex {
                            if case let .sqeSubmitted(opcode, _, _, _) = $0.payload { return opcode == .fsync || opcode == .fdatasync } else { return false }
                        } ?? -1
                        #expect(sqe > fua && sqe < stable, "\(what) req \(u): \(mine)")
                    }
                }
                #expect(!log.events.contains { $0.request == 9 && $0.payload == .fsyncPhase(.fuaFlush) }, "\(what)")
                q.close()
                try disk.close()
                // The content, as qemu-io reads it.
                let io = try TestSupport.run("qemu-io", ["-f", fmt, "-c", "read -P 0x7e 0x1ff000 12k", "-c", "read -P 0 0x380000 4k",
                                                         "-c", "read -P 0x3d 0x300000 4k", img])
                #expect(io.status == 0 && !io.stdoutText.contains("fail"), "\(what): \(io.stdoutText)")
            }
        }
    }

    @Test("a request in parts (an NBD NO_HOLE write-zeroes as three 1 MiB writes): one write-zeroes accepted, counted and completed once with its whole length; with FUA one flush after every part")
    func partsAreOneRequestEverywhere() throws {
        let dir = try TestSupport.makeTempDir("queue-core-parts"); defer { TestSupport.removeTempDir(dir) }
        for (ext, fmt, opts) in [("raw", "raw", [String]()), ("qcow2", "qcow2", []), ("vhdx", "vhdx", ["-o", "block_size=1M"]), ("vhd", "vpc", ["-o", "subformat=dynamic"])] {
            for engine in [EngineKind.uring, .sync] {
                let what = "\(ext)/\(engine)"
                let img = dir + "/\(engine).\(ext)"
                try TestSupport.qemuImg(["create", "-q", "-f", fmt] + opts + [img, "8M"])
                try TestSupport.qemuIo(img, format: fmt, ["write -P 0x5a 0 8M"])
                var o = OpenOptions(writable: true, engine: engine)
                o.ignoreLocks = true
                let disk = try openDisk(img, options: o)
                let registry = InFlightRegistry()
                let log = Qcow2EventLog()
                let q = try disk.makeQueue(QueueOptions(depth: 8, queueID: 5, eventSink: log, inFlightRegistry: registry))
                let z = AlignedBuffer(count: 1 << 20)
                z.bytes.initializeMemory(as: UInt8.self, repeating: 0)
                for (u, at, fua) in [(UInt64(11), UInt64(1) << 20, false), (12, 5 << 20, true)] {
                    q.beginParts(userData: u, op: .zero, length: 3 << 20)
                    if fua { q.forceUnitAccess(userData: u) }
                    for i in 0..<3 { try q.write(at: at + UInt64(i) << 20, from: UnsafeRawBufferPointer(z.bytes), userData: u) }
                    q.endParts(userData: u)
                }
                try q.submit()
                var got: [UInt64: Int] = [:]
                while let c = try q.awaitCompletion() {
                    #expect(c.error == nil, "\(what): \(String(describing: c.error))")
                    #expect(got[c.userData] == nil, "\(what): request \(c.userData) completed twice")
                    got[c.userData] = c.bytes
                }
                #expect(got == [11: 3 << 20, 12: 3 << 20], "\(what): \(got)")
                #expect(q.inFlight == 0 && registry.count == 0, "\(what)")
                let f = try #require(registry.queues().first?.figures)
                #expect(f.completed == 2 && f.zeroes == 2 && f.writes == 0 && f.writeBytes == 0 && f.flushes == 0 && f.engine.count == 2, "\(what): \(f)")
                for (u, at) in [(UInt64(11), UInt64(1) << 20), (12, 5 << 20)] {
                    let mine = log.events.filter { $0.request == u }
                    let requests = mine.compactMap { e -> IoEventPayload? in if case .guestRequest = e.payload { return e.payload } else { return nil } }
                    #expect(requests == [.guestRequest(op: .zero, offset: at, length: 3 << 20)], "\(what) req \(u): \(requests)")
                    let done = mine.indices.filter { if case let .guestCompleted(o, _, r, _) = mine[$0].payload { return o == .zero && r == 3 << 20 } else { return false } }
                    #expect(done.count == 1 && done.first == mine.indices.last, "\(what) req \(u): \(mine)")
                    let fua = mine.firstIndex { $0.payload == .fsyncPhase(.fuaFlush) }
                    if u == 12 {
                        #expect(fua != nil && (done.first ?? -1) > (fua ?? Int.max), "\(what) req \(u): \(mine)")
                    } else {
                        #expect(fua == nil, "\(what) req \(u): \(mine)")
                    }
                }
                q.close()
                try disk.close()
                let io = try TestSupport.run("qemu-io", ["-f", fmt, "-c", "read -P 0x5a 0 1M", "-c", "read -P 0 1M 3M",
                                                         "-c", "read -P 0x5a 4M 1M", "-c", "read -P 0 5M 3M", img])
                #expect(io.status == 0 && !io.stdoutText.contains("fail"), "\(what): \(io.stdoutText)")
            }
        }
    }
}

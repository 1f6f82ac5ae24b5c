import BlockCore
@testable import BlockIO
@testable import Qcow2
import Foundation
import Synchronization
import Testing
import TestSupport

/// Every engine shares one queue core, so one script gives the same lifecycle everywhere: the
/// standard events (guestRequest, fsync phases, guestCompleted with bytes = length for
/// zero and discard) and completions per request are identical across RAW, QCOW2, VHDX, VHD
/// and the sync engine, and the content equals a raw mirror that qemu-io wrote.
@Suite("Queue core: one lifecycle in every engine")
struct QueueCoreConsistencyTests {
    /// One request of the script, with the qemu-io command that does the same on the mirror.
    enum Step {
        case write(UInt64, Int, UInt8)
        case zero(UInt64, UInt64)
        case discard(UInt64, UInt64)
        case fsync

        var qemuIo: String? {
            switch self {
            case let .write(o, n, p): return "write -P \(p) \(o) \(n)"
            case let .zero(o, n): return "write -z \(o) \(n)"
            case let .discard(o, n): return "discard \(o) \(n)"
            case .fsync: return nil
            }
        }
    }

    /// Writes inside one block, across a 64 KiB cluster / 1 MiB VHDX block / 2 MiB VHD block
    /// boundary, zeroes over written data, a discard of a never-written range followed by a
    /// write inside it, and flushes in between.
    static let script: [Step] = [
        .write(0, 65536, 0xa1),
        .write(0x101000, 4096, 0xb2),
        .fsync,
        .zero(0x4000, 0x2000),
        .write(0x1ff000, 12288, 0xc3),
        .discard(0x400000, 0x10000),
        .write(0x402000, 4096, 0xd4),
        .write(0x5000, 4096, 0xe5),
        .fsync,
    ]

    /// What a request looked like through the standard events and its completion.
    struct Trace: Equatable, CustomStringConvertible {
        var userData: UInt64
        var events: [String]
        var bytes: Int
        var failed: Bool
        var description: String { "req \(userData): \(events.joined(separator: " ")) bytes=\(bytes)\(failed ? " failed" : "")" }
    }

    /// The flush phases every engine publishes; a format may name its metadata steps
    /// (QCOW2: refcount blocks, L2, L1, ...) before `metadataWritten`.
    static let standardPhases: Set<String> = ["phase(metadataWritten)", "phase(fsyncSubmitted)", "phase(completed)"]

    /// The standard (format-independent) events of one request, in order.
    static func standard(_ events: [IoEvent], _ userData: UInt64) -> [String] {
        events.filter { $0.request == userData }.compactMap { e -> String? in
            if case let .fsyncPhase(p) = e.payload, !standardPhases.contains("phase(\(p))") { return nil }
            switch e.payload {
            case let .guestRequest(op, offset, length): return "request(\(op),\(offset),\(length))"
            case let .fsyncPhase(p): return "phase(\(p))"
            case let .guestCompleted(op, u, result, _): return "completed(\(op),\(u),\(result))"
            default: return nil
            }
        }
    }

    /// Runs the script one request at a time on `path`, returns each request's trace and
    /// checks that trackers are named by their request.
    static func run(_ path: String, engine: EngineKind) throws -> [Trace] {
        let log = Qcow2EventLog()
        var o = OpenOptions(writable: true, engine: engine)
        o.ignoreLocks = true
        let disk = try openDisk(path, options: o)
        let q = try disk.makeQueue(QueueOptions(depth: 8, queueID: 0, eventSink: log))
        let buf = AlignedBuffer(count: 65536)
        var traces: [Trace] = []
        for (i, s) in script.enumerated() {
            let u = UInt64(1000 + i)
            switch s {
            case let .write(o, n, p):
                buf.bytes.initializeMemory(as: UInt8.self, repeating: p)
                try q.write(at: o, from: UnsafeRawBufferPointer(rebasing: buf.bytes[0..<n]), userData: u)
            case let .zero(o, n): try q.writeZeroes(at: o, length: n, userData: u)
            case let .discard(o, n): try q.discard(at: o, length: n, userData: u)
            case .fsync: try q.fsync(userData: u)
            }
            try q.submit()
            let c = try #require(try q.awaitCompletion())
            #expect(c.userData == u)
            #expect(q.inFlight == 0)
            traces.append(Trace(userData: u, events: standard(log.events, u), bytes: c.bytes, failed: c.error != nil))
            // A format's named metadata steps all come before the standard `metadataWritten`.
            let phases = log.events.filter { $0.request == u }.compactMap { e -> String? in
                if case let .fsyncPhase(p) = e.payload { return "phase(\(p))" } else { return nil }
            }
            if let w = phases.firstIndex(of: "phase(metadataWritten)") {
                #expect(phases[w...].allSatisfy { Self.standardPhases.contains($0) }, "\(path): req \(u): \(phases)")
            }
        }
        for e in log.events {
            if case let .pendingCreated(id, _) = e.payload { #expect(id == e.request, "tracker \(id) of request \(e.request)") }
            if case let .pendingFinished(id, _) = e.payload { #expect(id == e.request, "tracker \(id) of request \(e.request)") }
        }
        q.close()
        try disk.close()
        return traces
    }

    @Test("the same script gives identical standard events and completions in every engine, and the content of a qemu-io mirror")
    func sameLifecycleEverywhere() throws {
        let dir = try TestSupport.makeTempDir("queue-core"); defer { TestSupport.removeTempDir(dir) }
        let size = "8M"
        let mirror = dir + "/mirror.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", mirror, size])
        try TestSupport.qemuIo(mirror, format: "raw", Self.script.compactMap(\.qemuIo))
        let expected = try TestSupport.readFile(mirror)
        let images: [(String, String, [String])] = [
            ("raw", "raw", []),
            ("qcow2", "qcow2", []),
            ("vhdx", "vhdx", ["-o", "block_size=1M"]),
            ("vhd", "vpc", ["-o", "subformat=dynamic"]),
        ]
        var reference: [Trace]? = nil
        for (ext, fmt, opts) in images {
            for engine in [EngineKind.uring, .sync] {
                let img = dir + "/\(engine).\(ext)"
                try TestSupport.qemuImg(["create", "-q", "-f", fmt] + opts + [img, size])
                let traces = try Self.run(img, engine: engine)
                // Zero and discard report their length; a flush reports 0; nothing failed.
                for (t, s) in zip(traces, Self.script) {
                    #expect(!t.failed, "\(ext)/\(engine): \(t)")
                    switch s {
                    case let .write(_, n, _): #expect(t.bytes == n, "\(ext)/\(engine): \(t)")
                    case let .zero(_, n), let .discard(_, n): #expect(t.bytes == Int(n), "\(ext)/\(engine): \(t)")
                    case .fsync:
                        #expect(t.bytes == 0)
                        #expect(t.events.filter { $0.hasPrefix("phase") } == ["phase(metadataWritten)", "phase(fsyncSubmitted)", "phase(completed)"],
                                "\(ext)/\(engine): \(t)")
                    }
                }
                if let reference {
                    #expect(traces == reference, "\(ext)/\(engine) differs from raw/uring:\n\(traces)\nvs\n\(reference)")
                } else {
                    reference = traces
                }
                // VHD rounds the size up to its CHS geometry: the tail past the mirror reads as zeroes.
                let got = try TestSupport.qemuRaw(img, format: fmt)
                let same = got.count >= expected.count && got.prefix(expected.count) == expected && got.dropFirst(expected.count).allSatisfy { $0 == 0 }
                #expect(same, "\(ext)/\(engine): guest content (\(got.count) bytes) differs from the qemu-io mirror (\(expected.count) bytes)")
                if fmt == "qcow2" || fmt == "vhdx" {
                    let check = try TestSupport.qemuImg(["check", "-f", fmt, img])
                    #expect(check.status == 0, "\(ext)/\(engine): \(check.stdoutText)")
                }
            }
        }
    }

    @Test("a request and its sub-operations are in the registry from accept until its completion is returned, in every engine")
    func registryFollowsEveryEngine() throws {
        let dir = try TestSupport.makeTempDir("queue-core-reg"); defer { TestSupport.removeTempDir(dir) }
        for (ext, fmt, opts) in [("raw", "raw", [String]()), ("qcow2", "qcow2", []), ("vhdx", "vhdx", ["-o", "block_size=1M"]), ("vhd", "vpc", [])] {
            for engine in [EngineKind.uring, .sync] {
                let img = dir + "/\(engine).\(ext)"
                try TestSupport.qemuImg(["create", "-q", "-f", fmt] + opts + [img, "8M"])
                var o = OpenOptions(writable: true, engine: engine)
                o.ignoreLocks = true
                let disk = try openDisk(img, options: o)
                let registry = InFlightRegistry()
                let q = try disk.makeQueue(QueueOptions(depth: 8, queueID: 5, inFlightRegistry: registry))
                let buf = AlignedBuffer(count: 12288)
                // Crosses a cluster and a block boundary (split in QCOW2, VHDX and VHD).
                try q.write(at: 0x1ff000, from: UnsafeRawBufferPointer(buf.bytes), userData: 7)
                try q.writeZeroes(at: 0, length: 4096, userData: 8)
                try q.fsync(userData: 9)
                let snap = registry.snapshot()
                #expect(snap.map(\.userData).sorted() == [7, 8, 9], "\(ext)/\(engine)")
                #expect(snap.allSatisfy { $0.queue == 5 && $0.subOps >= 1 })
                try q.submit()
                var n = 0
                while let c = try q.awaitCompletion() {
                    n += 1
                    #expect(c.error == nil, "\(ext)/\(engine): \(String(describing: c.error))")
                    #expect(!registry.snapshot().contains { $0.userData == c.userData })
                }
                #expect(n == 3)
                #expect(registry.count == 0)
                q.close()
                try disk.close()
            }
        }
    }
}

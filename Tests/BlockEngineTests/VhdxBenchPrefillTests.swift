import BlockCore
@testable import BlockEngine
import Foundation
import Testing
import TestSupport

@Suite("Vhdx bench prefill")
struct VhdxBenchPrefillTests {
    @Test("prefill allocates every block of a dynamic VHDX and leaves a clean log")
    func prefillAllocatesEveryVhdxBlock() throws {
        let dir = try TestSupport.makeTempDir("vhdx-prefill")
        defer { TestSupport.removeTempDir(dir) }
        let path = dir + "/d.vhdx"
        var co = VhdxCreateOptions()
        co.blockSize = 1 << 20
        try VhdxFormat.create(path: path, size: 5 << 20, options: co)
        let disk = try openDisk(path, options: OpenOptions(writable: true, format: .vhdx, engine: .uring))
        #expect(try (disk as! VhdxDisk).mapForRead(0, 5 << 20).allSatisfy { $0.kind == .zero })
        try BenchRunner.prefill(disk: disk)
        try disk.close()

        let again = try openDisk(path, options: OpenOptions(writable: false, format: .vhdx, engine: .sync))
        defer { try? again.close() }
        let v = try #require(again as? VhdxDisk)
        #expect(v.metadata.replayedEntries == 0)
        let regions = try v.mapForRead(0, 5 << 20)
        #expect(regions.allSatisfy { if case .data = $0.kind { return true } else { return false } })
        #expect(regions.reduce(0) { $0 + $1.length } == 5 << 20)
        for block in 0..<UInt64(5) { #expect(v.metadata.payloadEntry(block).state == .fullyPresent) }
    }

    @Test("prefill writes every byte of a RAW disk whose size is not a multiple of 1 MiB")
    func prefillCoversOddSizedRaw() throws {
        let dir = try TestSupport.makeTempDir("raw-prefill")
        defer { TestSupport.removeTempDir(dir) }
        let path = dir + "/d.raw"
        let size: UInt64 = (3 << 20) + 4096 + 512
        let f = try SystemFile(path: path, writable: true, create: true, truncate: true)
        try f.truncate(to: size)
        f.close()
        var o = OpenOptions(writable: true, format: .raw, engine: .uring)
        o.direct = false
        let disk = try openDisk(path, options: o)
        try BenchRunner.prefill(disk: disk)
        try disk.close()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(UInt64(bytes.count) == size)
        // Every 512-byte sector was written (the pattern is never an all-zero sector).
        let zeroSectors = stride(from: 0, to: bytes.count, by: 512).filter { s in bytes[s..<(s + 512)].allSatisfy { $0 == 0 } }
        #expect(zeroSectors.isEmpty, "unwritten sectors at \(zeroSectors.prefix(4))")
    }

    @Test("an unknown workload name is one invalid-argument error naming the known ones")
    func unknownWorkloadIsRejected() throws {
        let all = BenchWorkload.standard(ios: 10)
        #expect(throws: BlockError.self) { try BenchRunner.select(all, names: "4k-randwrite-qd32,nope") }
        var caught: BlockError?
        do { _ = try BenchRunner.select(all, names: "nope") } catch { caught = error }
        let e = try #require(caught)
        let text = e.description
        #expect(e.kind == .invalidArgument)
        #expect(text.contains("nope") && text.contains("128k-seqwrite-qd8"))
        #expect(try BenchRunner.select(all, names: nil).count == all.count)
        #expect(try BenchRunner.select(all, names: "128k-seqwrite-qd8,128k-seqwrite-qd8").map(\.name) == ["128k-seqwrite-qd8"])
    }
}

import BlockCore
@testable import BlockEngine
import Testing

@Suite("Engine stats and verify")
struct EngineStatsTests {
    @Test("percentiles are monotone and bracket the recorded values")
    func monotone() {
        var d = DirectionStats()
        var r = Xorshift64Star(seed: 9)
        for _ in 0..<50_000 { d.record(latencyNs: 1_000 + r.below(2_000_000), bytes: 4096) }
        let ps = DirectionStats.fioPercentiles.map { d.percentile($0) }
        #expect(zip(ps, ps.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(ps.first! >= 1_000 && ps.last! <= 2_002_000)
        #expect(d.ios == 50_000 && d.bytes == 50_000 * 4096)
        let json = FioReport.direction(d, elapsedNs: 1_000_000_000)
        #expect(json["total_ios"]?.intValue == 50_000)
        #expect(abs((json["bw"]?.intValue ?? 0) - 200_000) <= 1)
        guard case let .object(kv)? = json["clat_ns"]?["percentile"] else { Issue.record("no percentiles"); return }
        #expect(kv.first?.0 == "1.000000" && kv.last?.0 == "99.990000")
        let vals = kv.compactMap { $0.1.intValue }
        #expect(zip(vals, vals.dropFirst()).allSatisfy { $0 <= $1 })
    }

    @Test("merging threads adds counts and keeps the histogram")
    func merge() {
        var a = DirectionStats(), b = DirectionStats()
        for i in 1...100 { a.record(latencyNs: UInt64(i) * 1000, bytes: 1) }
        for i in 101...200 { b.record(latencyNs: UInt64(i) * 1000, bytes: 1) }
        a.merge(b)
        #expect(a.ios == 200)
        let p50 = a.percentile(50)
        #expect(p50 >= 99_000 && p50 <= 101_000)
    }

    @Test("checksums match known vectors")
    func checksums() {
        let s = Array("123456789".utf8)
        #expect(s.withUnsafeBytes { VerifyCRC32C.checksum($0) } == 0xE306_9283)
        let abc = Array("abc".utf8)
        #expect(abc.withUnsafeBytes { BlockPattern.hexBytes(VerifyMD5.digest($0)) } == "900150983cd24fb0d6963f7d28e17f72")
        let empty: [UInt8] = []
        #expect(empty.withUnsafeBytes { BlockPattern.hexBytes(VerifyMD5.digest($0)) } == "d41d8cd98f00b204e9800998ecf8427e")
    }

    @Test("a verified block passes; a flipped byte fails naming the offset and the byte")
    func verifyBlock() {
        // verify=pattern blocks carry no header (BlockPattern.checkBlock compares the pattern).
        for kind in VerifyKind.allCases where kind.hasHeader {
            let buf = AlignedBuffer(count: 4096)
            BlockPattern.fillVerified(buf.bytes, offset: 0x3000, seed: 77, kind: kind)
            #expect(BlockPattern.check(UnsafeRawBufferPointer(buf.bytes), offset: 0x3000, seeds: [77], path: "x") == nil)
            #expect(BlockPattern.check(UnsafeRawBufferPointer(buf.bytes), offset: 0x4000, seeds: [77], path: "x") != nil)
            #expect(BlockPattern.check(UnsafeRawBufferPointer(buf.bytes), offset: 0x3000, seeds: [78], path: "x") != nil)
            buf.bytes[200] ^= 0x01
            let e = BlockPattern.check(UnsafeRawBufferPointer(buf.bytes), offset: 0x3000, seeds: [77], path: "x")
            #expect(e?.guestOffset == 0x3000)
            #expect(e?.message.contains("0x30c8") == true)
            #expect(e?.message.contains(kind.rawValue) == true)
        }
    }
}

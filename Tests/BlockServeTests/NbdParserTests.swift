import Testing
@testable import BlockServe

/// The pure NBD parsers: well-formed input round-trips, malformed input gives nil or a
/// case, never a trap.
struct NbdParserTests {
    func requestBytes(magic: UInt32 = Nbd.requestMagic, flags: UInt16, type: UInt16, handle: UInt64, offset: UInt64, length: UInt32) -> [UInt8] {
        var w = NbdByteWriter()
        w.u32(magic); w.u16(flags); w.u16(type); w.u64(handle); w.u64(offset); w.u32(length)
        return w.bytes
    }

    @Test func requestHeaderParsesEveryField() {
        let b = requestBytes(flags: 1, type: 1, handle: 0x1122334455667788, offset: 4096, length: 512)
        #expect(NbdParser.request(b) == .request(NbdRequest(flags: 1, type: 1, handle: 0x1122334455667788, offset: 4096, length: 512)))
    }

    @Test func requestHeaderWithWrongMagicIsReportedNotTrusted() {
        let b = requestBytes(magic: 0xdeadbeef, flags: 0, type: 0, handle: 0, offset: 0, length: 0)
        #expect(NbdParser.request(b) == .badMagic(0xdeadbeef))
        #expect(NbdParser.request(Array(b.prefix(27))) == .needMore)
    }

    @Test func infoRequestRejectsLengthsThatDisagreeWithTheData() {
        var w = NbdByteWriter()
        w.u32(3); w.append(Array("abc".utf8)); w.u16(2); w.u16(3); w.u16(1)
        #expect(NbdParser.infoRequest(w.bytes) == NbdInfoRequest(name: "abc", requests: [3, 1]))
        #expect(NbdParser.infoRequest(Array(w.bytes.dropLast())) == nil)
        var huge = NbdByteWriter()
        huge.u32(0xffff_ffff); huge.u16(0)
        #expect(NbdParser.infoRequest(huge.bytes) == nil)
    }

    @Test func metaContextRequestParsesQueriesAndRejectsTrailingBytes() {
        var w = NbdByteWriter()
        w.u32(0); w.u32(2)
        w.u32(15); w.append(Array("base:allocation".utf8))
        w.u32(5); w.append(Array("qemu:".utf8))
        #expect(NbdParser.metaContextRequest(w.bytes) == NbdMetaContextRequest(name: "", queries: ["base:allocation", "qemu:"]))
        #expect(NbdParser.metaContextRequest(w.bytes + [0]) == nil)
        #expect(NbdParser.selectsBaseAllocation("base:"))
        #expect(!NbdParser.selectsBaseAllocation("qemu:dirty-bitmap:x"))
    }

    @Test func arbitraryBytesNeverTrapTheParsers() {
        var x: UInt64 = 0x9E3779B97F4A7C15
        for n in 0..<2000 {
            var b: [UInt8] = []
            for _ in 0..<(n % 64) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; b.append(UInt8(truncatingIfNeeded: x)) }
            _ = NbdParser.request(b)
            _ = NbdParser.optionHeader(b)
            _ = NbdParser.infoRequest(b)
            _ = NbdParser.metaContextRequest(b)
        }
    }

    @Test func encodersProduceTheDocumentedLayouts() {
        #expect(NbdEncoder.greeting().count == 18)
        #expect(NbdEncoder.optionReply(option: 7, type: Nbd.Reply.ack.rawValue).count == 20)
        #expect(NbdEncoder.infoExport(size: 1, flags: 1).count == 12)
        #expect(NbdEncoder.infoBlockSize(minimum: 1, preferred: 4096, maximum: 1 << 25).count == 14)
        #expect(NbdEncoder.exportNameReply(size: 1, flags: 1, noZeroes: false).count == 134)
        #expect(NbdEncoder.simpleReply(handle: 9, error: 0).count == 16)
        #expect(NbdEncoder.chunkHeader(handle: 9, type: .offsetData, flags: 1, length: 8).count == 20)
    }
}

import Testing
@testable import BlockServe
import TestSupport

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

    /// Big-endian integer of `n` bytes of `b` at `at`, decoded here from the byte order the
    /// protocol document gives (not through the parser's reader).
    func be(_ b: [UInt8], _ at: Int, _ n: Int) -> UInt64 { b[at..<(at + n)].reduce(0) { $0 << 8 | UInt64($1) } }

    @Test func arbitraryBytesGiveTheHeaderTheProtocolDefinesOrNeedMore() {
        var rng = SeededRandom(seed: 45)
        for n in 0..<2000 {
            var b = (0..<(n % 64)).map { _ in rng.byte() }
            // Half the inputs carry the request magic, so both outcomes are reached.
            if n % 2 == 0 && b.count >= 4 { b.replaceSubrange(0..<4, with: [0x25, 0x60, 0x95, 0x13]) }
            let want: NbdRequestParse
            if b.count < 28 {
                want = .needMore
            } else if be(b, 0, 4) != UInt64(Nbd.requestMagic) {
                want = .badMagic(UInt32(be(b, 0, 4)))
            } else {
                want = .request(NbdRequest(flags: UInt16(be(b, 4, 2)), type: UInt16(be(b, 6, 2)), handle: be(b, 8, 8),
                                           offset: be(b, 16, 8), length: UInt32(be(b, 24, 4))))
            }
            #expect(NbdParser.request(b) == want, "\(b)")
            let option = b.count < 16 ? nil : NbdOptionHeader(magic: be(b, 0, 8), option: UInt32(be(b, 8, 4)), length: UInt32(be(b, 12, 4)))
            #expect(NbdParser.optionHeader(b) == option, "\(b)")
            // Random bytes are info/meta-context data only by chance: whatever parses must be exactly what the bytes encode.
            if let info = NbdParser.infoRequest(b) { #expect(encodeInfo(info.name, info.requests) == b) }
            if let meta = NbdParser.metaContextRequest(b) { #expect(encodeMeta(meta.name, meta.queries) == b) }
        }
    }

    func encodeInfo(_ name: String, _ items: [UInt16]) -> [UInt8] {
        var w = NbdByteWriter()
        w.u32(UInt32(name.utf8.count)); w.append(Array(name.utf8)); w.u16(UInt16(items.count))
        for i in items { w.u16(i) }
        return w.bytes
    }

    func encodeMeta(_ name: String, _ queries: [String]) -> [UInt8] {
        var w = NbdByteWriter()
        w.u32(UInt32(name.utf8.count)); w.append(Array(name.utf8)); w.u32(UInt32(queries.count))
        for q in queries { w.u32(UInt32(q.utf8.count)); w.append(Array(q.utf8)) }
        return w.bytes
    }

    @Test func optionDataParsesWhenWellFormedAndIsRefusedWhenALengthDisagrees() {
        var rng = SeededRandom(seed: 46)
        func word() -> String { String((0..<rng.below(12)).map { _ in Character(UnicodeScalar(UInt8(97 + rng.below(26)))) }) }
        for n in 0..<1000 {
            let name = word()
            let items = (0..<rng.below(5)).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
            let queries = (0..<rng.below(5)).map { _ in word() }
            var info = encodeInfo(name, items), meta = encodeMeta(name, queries)
            // Damage a third of the inputs: one byte more or less than the lengths inside say.
            let damage = n % 3
            if damage == 1 { info.removeLast(); meta.removeLast() }
            if damage == 2 { info.append(rng.byte()); meta.append(rng.byte()) }
            #expect(NbdParser.infoRequest(info) == (damage == 0 ? NbdInfoRequest(name: name, requests: items) : nil), "\(info)")
            #expect(NbdParser.metaContextRequest(meta) == (damage == 0 ? NbdMetaContextRequest(name: name, queries: queries) : nil), "\(meta)")
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

import Testing
import BlockIO

/// The one byte reader: both byte orders, and one bounds rule (a field past the end throws,
/// naming the structure, the field and the length).
@Suite struct ByteReaderTests {
    @Test func readsBothByteOrdersAtTheirOffsets() throws {
        let r = ByteReader([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09], what: "test")
        #expect(try r.u8(8) == 0x09)
        #expect(try r.be16(0) == 0x0102)
        #expect(try r.le16(0) == 0x0201)
        #expect(try r.be32(1) == 0x0203_0405)
        #expect(try r.le32(1) == 0x0504_0302)
        #expect(try r.be64(1) == 0x0203_0405_0607_0809)
        #expect(try r.le64(0) == 0x0807_0605_0403_0201)
        #expect(try r.be(6, width: 3) == 0x07_0809)
        #expect(Array(try r.slice(7, 2)) == [0x08, 0x09])
    }

    @Test func aFieldPastTheEndThrowsNamingTheStructureAndTheField() {
        let r = ByteReader([UInt8](repeating: 0, count: 72), what: "qcow2 header", path: "/x.qcow2")
        #expect(throws: BlockError.self) { try r.be64(68) }
        do {
            _ = try r.be32(72)
            Issue.record("a read at the end did not throw")
        } catch let e {
            #expect(e.kind == .invalidFormat)
            #expect(e.path == "/x.qcow2")
            #expect(e.description.contains("qcow2 header: the 4-byte field at byte 72 lies past its end (72 bytes)"))
        }
        #expect(throws: BlockError.self) { try r.u8(-1) }
        #expect(throws: BlockError.self) { try r.slice(70, 3) }
        #expect(throws: BlockError.self) { try r.be16(Int.max) }
    }
}

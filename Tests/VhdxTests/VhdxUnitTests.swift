import Testing
import BlockCore
@testable import BlockIO
@testable import Vhdx

/// Unit tests of the VHDX building blocks: CRC-32C, GUIDs, BAT geometry, log entries.
@Suite struct VhdxUnitTests {
    @Test func crc32cMatchesTheCastagnoliCheckValue() {
        #expect(Crc32c.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(Crc32c.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    }

    /// RFC 3720 (iSCSI) B.4's vectors, and every length 0-80 at every start 0-7 (the
    /// eight-byte steps, their tails, and the field-zeroing split) against the bitwise definition.
    @Test func crc32cEightBytesAStepMatchesRfc3720AndTheBitwiseDefinition() {
        #expect(Crc32c.checksum([UInt8](repeating: 0xff, count: 32)) == 0x62A8_AB43)
        #expect(Crc32c.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(Crc32c.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
        func bitwise(_ b: [UInt8]) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for x in b {
                c ^= UInt32(x)
                for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            }
            return ~c
        }
        let data = (0..<96).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for start in 0..<8 {
            for length in 0...80 {
                let slice = Array(data[start..<(start + length)])
                #expect(Crc32c.checksum(slice) == bitwise(slice))
                #expect(Crc32c.checksum(data[start..<(start + length)]) == bitwise(slice))
                if length >= 4 {
                    let field = (length - 4) / 2
                    var zeroed = slice
                    for i in 0..<4 { zeroed[field + i] = 0 }
                    #expect(Crc32c.checksum(slice, zeroingFieldAt: field) == bitwise(zeroed))
                }
            }
        }
    }

    @Test func guidTextRoundTripsThroughMixedEndianBytes() {
        let g = VhdxGuid("2DC27766-F623-4200-9D64-115E9BFD4A08")
        #expect(g.bytes == [0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08])
        #expect(g.description == "2DC27766-F623-4200-9D64-115E9BFD4A08")
    }

    @Test func headerEncodesAndParsesWithItsChecksum() {
        let h = VhdxHeader(sequenceNumber: 7, fileWriteGuid: .random(), dataWriteGuid: .random(), logGuid: .zero,
                           logVersion: 0, version: 1, logLength: 1 << 20, logOffset: 1 << 20)
        var b = h.encode()
        #expect(VhdxHeader.parse(b) == h)
        b[100] ^= 1
        #expect(VhdxHeader.parse(b) == nil)
    }

    @Test func batGeometryInterleavesSectorBitmapEntriesByChunkRatio() throws {
        let g = try VhdxBatGeometry(virtualSize: 1 << 30, blockSize: 1 << 20, logicalSectorSize: 512, differencing: false, path: "t")
        #expect(g.chunkRatio == 4096)
        #expect(g.dataBlocks == 1024)
        #expect(g.totalEntries == 1024)
        #expect(g.payloadIndex(4096) == 4097)
        #expect(g.bitmapIndex(0) == 4096)
        let d = try VhdxBatGeometry(virtualSize: 64 << 20, blockSize: 32 << 20, logicalSectorSize: 512, differencing: true, path: "t")
        #expect(d.chunkRatio == 128)
        #expect(d.totalEntries == 129)
    }

    @Test func chunkRatioOverflowIsAnErrorNotATrap() {
        #expect(throws: BlockError.self) {
            _ = try VhdxBatGeometry(virtualSize: 1 << 30, blockSize: 1 << 20, logicalSectorSize: 1 << 60, differencing: false, path: "t")
        }
        #expect(throws: BlockError.self) {
            _ = try VhdxBatGeometry(virtualSize: 1 << 30, blockSize: 3 << 20, logicalSectorSize: 512, differencing: false, path: "t")
        }
    }

    @Test func logEntryIsFoundAsTheActiveSequenceAndReplaysItsPages() {
        let guid = VhdxGuid.random()
        var page = [UInt8](repeating: 0, count: 4096)
        for i in 0..<4096 { page[i] = UInt8(truncatingIfNeeded: i * 7) }
        var log = [UInt8](repeating: 0, count: 1 << 20)
        let e1 = VhdxLog.buildEntry(pages: [(0x200000, page)], sequence: 5, tail: 0, guid: guid, fileSize: 1 << 24)
        log[0..<e1.count] = ArraySlice(e1)
        var page2 = page
        page2[0] = 0xee
        let e2 = VhdxLog.buildEntry(pages: [(0x200000, page2), (0x201000, page)], sequence: 6, tail: 0, guid: guid, fileSize: 1 << 24)
        log[e1.count..<(e1.count + e2.count)] = ArraySlice(e2)
        let seq = VhdxLog.activeSequence(log, guid: guid)
        #expect(seq.map(\.sequence) == [5, 6])
        let overlay = VhdxLog.overlay(seq)
        #expect(overlay[0x200000] == page2)
        #expect(overlay[0x201000] == page)
        #expect(VhdxLog.activeSequence(log, guid: .random()).isEmpty)
        log[e1.count + 5000] ^= 0xff
        #expect(VhdxLog.activeSequence(log, guid: guid).map(\.sequence) == [5])
    }

    @Test func parentLocatorRoundTrips() throws {
        let kv = ["relative_path": "../base.vhdx", "absolute_win32_path": "/tmp/base.vhdx", "parent_linkage": "{0}"]
        #expect(try VhdxMetadataItems.parseParentLocator(VhdxMetadataItems.encodeParentLocator(kv), path: "t") == kv)
    }
}

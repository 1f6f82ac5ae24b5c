import BlockCore
@testable import BlockIO
@testable import Qcow2
import Foundation
import Testing
import TestSupport

/// Unit tests of the QCOW2 parsing and encoding pieces, on synthetic bytes.
@Suite("QCOW2 units")
struct Qcow2UnitTests {
    /// A v3 header of `length` bytes with the given fields (tables at 0x10000.. in a 1 MiB file).
    static func header(version: UInt32 = 3, clusterBits: UInt32 = 16, size: UInt64 = 1 << 20, l1Size: UInt32 = 1,
                       incompatible: UInt64 = 0, refcountOrder: UInt32 = 4, headerLength: UInt32 = 112,
                       compression: UInt8 = 0) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 4096)
        storeBE(0x5146_49fb, into: &b, at: 0, width: 4)
        storeBE(UInt64(version), into: &b, at: 4, width: 4)
        storeBE(UInt64(clusterBits), into: &b, at: 20, width: 4)
        storeBE(size, into: &b, at: 24, width: 8)
        storeBE(UInt64(l1Size), into: &b, at: 36, width: 4)
        storeBE(0x30000, into: &b, at: 40, width: 8)
        storeBE(0x10000, into: &b, at: 48, width: 8)
        storeBE(1, into: &b, at: 56, width: 4)
        if version == 3 {
            storeBE(incompatible, into: &b, at: 72, width: 8)
            storeBE(UInt64(refcountOrder), into: &b, at: 96, width: 4)
            storeBE(UInt64(headerLength), into: &b, at: 100, width: 4)
            b[104] = compression
        }
        return b
    }

    @Test("v2 and v3 headers parse; v2 implies 16-bit refcounts and a 72-byte header")
    func headersParse() throws {
        let v2 = try Qcow2Header.parse(Self.header(version: 2), fileSize: 1 << 20, path: "t")
        #expect(v2.version == 2 && v2.refcountBits == 16 && v2.extensionsStart == 72 && v2.clusterSize == 65536)
        let v3 = try Qcow2Header.parse(Self.header(incompatible: Qcow2Feature.compressionType | Qcow2Feature.extendedL2, compression: 1), fileSize: 1 << 20, path: "t")
        #expect(v3.compressionName == "zstd" && v3.extendedL2 && v3.l2EntryBytes == 16 && v3.subclusterSize == 2048)
    }

    @Test("invalid header fields are refused with the field named", arguments: [
        (header(headerLength: 96), "header_length 96"),
        (header(refcountOrder: 7), "refcount_order 7"),
        (header(clusterBits: 8), "cluster_bits 8"),
        (header(clusterBits: 13, incompatible: Qcow2Feature.extendedL2), "extended L2"),
        (header(compression: 1), "compression type 1"),
        (header(size: 1 << 40), "too small"),
        (header(l1Size: 0xffff_ffff), "too large"),
    ])
    func badHeadersAreRefused(_ bytes: [UInt8], _ expected: String) {
        #expect {
            _ = try Qcow2Header.parse(bytes, fileSize: 1 << 20, path: "t")
        } throws: { e in
            (e as? BlockError)?.description.contains(expected) == true
        }
    }

    @Test("refcount entries round-trip for every width from 1 to 64 bits, packed LSB first below a byte")
    func refcountsRoundTrip() {
        for order in UInt32(0)...6 {
            var block = [UInt8](repeating: 0, count: 512)
            let n = 512 * 8 >> Int(order)
            let max = Qcow2Refcounts.maxValue(order: order)
            for i in 0..<n { Qcow2Refcounts.set(&block, index: i, order: order, value: UInt64(i * 7) & max) }
            for i in 0..<n { #expect(Qcow2Refcounts.get(block, index: i, order: order) == UInt64(i * 7) & max) }
        }
        var one = [UInt8](repeating: 0, count: 1)
        Qcow2Refcounts.set(&one, index: 1, order: 0, value: 1)
        #expect(one[0] == 0b10, "1-bit refcount 1 is bit 1 of byte 0 (LSB first)")
        #expect(Qcow2Refcounts.entriesPerBlock(clusterBits: 16, refcountOrder: 4) == 32768)
    }

    @Test("a compressed descriptor splits into offset and additional sectors at bit 62-(cluster_bits-8)")
    func compressedDescriptorDecodes() {
        // 64 KiB clusters: x = 54 offset bits; 3 additional sectors; offset 0x50011.
        let d = Qcow2CompressedDescriptor(entry: (3 << 54) | 0x50011, clusterBits: 16)
        #expect(d.hostOffset == 0x50011 && d.length == 4 * 512 - 0x11)
        let small = Qcow2CompressedDescriptor(entry: 0x200, clusterBits: 9)
        #expect(small.hostOffset == 0x200 && small.length == 512)
    }

    @Test("L2 entry types follow QEMU: zero flag, COPIED offset 0 with a data file, subcluster bitmaps")
    func l2EntryTypes() {
        let normal = Qcow2L2Entry(entry: Qcow2Entry.copied | 0x50000, bitmap: 0)
        #expect(normal.type(subcluster: 0, extendedL2: false, externalData: false) == .normal)
        #expect(Qcow2L2Entry(entry: 0x50001, bitmap: 0).type(subcluster: 0, extendedL2: false, externalData: false) == .zeroAlloc)
        #expect(Qcow2L2Entry(entry: 1, bitmap: 0).type(subcluster: 0, extendedL2: false, externalData: false) == .zeroPlain)
        #expect(Qcow2L2Entry(entry: Qcow2Entry.copied, bitmap: 0).type(subcluster: 0, extendedL2: false, externalData: true) == .normal)
        #expect(Qcow2L2Entry(entry: Qcow2Entry.copied, bitmap: 0).type(subcluster: 0, extendedL2: false, externalData: false) == .unallocatedPlain)
        let sub = Qcow2L2Entry(entry: 0x50000, bitmap: 0b01 | (0b10 << 32))
        #expect(sub.type(subcluster: 0, extendedL2: true, externalData: false) == .normal)
        #expect(sub.type(subcluster: 1, extendedL2: true, externalData: false) == .zeroAlloc)
        #expect(sub.type(subcluster: 2, extendedL2: true, externalData: false) == .unallocatedAlloc)
        #expect(Qcow2L2Entry(entry: 0, bitmap: 1).type(subcluster: 0, extendedL2: true, externalData: false) == .invalid)
        #expect(Qcow2L2Entry(entry: 0x50000, bitmap: 1 | (1 << 32)).type(subcluster: 5, extendedL2: true, externalData: false) == .invalid)
    }

    @Test("adjacent read regions merge only when contiguous on the host (or both zero/backing)")
    func readMappingsMerge() {
        var list: [ReadMapping] = []
        ReadMapping.append(ReadMapping(guestOffset: 0, length: 512, kind: .data(hostOffset: 0x50000)), to: &list)
        ReadMapping.append(ReadMapping(guestOffset: 512, length: 512, kind: .data(hostOffset: 0x50200)), to: &list)
        ReadMapping.append(ReadMapping(guestOffset: 1024, length: 512, kind: .data(hostOffset: 0x90000)), to: &list)
        ReadMapping.append(ReadMapping(guestOffset: 1536, length: 512, kind: .zero), to: &list)
        ReadMapping.append(ReadMapping(guestOffset: 2048, length: 512, kind: .zero), to: &list)
        #expect(list.map(\.length) == [1024, 512, 1024])
    }
}

import BlockCore
import Foundation
import Testing
import TestSupport

/// Malformed QCOW2 images: every one fails with a BlockError that names the problem,
/// never a crash, and without allocating what a size field claims.
@Suite("QCOW2 malformed images")
struct Qcow2MalformedTests {
    /// Writes big-endian `value` of `width` bytes at `offset` of a file.
    static func patch(_ path: String, at offset: UInt64, _ value: UInt64, width: Int) throws {
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: offset)
        try h.write(contentsOf: Data((0..<width).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * (width - 1 - $0))) }))
    }

    static func readBE64(_ path: String, at offset: UInt64) throws -> UInt64 {
        let d = try TestSupport.readFile(path)
        return (0..<8).reduce(UInt64(0)) { $0 << 8 | UInt64(d[Int(offset) + $1]) }
    }

    /// A small v3 image with data in its first clusters (L1 at 0x30000, 64 KiB clusters).
    static func goodImage(_ dir: String, compressed: Bool = false) throws -> String {
        let img = dir + "/good.qcow2"
        try Qcow2Oracle.create(img, "4M")
        try Qcow2Oracle.io(img, ["write -P 1 0 128k"])
        if !compressed { return img }
        let c = dir + "/goodc.qcow2"
        try TestSupport.qemuImg(["convert", "-q", "-c", "-O", "qcow2", img, c])
        return c
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var compressed = false
        var expect: String
        var edit: @Sendable (String) throws -> Void
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "truncated header", expect: "too short for a v3 header") { p in
            let h = try FileHandle(forUpdating: URL(fileURLWithPath: p)); try h.truncate(atOffset: 100); try h.close()
        },
        Case(name: "truncated tables (file cut before the L2 table)", expect: "lies beyond the end of the file") { p in
            let h = try FileHandle(forUpdating: URL(fileURLWithPath: p)); try h.truncate(atOffset: 0x40000); try h.close()
        },
        Case(name: "L1 table past EOF", expect: "L1 table at 0x10000000") { try patch($0, at: 40, 0x1000_0000, width: 8) },
        Case(name: "L1 table unaligned", expect: "is not aligned") { try patch($0, at: 40, 0x30008, width: 8) },
        Case(name: "huge l1_size", expect: "too large") { try patch($0, at: 36, 0xffff_ffff, width: 4) },
        Case(name: "l1_size the file cannot back", expect: "lies beyond the end of the file") { try patch($0, at: 36, 4_000_000, width: 4) },
        Case(name: "refcount table past EOF", expect: "refcount table at") { try patch($0, at: 48, 0x7fff_0000, width: 8) },
        Case(name: "refcount_order 7", expect: "refcount_order 7") { try patch($0, at: 96, 7, width: 4) },
        Case(name: "header_length < 104", expect: "header_length 96") { try patch($0, at: 100, 96, width: 4) },
        Case(name: "cluster_bits out of range", expect: "cluster_bits 40") { try patch($0, at: 20, 40, width: 4) },
        Case(name: "huge virtual size", expect: "too small") { try patch($0, at: 24, 1 << 62, width: 8) },
        Case(name: "unknown incompatible feature bit", expect: "unsupported incompatible feature") { try patch($0, at: 72, 1 << 9, width: 8) },
        Case(name: "L2 table past EOF", expect: "L2 table at 0x7000000") { try patch($0, at: 0x30000, (1 << 63) | 0x700_0000, width: 8) },
        Case(name: "L2 table unaligned", expect: "not cluster-aligned") { try patch($0, at: 0x30000, (1 << 63) | 0x40200, width: 8) },
        Case(name: "data cluster unaligned", expect: "not cluster-aligned") { p in
            let l2 = try readBE64(p, at: 0x30000) & 0x00ff_ffff_ffff_fe00
            try patch(p, at: l2, (1 << 63) | 0x50200, width: 8)
        },
        Case(name: "compressed descriptor past EOF", compressed: true, expect: "beyond the end of the file") { p in
            let l2 = try readBE64(p, at: 0x30000) & 0x00ff_ffff_ffff_fe00
            try patch(p, at: l2, (1 << 62) | 0x3fff_f000_0000, width: 8)
        },
        Case(name: "compressed descriptor at the wrong offset", compressed: true, expect: "compressed cluster at") { p in
            let l2 = try readBE64(p, at: 0x30000) & 0x00ff_ffff_ffff_fe00
            try patch(p, at: l2, try readBE64(p, at: l2) + 17, width: 8)
        },
    ]

    @Test("a malformed image fails cat with a BlockError naming the problem, never a crash", arguments: cases)
    func malformedImageFailsCleanly(_ c: Case) throws {
        let dir = try TestSupport.makeTempDir("qcow2-bad")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Self.goodImage(dir, compressed: c.compressed)
        try c.edit(img)
        for engine in ["auto", "sync"] {
            let r = try TestSupport.blockscope(["cat", "--engine", engine, img])
            #expect(r.status == 1, "\(c.name) (\(engine)): exit \(r.status) (a crash is 128+signal): \(r.stderr.prefix(400))")
            #expect(r.stderr.contains(c.expect), "\(c.name) (\(engine)): stderr lacks '\(c.expect)': \(r.stderr.prefix(400))")
            #expect(r.stderr.contains("good"), "\(c.name): the error names the image: \(r.stderr.prefix(200))")
        }
        // map and check must not crash either (they may fail or report corruption).
        for cmd in ["map", "check", "info"] {
            let r = try TestSupport.blockscope([cmd, img])
            #expect(r.status < 128, "\(c.name): \(cmd) crashed (\(r.status)): \(r.stderr.prefix(300))")
        }
    }

    @Test("cyclic backing chains are refused with the loop spelled out")
    func cyclicBackingIsRefused() throws {
        let dir = try TestSupport.makeTempDir("qcow2-cycle")
        defer { TestSupport.removeTempDir(dir) }
        let a = dir + "/a.qcow2", b = dir + "/b.qcow2"
        try Qcow2Oracle.create(a, "1M", extra: ["-u", "-b", "b.qcow2", "-F", "qcow2"])
        try Qcow2Oracle.create(b, "1M", extra: ["-u", "-b", "a.qcow2", "-F", "qcow2"])
        let r = try TestSupport.blockscope(["info", a])
        #expect(r.status == 1 && r.stderr.contains("backing chain loop"), "\(r.stderr)")
        let self_ = dir + "/self.qcow2"
        try Qcow2Oracle.create(self_, "1M", extra: ["-u", "-b", "b.qcow2", "-F", "qcow2"])
        try Self.patchBackingName(self_, "self.qcow2")
        let s = try TestSupport.blockscope(["cat", self_])
        #expect(s.status == 1 && s.stderr.contains("backing chain loop"), "\(s.stderr)")
    }

    @Test("a missing backing file is a notFound error naming the resolved path")
    func missingBackingIsReported() throws {
        let dir = try TestSupport.makeTempDir("qcow2-nobacking")
        defer { TestSupport.removeTempDir(dir) }
        let a = dir + "/a.qcow2"
        try Qcow2Oracle.create(a, "1M", extra: ["-u", "-b", "gone.qcow2", "-F", "qcow2"])
        let r = try TestSupport.blockscope(["cat", a])
        #expect(r.status == 1 && r.stderr.contains("gone.qcow2"), "\(r.stderr)")
    }

    /// Overwrites the backing file name in place (same length or shorter, size field updated).
    static func patchBackingName(_ path: String, _ name: String) throws {
        let off = try readBE64(path, at: 8)
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try h.seek(toOffset: off)
        try h.write(contentsOf: Data(name.utf8))
        try h.close()
        try patch(path, at: 16, UInt64(name.utf8.count), width: 4)
    }
}

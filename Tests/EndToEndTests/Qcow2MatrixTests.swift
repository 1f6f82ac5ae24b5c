import BlockCore
import Foundation
import Testing
import TestSupport

/// The QCOW2 feature matrix of issue 4: images made by qemu-img/qemu-io, read by the built
/// binary, compared with qemu-img (convert -O raw, map, check, info) in the same run.
@Suite("QCOW2 matrix against qemu-img")
struct Qcow2MatrixTests {
    /// A standard write pattern: partial clusters, a zeroed range, a discarded range.
    static let pattern = ["write -P 0x11 0 100k", "write -P 0x22 1M 3000", "write -z 2M 512k",
                          "write -P 0x33 5M 1M", "discard 5M 64k", "write -P 0x44 7340544 1024"]

    struct Layout: Sendable, CustomTestStringConvertible {
        var cluster: String
        var refcountBits: Int
        var compat: String
        var testDescription: String { "cluster \(cluster), refcount_bits \(refcountBits), compat \(compat)" }
    }

    static let layouts: [Layout] = {
        var out: [Layout] = []
        for c in ["512", "4k", "64k", "2M"] {
            for r in [1, 2, 4, 8, 16, 32, 64] where c == "64k" || [1, 16, 64].contains(r) {
                out.append(Layout(cluster: c, refcountBits: r, compat: "1.1"))
            }
            out.append(Layout(cluster: c, refcountBits: 16, compat: "0.10"))
        }
        return out
    }()

    @Test("cat, map, check and info equal qemu-img for every cluster size and refcount width", arguments: layouts)
    func layoutMatchesQemu(_ l: Layout) throws {
        let dir = try TestSupport.makeTempDir("qcow2-layout")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/img.qcow2"
        try Qcow2Oracle.create(img, "8M", options: "cluster_size=\(l.cluster),refcount_bits=\(l.refcountBits),compat=\(l.compat)")
        try Qcow2Oracle.io(img, Self.pattern)
        try Qcow2Oracle.expectAllMatch(img, engines: l.cluster == "64k" ? ["auto", "sync"] : ["auto"])
    }

    @Test("compressed images (zlib and zstd, v2 and v3, 4k..2M clusters) read like qemu-img", arguments: [
        ("zlib", "4k", "1.1"), ("zlib", "64k", "1.1"), ("zlib", "2M", "1.1"), ("zlib", "64k", "0.10"),
        ("zstd", "4k", "1.1"), ("zstd", "64k", "1.1"), ("zstd", "2M", "1.1"),
    ])
    func compressedMatchesQemu(_ type: String, _ cluster: String, _ compat: String) throws {
        let dir = try TestSupport.makeTempDir("qcow2-comp")
        defer { TestSupport.removeTempDir(dir) }
        let src = dir + "/src.raw", img = dir + "/c.qcow2"
        try Qcow2Oracle.mixedRaw(src, size: 3 << 20, seed: 7)
        var o = "cluster_size=\(cluster),compat=\(compat)"
        if compat == "1.1" { o += ",compression_type=\(type)" }
        try TestSupport.qemuImg(["convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", o, src, img])
        // A partial overwrite makes a mix of compressed and normal clusters.
        try Qcow2Oracle.io(img, ["write -P 0x5a 100k 8k"])
        try Qcow2Oracle.expectAllMatch(img, engines: ["auto", "sync"])
    }

    @Test("extended L2 with subcluster writes, zeroes and discards reads like qemu-img", arguments: ["16k", "64k", "2M"])
    func extendedL2MatchesQemu(_ cluster: String) throws {
        let dir = try TestSupport.makeTempDir("qcow2-ext")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/e.qcow2"
        try Qcow2Oracle.create(img, "8M", options: "extended_l2=on,cluster_size=\(cluster)")
        try Qcow2Oracle.io(img, ["write -P 1 0 4k", "write -P 2 100k 3k", "write -z 1M 8k", "write -P 3 2M 1M",
                                 "write -z 2200k 4k", "discard 2400k 64k"])
        try Qcow2Oracle.expectAllMatch(img, engines: ["auto", "sync"])
        // An overlay with extended L2 over it: unallocated subclusters fall through to the backing file.
        let top = dir + "/top.qcow2"
        try Qcow2Oracle.create(top, "8M", options: "extended_l2=on,cluster_size=64k", extra: ["-b", img, "-F", "qcow2"])
        try Qcow2Oracle.io(top, ["write -P 9 2052k 4k", "write -z 2M 2k"])
        try Qcow2Oracle.expectAllMatch(top)
    }

    @Test("external data files (data_file and data_file_raw) read like qemu-img", arguments: [false, true])
    func externalDataFileMatchesQemu(_ raw: Bool) throws {
        let dir = try TestSupport.makeTempDir("qcow2-df")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/d.qcow2"
        // An absolute name: qemu-img 7.2 resolves a relative data_file against its working directory.
        try Qcow2Oracle.create(img, "4M", options: "data_file=\(dir)/data.raw" + (raw ? ",data_file_raw=on" : ""))
        try Qcow2Oracle.io(img, ["write -P 5 64k 128k", "write -P 6 3M 512", "write -z 1M 64k"])
        try Qcow2Oracle.expectAllMatch(img)
    }

    @Test("backing chains (raw with holes, shorter raw, qcow2 over qcow2) read and map like qemu-img")
    func backingChainsMatchQemu() throws {
        let dir = try TestSupport.makeTempDir("qcow2-chain")
        defer { TestSupport.removeTempDir(dir) }
        // A sparse raw base: holes show up in map as zero extents at depth 1.
        let base = dir + "/base.raw"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", base, "3M"])
        try TestSupport.qemuIo(base, format: "raw", ["write -P 0x77 1M 128k"])
        let mid = dir + "/mid.qcow2"
        try Qcow2Oracle.create(mid, "6M", extra: ["-b", "base.raw", "-F", "raw"])   // relative name, longer than its base
        try Qcow2Oracle.io(mid, ["write -P 1 1M 64k", "write -z 2M 4k"])
        try Qcow2Oracle.expectAllMatch(mid)
        let top = dir + "/top.qcow2"
        try Qcow2Oracle.create(top, "8M", options: "cluster_size=4k", extra: ["-b", "mid.qcow2", "-F", "qcow2"])
        try Qcow2Oracle.io(top, ["write -P 3 0 4k", "write -P 4 5M 8k"])
        try Qcow2Oracle.expectAllMatch(top, engines: ["auto", "sync"])
    }

    @Test("backing chains through VHDX and VHD images read and map like qemu-img", arguments: ["vhdx", "vpc"])
    func foreignBackingMatchesQemu(_ format: String) throws {
        let dir = try TestSupport.makeTempDir("qcow2-foreign")
        defer { TestSupport.removeTempDir(dir) }
        let base = dir + "/base." + format
        try TestSupport.qemuImg(["create", "-q", "-f", format, base, "4M"])
        try TestSupport.qemuIo(base, format: format, ["write -P 9 0 1M", "write -P 8 3M 4k"])
        let mid = dir + "/mid.qcow2"
        try Qcow2Oracle.create(mid, "4M", extra: ["-b", "base." + format, "-F", format])
        try Qcow2Oracle.io(mid, ["write -P 1 64k 4k"])
        let top = dir + "/top.qcow2"
        try Qcow2Oracle.create(top, "4M", options: "cluster_size=16k", extra: ["-b", "mid.qcow2", "-F", "qcow2"])
        try Qcow2Oracle.io(top, ["write -P 2 2M 16k"])
        try Qcow2Oracle.expectAllMatch(top, engines: ["auto", "sync"])
    }

    @Test("internal snapshots: info lists them and cat --snapshot reads each view like qemu-img")
    func snapshotsMatchQemu() throws {
        let dir = try TestSupport.makeTempDir("qcow2-snap")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s.qcow2"
        try Qcow2Oracle.create(img, "4M")
        try Qcow2Oracle.io(img, ["write -P 1 0 128k"])
        try TestSupport.qemuImg(["snapshot", "-c", "first", img])
        try Qcow2Oracle.io(img, ["write -P 2 64k 128k"])
        try TestSupport.qemuImg(["snapshot", "-c", "second", img])
        try Qcow2Oracle.io(img, ["write -P 3 0 4k"])
        try Qcow2Oracle.expectAllMatch(img)
        try Qcow2Oracle.expectCatMatches(img, engines: ["auto", "sync"], snapshot: "first")
        try Qcow2Oracle.expectCatMatches(img, snapshot: "second")
        let r = try TestSupport.blockscope(["cat", "--snapshot", "nope", img])
        #expect(r.status != 0 && r.stderr.contains("no snapshot named 'nope'"), "unknown snapshot: \(r.stderr)")
    }

    @Test("preallocated images (metadata, falloc, full) map and check like qemu-img", arguments: ["metadata", "falloc", "full"])
    func preallocationMatchesQemu(_ mode: String) throws {
        let dir = try TestSupport.makeTempDir("qcow2-prealloc")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/p.qcow2"
        try Qcow2Oracle.create(img, "4M", options: "preallocation=\(mode)")
        try Qcow2Oracle.io(img, ["write -P 1 64k 4k"])
        try Qcow2Oracle.expectAllMatch(img)
    }

    @Test("a dirty lazy-refcount image opens read-only, reads correctly and checks like qemu-img (exit 2)")
    func dirtyImageMatchesQemu() throws {
        let dir = try TestSupport.makeTempDir("qcow2-dirty")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/d.qcow2"
        try Qcow2Oracle.create(img, "4M", options: "lazy_refcounts=on")
        // qemu-io aborts after the write: the dirty bit stays set and refcounts were never written.
        _ = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "write -P 7 0 200k", "-c", "abort", img])
        let info = try Qcow2Oracle.json(try TestSupport.blockscope(["info", "--output=json", img]).stdoutText)
        #expect(info["dirty-flag"] == .bool(true))
        try Qcow2Oracle.expectAllMatch(img)
        let c = try TestSupport.blockscope(["check", img])
        #expect(c.status == 2, "dirty image check exit \(c.status)")
    }

    @Test("bitmaps, zero clusters and encryption: info fields equal qemu-img's; encrypted data reads are refused")
    func infoFieldsMatchQemu() throws {
        let dir = try TestSupport.makeTempDir("qcow2-info")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/b.qcow2"
        try Qcow2Oracle.create(img, "4M")
        try TestSupport.qemuImg(["bitmap", "--add", img, "b1"])
        try TestSupport.qemuImg(["bitmap", "--add", "-g", "128k", img, "b2"])
        try Qcow2Oracle.io(img, ["write -P 1 0 4k", "write -z 64k 128k"])
        try Qcow2Oracle.expectAllMatch(img)
        let enc = dir + "/e.qcow2"
        // qemu-img's LUKS key-slot benchmark often fails on this VM ("Unable to get accurate
        // CPU usage": 4 of 5 tries at load 2.4 on 2026-12-05, 3 of 3 in a full suite beside a
        // fuzz campaign): a property of the oracle, so it gets up to 40 tries (each ends in
        // about a second either way).
        var made = false
        for _ in 0..<40 where !made {
            let c = try TestSupport.run("qemu-img", ["create", "-q", "-f", "qcow2", "--object", "secret,id=s0,data=abc",
                                                     "-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=200", enc, "1M"])
            made = c.status == 0
        }
        #expect(made, "qemu-img could not create the LUKS image")
        let r = try TestSupport.blockscope(["cat", enc])
        #expect(r.status == 1 && r.stderr.contains("encrypted"), "encrypted read: \(r.stderr)")
        let i = try Qcow2Oracle.json(try TestSupport.blockscope(["info", "--output=json", enc]).stdoutText)
        #expect(i["encrypted"] == .bool(true))
        #expect(i["format-specific"]?["data"]?["encrypt"]?["format"] == .string("luks"))
        try Qcow2Oracle.expectCheckMatchesWithoutOpen(enc)
    }
}

extension Qcow2Oracle {
    /// qemu-img check on an encrypted image needs the secret; compare the clean result.
    static func expectCheckMatchesWithoutOpen(_ image: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let q = try TestSupport.run("qemu-img", ["check", "--output=json", "--object", "secret,id=s0,data=abc",
                                                 "--image-opts", "driver=qcow2,file.filename=\(image),encrypt.key-secret=s0"])
        let b = try TestSupport.blockscope(["check", "--output=json", image])
        #expect(b.status == q.status, "check \(image): exit \(b.status), qemu-img \(q.status)", sourceLocation: sourceLocation)
        let qf = fields(try json(q.stdoutText)), bf = fields(try json(b.stdoutText))
        #expect(bf == qf, "check \(image) differs:\nblockscope \(bf)\nqemu-img \(qf)", sourceLocation: sourceLocation)
    }
}

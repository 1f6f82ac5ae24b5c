import Testing
import Foundation
import BlockCore
import TestSupport

/// `blockscope cat`, `map`, `info` and `check` on VMDKs agree with qemu-img: every subformat
/// qemu-img makes (create and convert), a child over a parent, a streamOptimized stream with
/// its grain directory at the end (as VMware writes OVAs), and an ESXi seSparse extent.
@Suite struct VmdkEndToEndTests {
    static let subformats = ["monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized"]

    /// Asserts that blockscope's cat equals qemu-img convert -O raw, its map JSON equals
    /// qemu-img map's, its check exit code equals qemu-img check's, and its info agrees on
    /// virtual-size, cluster-size, create-type and the extents.
    static func agree(_ img: String, _ what: String) throws {
        // Content: blockscope cat streamed into cmp against qemu-img's (sparse) raw conversion,
        // so multi-GiB guests never sit in memory.
        let oracle = img + ".oracle.raw"
        defer { try? FileManager.default.removeItem(atPath: oracle) }
        try TestSupport.qemuImg(["convert", "-O", "raw", img, oracle])
        let cat = try TestSupport.run("/bin/bash", ["-c", "set -o pipefail; \"$0\" cat \"$1\" | cmp - \"$2\"", TestSupport.blockscopeBinary, img, oracle])
        #expect(cat.status == 0, "\(what): blockscope cat differs from qemu-img convert: \(cat.stdoutText) \(cat.stderr)")
        let bm = try TestSupport.blockscope(["map", "--output", "json", img])
        #expect(bm.status == 0, "\(what): map: \(bm.stderr)")
        let qm = try TestSupport.qemuImg(["map", "--output=json", img])
        let a = try JSONSerialization.jsonObject(with: bm.stdout) as! [[String: Any]]
        let b = try JSONSerialization.jsonObject(with: qm.stdout) as! [[String: Any]]
        #expect(NSArray(array: a).isEqual(to: b), "\(what): map differs:\n\(bm.stdoutText)\nqemu-img:\n\(qm.stdoutText)")
        let bc = try TestSupport.blockscope(["check", img])
        let qc = try TestSupport.qemuImg(["check", img])
        #expect(bc.status == qc.status, "\(what): check exit \(bc.status) vs qemu-img \(qc.status): \(bc.stdoutText)")
        let bi = try JSONSerialization.jsonObject(with: try TestSupport.blockscope(["info", "--output", "json", img]).stdout) as! [String: Any]
        let qi = try JSONSerialization.jsonObject(with: try TestSupport.qemuImg(["info", "--output=json", img]).stdout) as! [String: Any]
        for k in ["virtual-size", "cluster-size", "format", "backing-filename", "backing-filename-format"] {
            #expect((bi[k] as? NSObject) == (qi[k] as? NSObject), "\(what): info \(k): \(String(describing: bi[k])) vs \(String(describing: qi[k]))")
        }
        let bs = (bi["format-specific"] as! [String: Any])["data"] as! [String: Any]
        let qs = (qi["format-specific"] as! [String: Any])["data"] as! [String: Any]
        for k in ["cid", "parent-cid", "create-type"] {
            #expect((bs[k] as? NSObject) == (qs[k] as? NSObject), "\(what): info \(k): \(String(describing: bs[k])) vs \(String(describing: qs[k]))")
        }
        let be = (bs["extents"] as! [[String: Any]]).map { $0.filter { $0.key != "filename" } }
        let qe = (qs["extents"] as! [[String: Any]]).map { $0.filter { $0.key != "filename" } }
        #expect(NSArray(array: be).isEqual(to: qe), "\(what): info extents \(be) vs \(qe)")
    }

    /// A raw file with random data, zero runs and a hole, for convert.
    static func source(_ dir: String) throws -> String {
        let raw = dir + "/src.raw"
        var bytes = TestSupport.pseudoRandomBytes(count: 24 << 20, seed: 7)
        for i in (3 << 20)..<(9 << 20) { bytes[i] = 0 }
        for i in (20 << 20)..<(20 << 20 + 4096) { bytes[i] = 0 }
        try TestSupport.writeFile(raw, bytes)
        return raw
    }

    /// Every subformat, created empty (2 GiB + 1 MiB: two split extents) and converted from data.
    @Test(arguments: subformats)
    func subformatAgreesWithQemu(_ sub: String) throws {
        let dir = try TestSupport.makeTempDir("vmdk-sub"); defer { TestSupport.removeTempDir(dir) }
        let empty = dir + "/e.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=\(sub)", empty, "2049M"])
        try Self.agree(empty, "\(sub) created")
        let conv = dir + "/c.vmdk"
        try TestSupport.qemuImg(["convert", "-O", "vmdk", "-o", "subformat=\(sub)", try Self.source(dir), conv])
        try Self.agree(conv, "\(sub) converted")
        if sub != "streamOptimized" && !sub.contains("Flat") {
            // Partial grains written by qemu-io, a zeroed-grain image's zero writes.
            let z = dir + "/z.vmdk"
            try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=\(sub),zeroed_grain=on", z, "2100M"])
            try TestSupport.qemuIo(z, format: "vmdk", ["write -P 0x5a 1000 70000", "write -z 0 1M", "write -P 0x11 2147418112 131072"])
            try Self.agree(z, "\(sub) zeroed grains")
        }
    }

    /// A child over a parent: unallocated grains come from the parent at depth 1.
    @Test func childOverParentAgreesWithQemu() throws {
        let dir = try TestSupport.makeTempDir("vmdk-chain"); defer { TestSupport.removeTempDir(dir) }
        let parent = dir + "/p.vmdk", child = dir + "/c.vmdk"
        try TestSupport.qemuImg(["convert", "-O", "vmdk", try Self.source(dir), parent])
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-b", "p.vmdk", "-F", "vmdk", child])
        try TestSupport.qemuIo(child, format: "vmdk", ["write -P 0x22 64k 64k", "write -P 0x33 1M 4k", "write -P 0x44 10M 300k"])
        try Self.agree(child, "child")
        // The same over a split sparse parent.
        let sp = dir + "/sp.vmdk", sc = dir + "/sc.vmdk"
        try TestSupport.qemuImg(["convert", "-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", parent, sp])
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "-b", "sp.vmdk", "-F", "vmdk", sc])
        try TestSupport.qemuIo(sc, format: "vmdk", ["write -P 0x55 5M 1M"])
        try Self.agree(sc, "split child")
    }

    /// blockscope's streamOptimized writer (grain directory at the end behind markers, footer,
    /// end-of-stream) is read by qemu-img as the source's content, and blockscope agrees.
    @Test func streamWithDirectoryAtEndAgreesWithQemu() throws {
        let dir = try TestSupport.makeTempDir("vmdk-stream"); defer { TestSupport.removeTempDir(dir) }
        let src = try Self.source(dir)
        let img = dir + "/s.vmdk"
        let r = try TestSupport.blockscope(["create", "-f", "vmdk", "-o", "subformat=streamOptimized,source=\(src)", img])
        #expect(r.status == 0, "\(r.stderr)")
        let bytes = Array(try TestSupport.readFile(img))
        #expect(try ByteReader(bytes, what: "test").le64(56) == VmdkSparseHeader.gdAtEnd)
        #expect(try TestSupport.qemuRaw(img) == (try TestSupport.readFile(src)))
        try Self.agree(img, "stream")
    }

    /// `blockscope create -f vmdk` makes every subformat so that qemu-img check is clean, qemu-img
    /// info agrees, and qemu-io writes and reads back through it.
    @Test(arguments: subformats)
    func createdImageIsValidForQemu(_ sub: String) throws {
        let dir = try TestSupport.makeTempDir("vmdk-create"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/n.vmdk"
        let r = try TestSupport.blockscope(["create", "-f", "vmdk", "-o", "subformat=\(sub)", img, "2100M"])
        #expect(r.status == 0, "\(r.stderr)")
        let qi = try JSONSerialization.jsonObject(with: try TestSupport.qemuImg(["info", "--output=json", img]).stdout) as! [String: Any]
        #expect((qi["virtual-size"] as! NSNumber).uint64Value == 2100 << 20)
        #expect(((qi["format-specific"] as! [String: Any])["data"] as! [String: Any])["create-type"] as? String == sub)
        #expect(try TestSupport.qemuImg(["check", img]).status == 0)
        if sub != "streamOptimized" {
            try TestSupport.qemuIo(img, format: "vmdk", ["write -P 0x77 2147480000 9000", "read -P 0x77 2147480000 9000"])
            #expect(try TestSupport.qemuImg(["check", img]).status == 0)
        }
        try Self.agree(img, "created \(sub)")
        // A child made by blockscope over it.
        if !sub.contains("Flat") && sub != "streamOptimized" {
            let child = dir + "/k.vmdk"
            #expect(try TestSupport.blockscope(["create", "-f", "vmdk", "-b", "n.vmdk", child]).status == 0)
            try TestSupport.qemuIo(child, format: "vmdk", ["read -P 0x77 2147480000 9000"])
            try Self.agree(child, "created child of \(sub)")
        }
    }
}

import Foundation
import Testing
import BlockCore
import TestSupport

/// `create -f qcow2` against qemu-img: the image passes qemu-img check and qemu-img info
/// describes it as it describes qemu-img's own image made with the same options.
@Suite("Qcow2 create vs qemu-img")
struct Qcow2CreateTests {
    static let matrix: [[String: String]] = [
        [:],
        ["cluster_size": "512"],
        ["cluster_size": "4096", "refcount_bits": "1"],
        ["cluster_size": "2M", "refcount_bits": "64"],
        ["refcount_bits": "2"], ["refcount_bits": "4"], ["refcount_bits": "8"], ["refcount_bits": "32"],
        ["extended_l2": "on", "cluster_size": "16384"],
        ["compression_type": "zstd", "lazy_refcounts": "on"],
        ["compat": "0.10"],
    ]

    @Test("new images pass qemu-img check and match qemu-img info field by field", arguments: matrix)
    func createMatches(_ kv: [String: String]) throws {
        let dir = try TestSupport.makeTempDir("qcreate")
        defer { TestSupport.removeTempDir(dir) }
        let ours = dir + "/ours.qcow2", theirs = dir + "/theirs.qcow2"
        for size in ["1G", "3M"] {
            let bytes = size == "1G" ? UInt64(1) << 30 : 3 << 20
            try Qcow2Format.create(path: ours, size: bytes, options: try Qcow2CreateOptions(kv))
            let opts = kv.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            try TestSupport.qemuImg(["create", "-f", "qcow2"] + (opts.isEmpty ? [] : ["-o", opts]) + [theirs, size])
            let check = try TestSupport.qemuImg(["check", "--output=json", ours])
            #expect(check.status == 0, "\(kv) \(size): \(check.stdoutText) \(check.stderr)")
            let a = try JSONValue.parse(try TestSupport.qemuImg(["info", "--output=json", ours]).stdoutText)
            let b = try JSONValue.parse(try TestSupport.qemuImg(["info", "--output=json", theirs]).stdoutText)
            for key in ["virtual-size", "cluster-size", "format", "dirty-flag"] {
                #expect(a[key] == b[key], "\(kv) \(size) \(key)")
            }
            #expect(a["format-specific"] == b["format-specific"], "\(kv) \(size): \(a.render()) vs \(b.render())")
            // qemu-io can write and read back through it, and check stays clean.
            try TestSupport.qemuIo(ours, format: "qcow2", ["write -P 0x3c 0 70000", "read -P 0x3c 0 70000"])
            #expect(try TestSupport.qemuImg(["check", ours]).status == 0)
        }
    }

    @Test("a backing file and its format are recorded as qemu-img records them")
    func backing() throws {
        let dir = try TestSupport.makeTempDir("qcreateb")
        defer { TestSupport.removeTempDir(dir) }
        try TestSupport.qemuImg(["create", "-f", "raw", dir + "/base.raw", "8M"])
        try TestSupport.qemuIo(dir + "/base.raw", format: "raw", ["write -P 0x11 1M 64k"])
        var o = Qcow2CreateOptions()
        o.backingFile = "base.raw"
        o.backingFormat = "raw"
        try Qcow2Format.create(path: dir + "/top.qcow2", size: 8 << 20, options: o)
        let info = try JSONValue.parse(try TestSupport.qemuImg(["info", "--output=json", dir + "/top.qcow2"]).stdoutText)
        #expect(info["backing-filename"]?.stringValue == "base.raw")
        #expect(info["backing-filename-format"]?.stringValue == "raw")
        #expect(try TestSupport.qemuImg(["check", dir + "/top.qcow2"]).status == 0)
        try TestSupport.qemuIo(dir + "/top.qcow2", format: "qcow2", ["read -P 0x11 1M 64k"])
    }

    @Test("combinations qemu-img refuses are refused with a reason")
    func refused() {
        let bad: [[String: String]] = [
            ["cluster_size": "256"], ["cluster_size": "3000"], ["refcount_bits": "3"],
            ["extended_l2": "on", "cluster_size": "4096"], ["compat": "0.10", "compression_type": "zstd"],
            ["compat": "0.10", "lazy_refcounts": "on"], ["frobnicate": "1"],
        ]
        for kv in bad {
            #expect(throws: BlockError.self, "\(kv)") {
                try Qcow2Format.create(path: "/tmp/never-made.qcow2", size: 1 << 20, options: try Qcow2CreateOptions(kv))
            }
        }
    }
}

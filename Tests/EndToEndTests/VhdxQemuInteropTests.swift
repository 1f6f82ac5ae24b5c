import Testing
import Foundation
import BlockCore
import TestSupport

/// VHDX and VHD images made and written by qemu-img/qemu-io read the same in blockscope;
/// images written by blockscope equal a raw mirror under `qemu-img compare` and pass
/// `qemu-img check`.
@Suite(.serialized) struct VhdxQemuInteropTests {
    /// An image variant: qemu-img format, create options, and the format flag blockscope needs.
    struct Variant: CustomStringConvertible, Sendable {
        var format: String
        var options: String
        var forceFormat: Bool
        var description: String { "\(format) \(options)" }
    }

    static let variants: [Variant] = [
        Variant(format: "vhdx", options: "block_size=1M", forceFormat: false),
        Variant(format: "vhdx", options: "block_size=8M", forceFormat: false),
        Variant(format: "vhdx", options: "block_size=32M", forceFormat: false),
        Variant(format: "vhdx", options: "subformat=fixed,block_state_zero=on,block_size=1M", forceFormat: false),
        Variant(format: "vhdx", options: "subformat=fixed,block_state_zero=off,block_size=1M", forceFormat: false),
        Variant(format: "vpc", options: "subformat=dynamic", forceFormat: false),
        Variant(format: "vpc", options: "subformat=fixed", forceFormat: true),
        Variant(format: "vpc", options: "force_size=on", forceFormat: false),
    ]

    static let size: UInt64 = 24 << 20

    func bs(_ args: [String], _ v: Variant) -> [String] {
        v.forceFormat ? args + ["-f", v.format] : args
    }

    @Test(arguments: variants)
    func catEqualsQemuConvertAfterQemuIoWrites(_ v: Variant) throws {
        let dir = try TestSupport.makeTempDir("vhdx-cat"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/i.\(v.format)"
        try TestSupport.qemuImg(["create", "-q", "-f", v.format, "-o", v.options, img, "\(Self.size)"])
        try TestSupport.qemuIo(img, format: v.format, [
            "write -P 0x11 0 64k", "write -P 0x22 1000k 3M", "write -P 0x33 \(Self.size - (100 << 10)) 100k",
            "write -P 0x44 17M 512", "write -z 2M 512k",
        ])
        let oracle = try TestSupport.qemuRaw(img, format: v.format)
        for engine in ["uring", "sync"] {
            let r = try TestSupport.blockscope(bs(["cat", "--engine", engine, img], v))
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout == oracle, "cat --engine \(engine) differs from qemu-img convert for \(v)")
        }
        let info = try JSONValue.parse(try TestSupport.blockscope(bs(["info", "--output", "json", img], v)).stdoutText)
        let qinfo = try JSONValue.parse(try TestSupport.qemuImg(["info", "-f", v.format, "--output=json", img]).stdoutText)
        for key in ["virtual-size", "cluster-size", "format", "dirty-flag"] {
            #expect(info[key] == qinfo[key], "info key \(key) for \(v)")
        }
    }

    /// A deterministic write script (sizes 512 B..200 KiB, some crossing block boundaries).
    static func script(seed: UInt64, count: Int, size: UInt64) -> String {
        var rng = SeededRandom(seed: seed)
        func next() -> UInt64 { rng.next() }
        var lines: [String] = []
        for i in 0..<count {
            let len = (next() % 400 + 1) * 512
            let off = (next() % ((size - len) / 512)) * 512
            switch i % 9 {
            case 7: lines.append("zero \(off) \(len)")
            case 8: lines.append("fsync")
            default: lines.append("write \(off) \(len) 0x\(String(next() % 255 + 1, radix: 16))")
            }
        }
        lines.append("write \((1 << 20) - 4096) 8192 0x7e")
        lines.append("zero \(4 << 20) \(8 << 20)")
        return lines.joined(separator: "\n") + "\n"
    }

    @Test(arguments: variants)
    func blockscopeWritesEqualRawMirrorAndPassQemuCheck(_ v: Variant) throws {
        let dir = try TestSupport.makeTempDir("vhdx-write"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/i.\(v.format)", raw = dir + "/mirror.raw", script = dir + "/s.txt"
        try TestSupport.qemuImg(["create", "-q", "-f", v.format, "-o", v.options, img, "\(Self.size)"])
        try TestSupport.qemuIo(img, format: v.format, ["write -P 0x5a 6M 2M"])
        let virtualSize = try TestSupport.qemuRaw(img, format: v.format)
        try virtualSize.write(to: URL(fileURLWithPath: raw))
        try Self.script(seed: 0x1234 + UInt64(v.options.count), count: 60, size: UInt64(virtualSize.count)).write(toFile: script, atomically: true, encoding: .utf8)
        let r1 = try TestSupport.blockscope(bs(["run", "--write", img, script], v))
        #expect(r1.status == 0, "\(r1.stderr)")
        let r2 = try TestSupport.blockscope(["run", "--write", raw, script])
        #expect(r2.status == 0, "\(r2.stderr)")
        let cmp = try TestSupport.qemuImg(["compare", "-f", v.format, "-F", "raw", img, raw])
        #expect(cmp.status == 0, "qemu-img compare: \(cmp.stdoutText)")
        if v.format == "vhdx" {
            let chk = try TestSupport.qemuImg(["check", "-f", "vhdx", img])
            #expect(chk.status == 0, "qemu-img check: \(chk.stdoutText) \(chk.stderr)")
        }
        let cat = try TestSupport.blockscope(bs(["cat", img], v))
        #expect(cat.stdout == (try TestSupport.readFile(raw)))
    }

    @Test func createdImagesAreAcceptedByQemu() throws {
        let dir = try TestSupport.makeTempDir("vhdx-create"); defer { TestSupport.removeTempDir(dir) }
        let cases: [(String, String, String)] = [
            ("vhdx", "", "vhdx"), ("vhdx", "subformat=fixed,block_state_zero=off,block_size=1M,log_size=2M", "vhdx"),
            ("vhdx", "block_size=32M", "vhdx"), ("vpc", "", "vpc"), ("vpc", "subformat=fixed", "vpc"), ("vpc", "force_size=on", "vpc"),
        ]
        for (i, c) in cases.enumerated() {
            let img = dir + "/c\(i).\(c.0)"
            var args = ["create", "-f", c.0]
            if !c.1.isEmpty { args += ["-o", c.1] }
            let r = try TestSupport.blockscope(args + [img, "24M"])
            #expect(r.status == 0, "\(r.stderr)")
            let q = dir + "/q\(i).\(c.0)"
            try TestSupport.qemuImg(["create", "-q", "-f", c.0] + (c.1.isEmpty ? [] : ["-o", c.1.replacingOccurrences(of: ",log_size=2M", with: "")]) + [q, "24M"])
            let qi = try JSONValue.parse(try TestSupport.qemuImg(["info", "-f", c.2, "--output=json", img]).stdoutText)
            let qq = try JSONValue.parse(try TestSupport.qemuImg(["info", "-f", c.2, "--output=json", q]).stdoutText)
            #expect(qi["virtual-size"] == qq["virtual-size"], "virtual size of \(c)")
            try TestSupport.qemuIo(img, format: c.2, ["write -P 0x61 3M 5M", "read -P 0x61 3M 5M", "read -P 0 0 3M"])
            let cat = try TestSupport.blockscope(["cat", "-f", c.2, img])
            #expect(cat.stdout == (try TestSupport.qemuRaw(img, format: c.2)))
            if c.0 == "vhdx" {
                #expect(try TestSupport.qemuImg(["check", img]).status == 0)
            }
        }
        let bad = try TestSupport.blockscope(["create", "-f", "vhdx", "-o", "block_size=3M", dir + "/bad.vhdx", "8M"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("block_size"))
        // qcow2 goes to Qcow2Format.create; -b makes an overlay whose size and format come from the parent.
        let qc = try TestSupport.blockscope(["create", "-f", "qcow2", "-o", "cluster_size=4k", dir + "/q.qcow2", "8M"])
        #expect(qc.status == 0, "\(qc.stderr)")
        #expect(try TestSupport.qemuImg(["check", dir + "/q.qcow2"]).status == 0)
        let ov = try TestSupport.blockscope(["create", "-f", "qcow2", "-b", dir + "/c0.vhdx", dir + "/ov.qcow2"])
        #expect(ov.status == 0, "\(ov.stderr)")
        #expect(try TestSupport.qemuRaw(dir + "/ov.qcow2", format: "qcow2") == (try TestSupport.qemuRaw(dir + "/c0.vhdx", format: "vhdx")))
        let q2 = try TestSupport.blockscope(["create", "-f", "raw", dir + "/r.raw", "1M"])
        #expect(q2.status == 0)
        #expect(try TestSupport.readFile(dir + "/r.raw").count == 1 << 20)
    }
}

import Testing
import Foundation
import BlockCore
@testable import Vmdk
import TestSupport

/// The VMDK descriptor and sparse-header parsers against files qemu-img writes, and their
/// errors on malformed input (each names the file and the line or offset).
@Suite struct VmdkParserTests {
    /// qemu-img's descriptor of a split flat disk parses into its extents; their sizes add up
    /// to qemu-img's virtual size.
    @Test func descriptorOfQemuSplitFlatImage() throws {
        let dir = try TestSupport.makeTempDir("vmdk-desc"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/d.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentFlat", img, "5G"])
        let info = try JSONSerialization.jsonObject(with: try TestSupport.qemuImg(["info", "--output=json", img]).stdout) as! [String: Any]
        let d = try VmdkDescriptor.parse(Array(try TestSupport.readFile(img)), path: img)
        #expect(d.createType == "twoGbMaxExtentFlat")
        #expect(d.extents.count == 3)
        #expect(d.extents.allSatisfy { $0.type == .flat && $0.offset == 0 && $0.file!.hasPrefix("d-f00") })
        #expect(d.capacity == (info["virtual-size"] as! NSNumber).uint64Value)
        #expect(d.parentCID == 0xffff_ffff)
        #expect(VmdkDescriptor.looksLikeDescriptor(Array(try TestSupport.readFile(img))))
        // The text blockscope writes parses back to the same descriptor.
        #expect(try VmdkDescriptor.parse(Array(d.text().utf8), path: "x") == d)
    }

    /// Malformed descriptors fail with the file and the line that is wrong.
    @Test(arguments: [
        ("version=1\ncreateType=\"monolithicFlat\"\nRW 100 FLAT \"a.vmdk\"\n", "line 3: FLAT extent has no offset"),
        ("version=1\ncreateType=\"monolithicFlat\"\nRW -5 FLAT \"a.vmdk\" 0\n", "line 3: extent size '-5'"),
        ("version=1\ncreateType=\"x\"\n\nRW 10 BOGUS \"a\"\n", "line 4: unknown extent type 'BOGUS'"),
        ("version=1\nRW 10 SPARSE \"a\"\n", "no createType"),
        ("version=9\n", "line 1: version=9"),
        ("version=1\ncreateType=\"monolithicFlat\"\nRW 10 FLAT \"a.vmdk 0\n", "line 3: extent file name has no closing quote"),
        ("version=1\ncreateType=\"monolithicFlat\"\n", "lists no extent"),
        ("version=1\nCID=zz\n", "line 2: CID=zz"),
    ])
    func malformedDescriptorNamesLine(_ text: String, _ expected: String) {
        do {
            _ = try VmdkDescriptor.parse(Array(text.utf8), path: "/tmp/bad.vmdk")
            Issue.record("parsed: \(text)")
        } catch let e {
            #expect(e.description.contains(expected), "\(e)")
            #expect(e.description.contains("/tmp/bad.vmdk"), "\(e)")
        }
    }

    /// qemu-img's monolithicSparse header: grain size as qemu-img info's cluster-size, 512
    /// entries per table, redundant directory, the embedded descriptor at sector 1.
    @Test func sparseHeaderOfQemuImage() throws {
        let dir = try TestSupport.makeTempDir("vmdk-hdr"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", img, "100M"])
        let info = try JSONSerialization.jsonObject(with: try TestSupport.qemuImg(["info", "--output=json", img]).stdout) as! [String: Any]
        let bytes = Array(try TestSupport.readFile(img))
        let h = try VmdkSparseHeader.parse(Array(bytes[0..<512]), path: img)
        #expect(h.grainBytes == (info["cluster-size"] as! NSNumber).uint64Value)
        #expect(h.capacity * 512 == (info["virtual-size"] as! NSNumber).uint64Value)
        #expect(h.numGTEsPerGT == 512 && h.hasRedundantGD && h.descriptorOffset == 1)
        #expect(h.encode() == Array(bytes[0..<512]))
    }

    /// A header whose grain directory lies past the end of the file is refused at open with
    /// the path and the directory's place, before anything is allocated from it.
    @Test func directoryPastEndIsRefused() throws {
        let dir = try TestSupport.makeTempDir("vmdk-gd"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", img, "100M"])
        var bytes = Array(try TestSupport.readFile(img))
        ByteField.putLE(&bytes, 56, 0x7fff_ffff, width: 8)
        try TestSupport.writeFile(img, bytes)
        do {
            _ = try openDisk(img)
            Issue.record("opened")
        } catch let e {
            #expect(e.kind == .corruptImage)
            #expect(e.description.contains("grain directory at sector 2147483647"), "\(e)")
            #expect(e.description.contains(img), "\(e)")
        }
        // qemu-img reads the directory past the end as zeroes (every grain unallocated) and
        // converts the image to zeroes: blockscope refuses instead (ADR 0019).
        let q = try TestSupport.qemuRaw(img)
        #expect(q.count == 100 << 20 && !q.contains(where: { $0 != 0 }))
    }

    /// A missing extent file names the descriptor, the line and the file.
    @Test func missingExtentNamesDescriptorLine() throws {
        let dir = try TestSupport.makeTempDir("vmdk-ext"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/f.vmdk"
        try TestSupport.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", img, "3G"])
        try FileManager.default.removeItem(atPath: dir + "/f-s002.vmdk")
        do {
            _ = try openDisk(img)
            Issue.record("opened")
        } catch let e {
            #expect(e.kind == .notFound)
            #expect(e.description.contains("f-s002.vmdk") && e.description.contains("descriptor line"), "\(e)")
        }
    }

    /// A FLAT extent whose offset puts its end past 2^64 bytes is refused at open, naming the
    /// line (no arithmetic overflow on a read later).
    @Test func flatOffsetOverflowIsRefused() throws {
        let dir = try TestSupport.makeTempDir("vmdk-ovf"); defer { TestSupport.removeTempDir(dir) }
        try TestSupport.writeFile(dir + "/x.raw", [UInt8](repeating: 1, count: 4096))
        let img = dir + "/o.vmdk"
        try TestSupport.writeFile(img, Array("# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 100 FLAT \"x.raw\" 36028797018963967\n".utf8))
        do {
            _ = try openDisk(img)
            Issue.record("opened")
        } catch let e { #expect(e.description.contains("descriptor line 6") && e.description.contains("offset"), "\(e)") }
    }

    /// A text-mode transfer (newline bytes changed) is refused with what happened.
    @Test func mangledNewlineBytesAreRefused() throws {
        var h = VmdkSparseHeader(flags: VmdkSparseHeader.flagNewlineDetect, capacity: 128, gdOffset: 1, overHead: 128)
        h.newlineBytes = [0x0a, 0x20, 0x0a, 0x0a]
        do {
            _ = try VmdkSparseHeader.parse(h.encode(), path: "t.vmdk")
            Issue.record("parsed")
        } catch let e { #expect(e.description.contains("text-mode transfer"), "\(e)") }
    }

    /// The descriptor's line splitter (on UTF-8 bytes, for speed) gives the lines the standard
    /// library's split on the character "\n" gives, for CR LF pairs (one character, no line
    /// end), lone CRs, empty lines, a trailing newline, combining marks next to a newline and
    /// invalid UTF-8 (decoded as U+FFFD).
    @Test func descriptorLineSplitMatchesTheStandardLibrarysSplit() {
        let samples: [[UInt8]] = [
            [], Array("\n".utf8), Array("a\nb".utf8), Array("a\r\nb\r\n".utf8), Array("a\r\r\nb\n\n\nc\n".utf8),
            Array("\r\n\n\r".utf8), Array("x\n\u{301}y\u{301}\nz".utf8), [0x61, 0xff, 0x0a, 0xc3, 0x0a, 0x0d, 0x0a, 0x62],
            Array("version=1\r\nCID=fffffffe\nRW 8 SPARSE \"a.vmdk\"\n".utf8),
        ]
        for bytes in samples {
            let text = String(decoding: bytes, as: UTF8.self)
            let expected = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            #expect(VmdkDescriptor.vmdkLines(text).map(String.init) == expected, "bytes \(bytes)")
        }
    }
}


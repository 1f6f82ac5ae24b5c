import BlockCore
import Foundation
import Testing
import TestSupport

/// `blockscope check --output=json` on the damage issue 21 names, field for field against
/// `qemu-img check --output=json` (leaks, corruptions, check errors, image end offset): the
/// counts come from the same walk the TUI's Refcounts summary shows.
@Suite("check counts as qemu-img check")
struct CheckCountsTests {
    @Test("one refcount set too high and one too low: 1 leak and 3 corruptions (the COPIED flags of both L2 entries disagree too)")
    func refcountTooHighAndTooLow() throws {
        let dir = try TestSupport.makeTempDir("check-hi-lo")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Qcow2RepairAndIoTests.image(dir)   // data clusters 5 and 6
        try Qcow2MalformedTests.patch(img, at: 0x20000 + 5 * 2, 2, width: 2)
        try Qcow2MalformedTests.patch(img, at: 0x20000 + 6 * 2, 0, width: 2)
        try Qcow2Oracle.expectCheckMatches(img)
        let q = Qcow2Oracle.fields(try Qcow2Oracle.json(try TestSupport.qemuImg(["check", "--output=json", img]).stdoutText))
        #expect(q["leaks"] == "1" && q["corruptions"] == "3", "qemu-img check: \(q)")
        let human = try TestSupport.blockscope(["check", img])
        #expect(human.stdoutText.contains("3 errors were found on the image.") && human.stdoutText.contains("1 leaked clusters were found on the image."), "\(human.stdoutText)")
    }

    @Test("an L2 table cut off by truncation is one corruption, as qemu-img counts it, and the image end offset is qemu-img's")
    func truncatedL2Table() throws {
        let dir = try TestSupport.makeTempDir("check-trunc")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Qcow2RepairAndIoTests.image(dir)   // L2 table at 0x40000
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: img))
        try h.truncate(atOffset: 0x40000)
        try h.close()
        try Qcow2Oracle.expectCheckMatches(img)
    }

    @Test("an L1 entry pointing past the end of the file: the clusters only that table referenced are leaks, the entry two corruptions, as qemu-img counts")
    func l1EntryPastTheEnd() throws {
        let dir = try TestSupport.makeTempDir("check-l1-past")
        defer { TestSupport.removeTempDir(dir) }
        let img = try Qcow2RepairAndIoTests.image(dir)   // L1 at 0x30000
        try Qcow2MalformedTests.patch(img, at: 0x30000, 0x8000_0000_0010_0000, width: 8)
        try Qcow2Oracle.expectCheckMatches(img)
    }
}

import BlockCore
import Foundation
import Testing
import TestSupport

/// The disk owns its QEMU image lock: qemu-io sees it while the disk is open and not after
/// `close()`, or after the last reference to an unclosed disk goes away; no caller releases
/// a lock by hand.
@Suite struct ImageLockLifetimeTests {
    /// Whether qemu-io can open `img` for writing now (it fails with qemu's lock error otherwise).
    func qemuCanWrite(_ img: String) throws -> Bool {
        let r = try TestSupport.run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 4k", img])
        return r.status == 0 && !r.stderr.contains("lock")
    }

    @Test("a writable open holds QEMU's write lock until close() releases it")
    func closeReleasesTheLock() throws {
        let dir = try TestSupport.makeTempDir("lock-life"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/a.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        let disk = try openDisk(img, options: OpenOptions(writable: true))
        #expect(try !qemuCanWrite(img), "qemu-io wrote while blockscope held the image for writing")
        try disk.close()
        #expect(try qemuCanWrite(img), "the lock outlived close()")
    }

    @Test("a disk dropped without close() releases its lock with its descriptor")
    func droppedDiskReleasesTheLock() throws {
        let dir = try TestSupport.makeTempDir("lock-drop"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/b.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        do {
            let disk = try openDisk(img, options: OpenOptions(writable: true))
            #expect(disk.logicalSize == 16 << 20)
            #expect(try !qemuCanWrite(img), "qemu-io wrote while blockscope held the image for writing")
        }
        #expect(try qemuCanWrite(img), "the lock of a dropped disk was not released")
    }

    @Test("ignoreLocks takes no lock: qemu-io writes while the disk is open for writing")
    func ignoreLocksTakesNoLock() throws {
        let dir = try TestSupport.makeTempDir("lock-none"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/c.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "16M"])
        var o = OpenOptions(writable: true)
        o.ignoreLocks = true
        let disk = try openDisk(img, options: o)
        #expect(try qemuCanWrite(img), "blockscope took a lock with ignoreLocks")
        try disk.close()
        // The same open without the option does take it (the test can fail).
        let locked = try openDisk(img, options: OpenOptions(writable: true))
        #expect(try !qemuCanWrite(img))
        try locked.close()
    }
}

import BlockCore
import Foundation
import Testing
import TestSupport

/// The refcount table of a 512-byte-cluster image covers only 8 MiB of host file (64
/// entries x 256 clusters): writing 20+ MiB makes blockscope move it to a larger place.
@Suite struct Qcow2GrowthTests {
    /// Proves: after a two-queue random write job that outgrows the refcount table, the
    /// header points at a larger table, `qemu-img check` finds no leak or corruption, and the
    /// image equals the raw mirror that received the same writes.
    @Test("a write job that outgrows the refcount table moves it and stays clean", arguments: ["uring", "sync"])
    func refcountTableGrows(_ engine: String) throws {
        let dir = try TestSupport.makeTempDir("q2grow"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/g.qcow2", mirror = dir + "/m.raw", job = dir + "/g.fio"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "cluster_size=512", img, "32M"])
        let before = try TestSupport.qemuImg(["info", "--output=json", img])
        #expect(before.status == 0)
        try """
        [g]
        rw=randwrite
        bsrange=512-64k
        iodepth=8
        numjobs=2
        number_ios=700
        fsync=50

        """.write(toFile: job, atomically: true, encoding: .utf8)
        let r = try TestSupport.blockscope(["run", "--write", "--engine", engine, "--mirror", mirror, img, job])
        #expect(r.status == 0, "\(r.stderr)")
        // Header bytes 56..59: refcount_table_clusters (1 at creation for this size).
        let h = try Data(contentsOf: URL(fileURLWithPath: img)).prefix(64)
        let clusters = h[56..<60].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        #expect(clusters > 1, "the refcount table did not grow (\(clusters) cluster)")
        try Qcow2WriteOracle.expectClean(img, "\(engine)")
        try Qcow2WriteOracle.expectSameContent(raw: mirror, image: img, "\(engine)")
    }
}

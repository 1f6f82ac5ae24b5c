import BlockCore
import BlockEngine
import Foundation
import Testing
import TestSupport

/// The queue core's in-flight snapshot under a real QD32 workload: every queue is tracked
/// when the workload names a registry, a snapshot never holds more than the queues can
/// (depth requests per queue, each with at most the sub-operations its split allows), and it
/// is empty once the job is done; qemu-img check finds the image clean.
@Suite struct EngineInFlightSnapshotTests {
    @Test("a QD32 job's in-flight snapshot never exceeds depth x sub-ops and is empty after (QCOW2 and RAW)",
          arguments: ["qcow2", "raw"])
    func snapshotBounded(format: String) throws {
        let dir = try TestSupport.makeTempDir("inflight-snap"); defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/j.\(format)"
        let opts = format == "qcow2" ? ["-o", "cluster_size=4096"] : []
        try TestSupport.qemuImg(["create", "-q", "-f", format] + opts + [img, "64M"])
        var o = OpenOptions(writable: true)
        o.ignoreLocks = true
        let disk = try openDisk(img, options: o)
        // 8 KiB writes over 4 KiB clusters: a request may split in two host writes.
        let file = try FioJobFile.parse("""
        [w]
        rw=randwrite
        bs=8k
        iodepth=32
        numjobs=2
        size=64M
        number_ios=6000
        fsync=256
        """)
        let registry = InFlightRegistry()
        var wo = WorkloadOptions()
        wo.inFlightRegistry = registry
        let w = try Workload(disk: disk, jobs: file.jobs, options: wo)
        try w.start()
        var most = 0, snapshots = 0, nonEmpty = 0
        let finished = Progress.wait(interval: 0.0005) {
            let done = w.isFinished
            let s = registry.snapshot()
            snapshots += 1
            if !s.isEmpty { nonEmpty += 1 }
            most = max(most, s.count)
            for q in Set(s.map(\.queue)) {
                let mine = s.filter { $0.queue == q }
                #expect(mine.count <= 32, "queue \(q) holds \(mine.count) requests at depth 32")
                #expect(mine.reduce(0) { $0 + $1.subOps } <= 32 * 2)
            }
            #expect(s.allSatisfy { (1...2).contains($0.subOps) }, "\(s.map(\.subOps))")
            #expect(Set(s.map(\.userData)).count == s.count || Set(s.map(\.queue)).count > 1)
            return done
        }
        #expect(finished, "the job did not finish")
        let result = try w.wait()
        #expect(result.jobs.reduce(0) { $0 + $1.write.ios } == 12000)
        #expect(nonEmpty > 0, "no snapshot of \(snapshots) saw a request in flight")
        #expect(most <= 64)
        #expect(registry.count == 0)
        #expect(registry.snapshot().isEmpty)
        try disk.close()
        if format == "qcow2" {
            let check = try TestSupport.qemuImg(["check", img])
            #expect(check.status == 0, "\(check.stdoutText)")
        }
    }
}

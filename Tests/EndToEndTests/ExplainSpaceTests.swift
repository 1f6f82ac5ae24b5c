import BlockCore
import Foundation
import Testing
import TestSupport

/// `blockscope explain`'s space table and remedies on healthy images made by qemu-img, against
/// qemu-img check (allocated clusters, leaks), measure (convert size) and what qemu-img's own
/// remedies (`snapshot -d`, `check -r leaks`) give back.
@Suite("explain: space to the byte")
struct ExplainSpaceTests {
    @Test("snapshots and a bitmap: the kinds sum to the file size, active data is check's allocated clusters, convert_size is measure's required size, and deleting a snapshot frees what delete_snapshot said")
    func snapshotsAndBitmap() throws {
        let dir = try TestSupport.makeTempDir("explain-snap")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/s.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "1G"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 1 0 1M"])
        try TestSupport.qemuImg(["snapshot", "-c", "snap1", img])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 2 0 512k", "write -P 3 600M 1M"])
        try TestSupport.qemuImg(["snapshot", "-c", "snap2", img])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 4 256k 64k"])
        try TestSupport.qemuImg(["bitmap", "--add", img, "bm0"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 5 700M 64k"])

        let j = try ExplainFixtures.explain(img)
        let space = j["space"]
        let size = try ExplainFixtures.fileSize(img)
        #expect(total(space) == int(j["file_size"]) && int(j["file_size"]) == size)
        let check = try ExplainFixtures.qemuCheck(img)
        #expect(int(space?["data"]) == int(check["allocated-clusters"]) * 65536, "\(String(describing: space))")
        #expect(int(space?["snapshot_l1"]) == 2 * 65536 && int(space?["snapshot_tables"]) == 65536)
        // snap1 alone holds the 8 clusters of 0x01 the first rewrite replaced, its L1 and its old L2 table.
        #expect(int(space?["snapshot_data"]) == 9 * 65536, "the 8 clusters of 0x01 and the one of 0x02 only snapshots hold")
        #expect(int(space?["bitmap_directory"]) > 0 && int(space?["bitmap_tables"]) == 65536 && int(space?["bitmap_data"]) == 65536)
        #expect(int(space?["leaked"]) == 0 && findings(j).isEmpty)
        let reclaim = j["reclaim"]
        let oracle1 = try ExplainFixtures.measureRequired(img, format: "qcow2")
        #expect(int(reclaim?["convert_size"]) == oracle1)
        #expect(int(reclaim?["delete_snapshot"]?["snap1"]) == 10 * 65536 && int(reclaim?["delete_snapshot"]?["snap2"]) == 4 * 65536)

        // qemu-img's own deletion: the free space (unused, holes, past the end) grows by what
        // explain said, give or take the cluster the bitmap directory moves to at close.
        func free(_ j: JSONValue) -> Int64 { int(j["space"]?["unused"]) + int(j["space"]?["holes"]) + int(j["space"]?["past_end"]) }
        try TestSupport.qemuImg(["snapshot", "-d", "snap1", img])
        let after = try ExplainFixtures.explain(img)
        #expect(abs(free(after) - free(j) - 10 * 65536) <= 65536, "freed \(free(after) - free(j))")
        #expect(total(after["space"]) == int(after["file_size"]))
    }

    @Test("compressed clusters from qemu-img convert -c: compressed bytes, and convert grows the file by what measure says")
    func compressed() throws {
        let dir = try TestSupport.makeTempDir("explain-comp")
        defer { TestSupport.removeTempDir(dir) }
        let raw = dir + "/r.raw", img = dir + "/c.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", raw, "64M"])
        try TestSupport.qemuIo(raw, format: "raw", ["write -P 7 0 8M", "write -P 9 32M 4M"])
        try TestSupport.qemuImg(["convert", "-c", "-O", "qcow2", raw, img])
        let j = try ExplainFixtures.explain(img)
        let size = try ExplainFixtures.fileSize(img)
        #expect(total(j["space"]) == size && int(j["space"]?["compressed"]) > 0 && int(j["space"]?["data"]) == 0)
        let check = try ExplainFixtures.qemuCheck(img)
        #expect(int(check["compressed-clusters"]) == 192)
        let required = try ExplainFixtures.measureRequired(img, format: "qcow2")
        #expect(int(j["reclaim"]?["convert_size"]) == required)
        #expect(int(j["reclaim"]?["convert"]) == size - required && size - required < 0)
        #expect(findings(j).isEmpty, "a healthy compressed image: \(findings(j))")
    }

    @Test("compressed data, two snapshots and a bitmap together: no finding (a freed bitmap table is not a stranded refcount block), sums exact, convert_size is measure's")
    func healthyMix() throws {
        let dir = try TestSupport.makeTempDir("explain-mix")
        defer { TestSupport.removeTempDir(dir) }
        let raw = dir + "/r.raw", img = dir + "/m.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", raw, "128M"])
        try TestSupport.qemuIo(raw, format: "raw", ["write -P 5 0 16M"])
        try TestSupport.qemuImg(["convert", "-c", "-O", "qcow2", raw, img])
        try TestSupport.qemuImg(["snapshot", "-c", "a", img])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 6 4M 4M"])
        try TestSupport.qemuImg(["bitmap", "--add", img, "b1"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 7 64M 1M"])
        try TestSupport.qemuImg(["snapshot", "-c", "b", img])
        #expect(try TestSupport.qemuImg(["check", img]).status == 0)
        let j = try ExplainFixtures.explain(img)
        let size = try ExplainFixtures.fileSize(img)
        let measured = try ExplainFixtures.measureRequired(img, format: "qcow2")
        #expect(findings(j).isEmpty, "\(findings(j))")
        #expect(total(j["space"]) == size && int(j["reclaim"]?["convert_size"]) == measured)
        #expect(int(j["space"]?["compressed"]) > 0 && int(j["space"]?["data"]) == 80 * 65536 && int(j["space"]?["bitmap_data"]) == 65536)
    }

    @Test("an overlay on a backing file: its own data in the space table, and convert_size counts the chain a convert flattens, as measure does")
    func overlay() throws {
        let dir = try TestSupport.makeTempDir("explain-overlay")
        defer { TestSupport.removeTempDir(dir) }
        let base = dir + "/b.qcow2", img = dir + "/o.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", base, "1G"])
        try TestSupport.qemuIo(base, format: "qcow2", ["write -P 1 0 4M"])
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", img])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 2 1M 1M", "write -P 3 8M 1M"])
        let j = try ExplainFixtures.explain(img)
        let measured = try ExplainFixtures.measureRequired(img, format: "qcow2")
        #expect(int(j["space"]?["data"]) == 2 << 20 && int(j["reclaim"]?["convert_size"]) == measured)
    }

    @Test("a leaked cluster: leaked is qemu-img check's leaks in bytes, and check -r leaks gives back repair_leaks")
    func leaks() throws {
        let dir = try TestSupport.makeTempDir("explain-leak")
        defer { TestSupport.removeTempDir(dir) }
        let img = try ExplainFixtures.threeWindows(dir, "l.qcow2")
        // Clear the L2 entry of guest cluster 2: its data cluster keeps refcount 1, referenced by nothing.
        let l2 = try ExplainFixtures.l2Offset(img, l1Index: 0)
        try ExplainFixtures.put(img, at: l2 + 2 * 8, [UInt8](repeating: 0, count: 8))
        let j = try ExplainFixtures.explain(img)
        let check = try ExplainFixtures.qemuCheck(img)
        #expect(int(check["leaks"]) == 1 && int(j["space"]?["leaked"]) == 65536 && int(j["reclaim"]?["repair_leaks"]) == 65536)
        let f = findings(j)
        #expect(f.count == 1 && str(f.first?["class"]) == "leaked-cluster" && int(f.first?["clusters"]) == 1)
        #expect(pairs(f.first?["host"]) == [[Int64(l2 + 3 * 65536), 65536]], "data clusters follow the L2 table: guest cluster 2 is the third")
        #expect(str(f.first?["looks_like"]) == "guest-data")
        try TestSupport.qemuImg(["check", "-q", "-r", "leaks", img])
        let after = try ExplainFixtures.explain(img)
        #expect(int(after["space"]?["leaked"]) == 0 && findings(after).isEmpty)
        #expect(int(after["space"]?["unused"]) + int(after["space"]?["holes"]) - int(j["space"]?["unused"]) - int(j["space"]?["holes"]) == 65536)
    }

    @Test("clusters zeroed without unmap: zeroed bytes, and a discard gives back what discard_zeroed said")
    func zeroedClusters() throws {
        let dir = try TestSupport.makeTempDir("explain-zero")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/z.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "256M"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 1 0 3M", "write -z 1M 1M"])
        let j = try ExplainFixtures.explain(img)
        #expect(int(j["space"]?["zeroed"]) == 1 << 20 && int(j["space"]?["data"]) == 2 << 20 && int(j["reclaim"]?["discard_zeroed"]) == 1 << 20)
        let measured = try ExplainFixtures.measureRequired(img, format: "qcow2")
        #expect(int(j["reclaim"]?["convert_size"]) == measured, "measure skips zeroed clusters too")
        try TestSupport.qemuIo(img, format: "qcow2", ["discard 1M 1M"])
        let after = try ExplainFixtures.explain(img)
        func free(_ j: JSONValue) -> Int64 { int(j["space"]?["unused"]) + int(j["space"]?["holes"]) }
        #expect(int(after["space"]?["zeroed"]) == 0 && free(after) - free(j) == 1 << 20)
    }

    @Test("preallocated metadata: the data clusters are holes, the metadata is counted, and convert_size is measure's")
    func preallocatedMetadata() throws {
        let dir = try TestSupport.makeTempDir("explain-prealloc")
        defer { TestSupport.removeTempDir(dir) }
        let img = dir + "/p.qcow2"
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", img, "4G"])
        let j = try ExplainFixtures.explain(img)
        let oracle2 = try ExplainFixtures.fileSize(img)
        #expect(total(j["space"]) == oracle2)
        #expect(int(j["space"]?["holes"]) == 4 << 30 && int(j["space"]?["data"]) == 0 && int(j["space"]?["l2"]) == 8 * 65536)
        let oracle3 = try ExplainFixtures.measureRequired(img, format: "qcow2")
        #expect(int(j["reclaim"]?["convert_size"]) == oracle3)
    }

    @Test("VHDX and VHD: the kinds sum to the file size, data is the written blocks, and VHD's convert_size is measure's")
    func vhdxAndVhd() throws {
        let dir = try TestSupport.makeTempDir("explain-vhd")
        defer { TestSupport.removeTempDir(dir) }
        let x = dir + "/x.vhdx", v = dir + "/v.vhd"
        try TestSupport.qemuImg(["create", "-q", "-f", "vhdx", "-o", "block_size=1M", x, "1G"])
        try TestSupport.qemuIo(x, format: "vhdx", ["write -P 1 0 9M"])
        try TestSupport.qemuImg(["create", "-q", "-f", "vpc", v, "1G"])
        try TestSupport.qemuIo(v, format: "vpc", ["write -P 1 0 3M"])
        let jx = try ExplainFixtures.explain(x)
        let oracle4 = try ExplainFixtures.fileSize(x)
        #expect(total(jx["space"]) == oracle4 && int(jx["space"]?["data"]) == 9 << 20)
        #expect(int(jx["space"]?["log"]) == 1 << 20 && int(jx["space"]?["bat"]) == 1 << 20 && int(jx["space"]?["metadata"]) == 1 << 20)
        let oracle5 = try ExplainFixtures.measureRequired(x, format: "vhdx")
        #expect(int(jx["reclaim"]?["convert_size"]) == oracle5)
        let jv = try ExplainFixtures.explain(v)
        let oracle6 = try ExplainFixtures.fileSize(v)
        #expect(total(jv["space"]) == oracle6)
        let vhdData = int(jv["space"]?["data"])
        #expect(vhdData >= 3 << 20 && vhdData <= 3 << 20 + 8192 && int(jv["space"]?["footer"]) == 512, "the unwritten half of the second 2 MiB block is a hole (but for the file system block the written data ends in)")
        #expect(int(jv["space"]?["sector_bitmaps"]) == 2 * 512)
        let oracle7 = try ExplainFixtures.measureRequired(v, format: "vpc")
        #expect(int(jv["reclaim"]?["convert_size"]) == oracle7)
        #expect(findings(jx).isEmpty && findings(jv).isEmpty)
    }
}

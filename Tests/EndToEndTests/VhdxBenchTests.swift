import BlockCore
import Foundation
import Testing
import TestSupport

/// `blockscope bench` options for measuring VHDX writes on allocated blocks.
@Suite("Vhdx bench end-to-end")
struct VhdxBenchTests {
    @Test("bench --prefill on dynamic and fixed VHDX reports prefilled rows for the chosen workloads and engines")
    func prefilledRowsForChosenWorkloads() throws {
        let dir = try TestSupport.makeTempDir("vhdx-bench")
        defer { TestSupport.removeTempDir(dir) }
        for extra in [[String](), ["--create-options", "subformat=fixed,block_state_zero=off"]] {
            let r = try TestSupport.blockscope(["bench", dir, "--ios", "400", "--size", "16M", "--formats", "vhdx",
                                                "--engines", "uring", "--workloads", "4k-randwrite-qd32,128k-seqwrite-qd8",
                                                "--prefill", "--output=json"] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            let json = try JSONValue.parse(r.stdoutText)
            #expect(json["prefill"] == .bool(true))
            let rows = json["results"]?.arrayValue ?? []
            #expect(rows.compactMap { $0["workload"]?.stringValue } == ["4k-randwrite-qd32", "128k-seqwrite-qd8"])
            #expect(rows.allSatisfy { $0["engine"]?.stringValue == "uring" && $0["prefilled"] == .bool(true) })
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(left.isEmpty, "bench left \(left) behind")
    }

    @Test("bench rejects unknown formats, engines and workloads with one line and status 1")
    func badListsAreOneLineErrors() throws {
        let dir = try TestSupport.makeTempDir("vhdx-bench-bad")
        defer { TestSupport.removeTempDir(dir) }
        for (args, word) in [(["--formats", "vhdx,floppy"], "floppy"), (["--engines", "auto"], "auto"),
                             (["--workloads", "8k-nothing"], "8k-nothing"), (["--formats", ","], "empty")] {
            let r = try TestSupport.blockscope(["bench", dir, "--no-peers"] + args)
            #expect(r.status == 1)
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1 && r.stderr.contains(word), "\(args): \(r.stderr)")
        }
    }
}

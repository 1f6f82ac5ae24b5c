import BlockIO
import Foundation

/// One workload of the standard benchmark matrix.
package struct BenchWorkload: Sendable {
    /// Short name ("4k-randwrite-qd32").
    public var name: String
    /// The job blockscope runs.
    public var job: FioJob
    /// Whether the figure of merit is flush latency rather than IOPS.
    public var measuresFsync: Bool

    /// The matrix of issue 3: 4 KiB random write QD32, 128 KiB sequential write,
    /// 70/30 random mix, fsync latency. `ios` scales the amount of I/O.
    public static func standard(ios: UInt64) -> [BenchWorkload] {
        var a = FioJob(name: "4k-randwrite-qd32")
        a.rw = .randwrite; a.iodepth = 32; a.numberIos = ios; a.direct = true
        var b = FioJob(name: "128k-seqwrite-qd8")
        b.rw = .write; b.bsMin = 128 << 10; b.bsMax = 128 << 10; b.iodepth = 8; b.numberIos = max(1, ios / 16); b.direct = true
        var c = FioJob(name: "4k-randrw-70-30-qd32")
        c.rw = .randrw; c.rwmixread = 70; c.iodepth = 32; c.numberIos = ios; c.direct = true
        var d = FioJob(name: "4k-write-fsync-qd1")
        d.rw = .write; d.iodepth = 1; d.fsync = 1; d.numberIos = max(1, ios / 50); d.direct = true
        a.randomMap = false; c.randomMap = false  // the fio peers run with norandommap
        return [BenchWorkload(name: a.name, job: a, measuresFsync: false),
                BenchWorkload(name: b.name, job: b, measuresFsync: false),
                BenchWorkload(name: c.name, job: c, measuresFsync: false),
                BenchWorkload(name: d.name, job: d, measuresFsync: true)]
    }

    /// The equivalent fio job file for `filename` (RAW only).
    public func fioJobFile(filename: String) -> String {
        let j = job
        var s = "[\(name)]\nfilename=\(filename)\nioengine=io_uring\ndirect=1\nnorandommap\nrandrepeat=0\n"
        s += "rw=\(j.rw == .readwrite ? "rw" : j.rw.rawValue)\nbs=\(j.bsMin)\niodepth=\(j.iodepth)\n"
        if j.rw.isMixed { s += "rwmixread=\(j.rwmixread)\n" }
        if let n = j.numberIos { s += "number_ios=\(n)\n" }
        if j.fsync > 0 { s += "fsync=\(j.fsync)\n" }
        return s
    }
}

/// One row of the benchmark table.
package struct BenchRow: Sendable {
    /// The workload.
    public var workload: String
    /// The image format.
    public var format: ImageFormat
    /// The engine.
    public var engine: EngineKind
    /// Requests per second (all directions).
    public var iops: Double
    /// Bytes per second.
    public var bytesPerSecond: Double
    /// Median completion latency (or flush latency for the fsync workload), ns.
    public var p50Ns: UInt64
    /// 99th percentile latency, ns.
    public var p99Ns: UInt64
    /// fio's IOPS (or flush p50 ns for the fsync workload), when fio ran.
    public var fio: Double? = nil
    /// qemu-img bench's IOPS, when it ran.
    public var qemuImg: Double? = nil
    /// Whether the image was prefilled (writes hit allocated blocks).
    public var prefilled = false

    /// The row as JSON.
    public var json: JSONValue {
        var kv: [(String, JSONValue)] = [("workload", .string(workload)), ("format", .string(format.rawValue)),
                                         ("engine", .string(engine.rawValue)), ("iops", .double(iops)),
                                         ("bw_bytes", .size(UInt64(bytesPerSecond))), ("p50_ns", .size(p50Ns)), ("p99_ns", .size(p99Ns)),
                                         ("prefilled", .bool(prefilled))]
        if let fio { kv.append(("fio", .double(fio))); kv.append(("ratio_vs_fio", .double(ratio(fio)))) }
        if let qemuImg { kv.append(("qemu_img_bench_iops", .double(qemuImg))); kv.append(("ratio_vs_qemu_img", .double(iops / qemuImg))) }
        return .object(kv)
    }

    /// blockscope / peer: IOPS ratio, or for flush latency peer / blockscope (higher is better).
    public func ratio(_ peer: Double) -> Double {
        workload.contains("fsync") ? peer / Double(max(p50Ns, 1)) : iops / max(peer, 1e-9)
    }
}

/// Runs one benchmark workload with blockscope's engine on an open disk.
package enum BenchRunner {
    /// Writes every byte of `disk` once, sequentially (1 MiB requests, or the largest power of
    /// two up to 1 MiB that divides the disk size), QD8, then flushes.
    ///
    /// After it, every block of a block-map or cluster format (VHDX, VHD, QCOW2) is allocated
    /// and every host extent of the file system is written, so a timed workload measures
    /// steady-state writes rather than allocation. Works for any format through its own
    /// writer; the data is a verifiable pattern, not zeroes (zeroes could be stored as holes).
    /// Returns the seconds it took.
    @discardableResult
    public static func prefill(disk: any DiskFile, engine: EngineKind = .uring) throws(BlockError) -> Double {
        let size = disk.logicalSize
        guard size >= 512 else {
            throw BlockError(.invalidArgument, "bench: cannot prefill a disk of \(size) bytes (at least 512 needed)", path: disk.path)
        }
        var bs: UInt64 = 1 << 20
        while bs > 512 && size % bs != 0 { bs >>= 1 }
        var job = FioJob(name: "prefill")
        job.rw = .write; job.bsMin = bs; job.bsMax = bs; job.iodepth = 8; job.direct = true
        job.size = size / bs * bs; job.endFsync = true; job.engine = engine
        var opts = WorkloadOptions()
        opts.engine = engine
        let result = try Workload(disk: disk, jobs: [job], options: opts).run()
        try disk.flush()
        return Double(result.jobs[0].elapsedNs) / 1e9
    }

    /// Picks the workloads named in the comma-separated `names` (all when nil or empty).
    ///
    /// Throws `invalidArgument` naming the valid workloads when a name is unknown.
    public static func select(_ all: [BenchWorkload], names: String?) throws(BlockError) -> [BenchWorkload] {
        guard let names, !names.isEmpty else { return all }
        var out: [BenchWorkload] = []
        for n in names.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) where !n.isEmpty {
            guard let w = all.first(where: { $0.name == n }) else {
                throw BlockError(.invalidArgument, "bench: unknown workload '\(n)' (known: \(all.map(\.name).joined(separator: ", ")))")
            }
            if !out.contains(where: { $0.name == n }) { out.append(w) }
        }
        if out.isEmpty { throw BlockError(.invalidArgument, "bench: --workloads names no workload (known: \(all.map(\.name).joined(separator: ", ")))") }
        return out
    }

    /// Runs `w` on `disk` with `engine`; returns the row without peer figures.
    public static func run(_ w: BenchWorkload, disk: any DiskFile, engine: EngineKind) throws(BlockError) -> BenchRow {
        var opts = WorkloadOptions()
        opts.engine = engine
        var job = w.job
        job.engine = engine
        let result = try Workload(disk: disk, jobs: [job], options: opts).run()
        let r = result.jobs[0]
        let secs = max(Double(r.elapsedNs) / 1e9, 1e-9)
        let ios = Double(r.read.ios + r.write.ios + r.trim.ios)
        var lat = r.write
        if w.measuresFsync { lat = r.sync } else if r.read.ios > r.write.ios { lat = r.read }
        return BenchRow(workload: w.name, format: disk.format, engine: engine, iops: ios / secs,
                        bytesPerSecond: Double(r.read.bytes + r.write.bytes) / secs,
                        p50Ns: lat.percentile(50), p99Ns: lat.percentile(99))
    }
}

import BlockIO
import Foundation

/// Renders workload results as fio does: its JSON shape (`--output=json`) and its human summary.
package enum FioReport {
    /// The percentile key fio uses, e.g. `"99.990000"`.
    public static func percentileKey(_ p: Double) -> String { String(format: "%.6f", p) }

    /// fio's JSON object for one direction: `io_bytes`, `io_kbytes`, `bw_bytes`, `bw` (KiB/s),
    /// `iops`, `runtime` (ms), `total_ios`, `clat_ns` and `lat_ns` (min/max/mean/stddev/N/percentile).
    public static func direction(_ d: DirectionStats, elapsedNs: UInt64) -> JSONValue {
        let secs = max(Double(elapsedNs) / 1e9, 1e-9)
        let bwBytes = Double(d.bytes) / secs
        var lat: [(String, JSONValue)] = [
            ("min", .size(d.ios == 0 ? 0 : d.clat.min)),
            ("max", .size(d.ios == 0 ? 0 : d.clat.max)),
            ("mean", .double(d.ios == 0 ? 0 : d.clat.mean)),
            ("stddev", .double(d.ios == 0 ? 0 : d.clat.stdDeviation)),
            ("N", .size(d.ios)),
        ]
        if d.ios > 0 {
            lat.append(("percentile", .object(DirectionStats.fioPercentiles.map { (percentileKey($0), .size(d.percentile($0))) })))
        }
        return .object([
            ("io_bytes", .size(d.bytes)),
            ("io_kbytes", .size(d.bytes / 1024)),
            ("bw_bytes", .size(UInt64(bwBytes))),
            ("bw", .size(UInt64(bwBytes / 1024))),
            ("iops", .double(Double(d.ios) / secs)),
            ("runtime", .size(elapsedNs / 1_000_000)),
            ("total_ios", .size(d.ios)),
            ("short_ios", .int(0)),
            ("drop_ios", .int(0)),
            ("slat_ns", .object([("min", .int(0)), ("max", .int(0)), ("mean", .double(0)), ("stddev", .double(0)), ("N", .int(0))])),
            ("clat_ns", .object(lat)),
            ("lat_ns", .object(Array(lat.prefix(5)))),
        ])
    }

    /// fio's `jobs[]` entry for one result.
    public static func job(_ r: JobResult) -> JSONValue {
        let j = r.job
        var opts: [(String, JSONValue)] = [("rw", .string(j.rw == .readwrite ? "rw" : j.rw.rawValue)),
                                           ("bs", .string(j.bsMin == j.bsMax ? "\(j.bsMin)" : "\(j.bsMin)-\(j.bsMax)")),
                                           ("iodepth", .string("\(j.iodepth)"))]
        if j.rw.isMixed { opts.append(("rwmixread", .string("\(j.rwmixread)"))) }
        if let n = j.numberIos { opts.append(("number_ios", .string("\(n)"))) }
        if let s = j.size { opts.append(("size", .string("\(s)"))) }
        if j.offset != 0 { opts.append(("offset", .string("\(j.offset)"))) }
        opts.append(("ioengine", .string(j.engine == .sync ? "psync" : "io_uring")))
        var extra: [(String, JSONValue)] = []
        if j.latencyTargetNs > 0 {
            extra += [("latency_depth", .int(Int64(r.latencyDepth))), ("latency_target", .size(j.latencyTargetNs / 1000)),
                      ("latency_percentile", .double(j.latencyPercentile)), ("latency_window", .size(j.latencyWindowNs / 1000))]
        }
        if let ss = j.steadyState {
            extra.append(("steadystate", .object([
                ("ss", .string((ss.metric.rawValue + (ss.slope ? "_slope" : "")) + ":" + String(ss.limit) + (ss.percent ? "%" : ""))),
                ("duration", .size(ss.durationNs / 1_000_000_000)), ("attained", .int(r.steadyStateAttained ? 1 : 0))])))
        }
        return .object([
            ("jobname", .string(j.name)),
            ("groupid", .int(Int64(j.groupID))),
            ("error", .int(r.error == nil ? 0 : Int64(r.error?.errno ?? 5))),
            ("eta", .int(0)),
            ("elapsed", .size(max(1, r.elapsedNs / 1_000_000_000))),
            ("job options", .object(opts)),
            ("read", direction(r.read, elapsedNs: r.elapsedNs)),
            ("write", direction(r.write, elapsedNs: r.elapsedNs)),
            ("trim", direction(r.trim, elapsedNs: r.elapsedNs)),
            ("sync", .object([("total_ios", .size(r.sync.ios)), ("lat_ns", direction(r.sync, elapsedNs: r.elapsedNs)["clat_ns"]!)])),
            ("job_runtime", .size(r.elapsedNs / 1_000_000)),
            ("usr_cpu", .double(Double(r.userCpuNs) * 100 / Double(max(1, r.elapsedNs)))),
            ("sys_cpu", .double(Double(r.systemCpuNs) * 100 / Double(max(1, r.elapsedNs)))),
        ] + extra + [
            ("blockscope", .object([("queue", .int(Int64(r.queueID))), ("threads", .int(Int64(r.threads))),
                                    ("user_cpu_ns", .size(r.userCpuNs)), ("system_cpu_ns", .size(r.systemCpuNs)),
                                    ("cpu_ns_per_io", .double(Double(r.userCpuNs + r.systemCpuNs) / Double(max(1, r.read.ios + r.write.ios + r.trim.ios + r.sync.ios))))])),
        ])
    }

    /// The whole document: `fio version`, `timestamp`, `jobs`, and a `blockscope` object
    /// (image, verified blocks).
    public static func json(_ result: WorkloadResult, image: String) -> JSONValue {
        .object([
            ("fio version", .string("blockscope-engine-1")),
            ("timestamp", .int(Int64(Date().timeIntervalSince1970))),
            ("time", .string(Date().description)),
            ("jobs", .array(result.reported.map(job))),
            ("blockscope", .object([("image", .string(image)), ("elapsed_ns", .size(result.elapsedNs)),
                                    ("verified_blocks", .size(result.verifiedBlocks))])),
        ])
    }

    /// A count with fio's k/M suffix ("70.2k").
    static func short(_ v: Double) -> String {
        if v >= 1e6 { return String(format: "%.2fM", v / 1e6) }
        if v >= 1e4 { return String(format: "%.1fk", v / 1e3) }
        if v >= 1e3 { return String(format: "%.2fk", v / 1e3) }
        return String(format: "%.0f", v)
    }

    /// Bytes with a binary unit ("273MiB").
    static func bytes(_ v: Double) -> String { formatBytes(v, style: .fio) }

    /// The human summary, shaped like fio's per-job block.
    public static func human(_ result: WorkloadResult) -> String {
        var out = ""
        for r in result.reported {
            let errno = r.error?.errno ?? (r.error == nil ? 0 : 5)
            out += "\(r.job.name): (groupid=\(r.job.groupID), jobs=\(r.threads)): err=\(String(format: "%2d", errno)): queue=\(r.queueID)\n"
            let msec = max(1, r.elapsedNs / 1_000_000)
            for (name, d) in [("read", r.read), ("write", r.write), ("trim", r.trim)] where d.ios > 0 {
                let secs = max(Double(r.elapsedNs) / 1e9, 1e-9)
                let bw = Double(d.bytes) / secs
                out += "  \(name): IOPS=\(short(Double(d.ios) / secs)), BW=\(bytes(bw))/s (\(String(format: "%.1f", bw / 1e6))MB/s)(\(bytes(Double(d.bytes)))/\(msec)msec)\n"
                out += latencyLines(d)
            }
            if r.sync.ios > 0 {
                out += "  fsync/fdatasync: \(r.sync.ios) calls\n" + latencyLines(r.sync)
            }
        }
        if result.verifiedBlocks > 0 { out += "verify: \(result.verifiedBlocks) blocks checked, all good\n" }
        return out
    }

    static func latencyLines(_ d: DirectionStats) -> String {
        let (div, unit) = d.clat.mean >= 10_000 ? (1000.0, "usec") : (1.0, "nsec")
        var out = String(format: "    clat (%@): min=%.0f, max=%.0f, avg=%.2f, stdev=%.2f\n", unit,
                         Double(d.clat.min) / div, Double(d.clat.max) / div, d.clat.mean / div, d.clat.stdDeviation / div)
        out += "     clat percentiles (\(unit)):\n"
        var row: [String] = []
        for p in DirectionStats.fioPercentiles {
            row.append(String(format: "%6.2fth=[%.0f]", p, Double(d.percentile(p)) / div))
            if row.count == 4 { out += "     | " + row.joined(separator: ", ") + "\n"; row = [] }
        }
        if !row.isEmpty { out += "     | " + row.joined(separator: ", ") + "\n" }
        return out
    }
}

import BlockIO

/// A parsed fio job file: INI sections, `[global]` defaults, `key=value` or bare flags.
///
/// Every key fio documents that blockscope implements is listed in docs/JOBS.md; fio keys
/// that have no meaning here (``warnOnlyKeys``) produce a warning; anything else is an
/// error naming the key and its line.
public struct FioJobFile: Sendable {
    /// The jobs in file order.
    public var jobs: [FioJob]
    /// Warnings for fio keys blockscope accepts and ignores, with their lines.
    public var warnings: [String]

    /// fio keys that are accepted with a warning because they do not apply to blockscope.
    public static let warnOnlyKeys: Set<String> = [
        "filename", "directory", "filename_format", "invalidate",
        "iodepth_batch", "iodepth_batch_submit", "iodepth_batch_complete", "iodepth_batch_complete_min",
        "iodepth_batch_complete_max", "iodepth_low", "gtod_reduce", "refill_buffers", "scramble_buffers",
        "zero_buffers", "log_avg_msec", "write_bw_log", "log_offset", "log_prio",
        "write_lat_log", "write_iops_log", "write_hist_log", "per_job_logs", "lat_percentiles",
        "clat_percentiles", "slat_percentiles", "percentile_list", "disable_lat", "disable_clat",
        "disable_slat", "disable_bw_measurement", "cpus_allowed", "cpumask", "nice", "prio", "prioclass",
        "cmdprio", "cmdprio_class", "cmdprio_percentage", "cmdprio_bssplit", "numa_cpu_nodes", "numa_mem_policy",
        "hipri", "fixedbufs", "registerfiles", "sqthread_poll", "sqthread_poll_cpu", "fadvise_hint",
        "allow_file_create", "create_on_open", "create_serialize", "unlink", "overwrite", "file_service_type",
        "nrfiles", "description", "kb_base", "unit_base", "continue_on_error", "ignore_error", "error_dump",
        "ioscheduler", "steadystate_check_interval", "ss_interval", "verify_fatal", "verify_dump", "verify_async", "fallocate", "ratecycle", "rate_cycle",
        "sync", "clocksource", "group", "uid", "gid",
    ]

    /// Keys blockscope implements (aliases included).
    public static let supportedKeys: Set<String> = [
        "name", "rw", "readwrite", "rwmixread", "rwmixwrite", "bs", "blocksize", "bsrange", "blocksize_range",
        "bssplit", "blockalign", "ba", "size", "filesize", "io_size", "io_limit", "loops", "offset",
        "offset_increment", "iodepth", "numjobs", "number_ios", "runtime", "timeout", "time_based",
        "startdelay", "ramp_time", "fsync", "fdatasync", "end_fsync", "randseed", "randrepeat",
        "norandommap", "random_generator", "random_distribution", "rate", "rate_iops", "ratemin", "rate_min",
        "rate_iops_min", "rate_process", "io_submit_mode", "thinktime", "thinktime_blocks", "thinktime_spin",
        "flow", "flow_id", "flow_sleep", "stonewall", "wait_for_previous", "new_group", "wait_for",
        "exitall", "exit_what", "latency_target", "latency_window", "latency_percentile",
        "ss", "steadystate", "ss_dur", "steadystate_duration", "ss_ramp", "steadystate_ramp_time",
        "verify", "do_verify", "verify_interval", "verify_pattern", "verify_backlog", "verify_only",
        "fill_device", "fill_fs", "zonemode", "zonesize", "zoneskip",
        "serialize_overlap", "ioengine", "direct", "buffered", "group_reporting", "thread", "threads",
    ]

    /// Whether `text` looks like a fio job file (it has an INI `[section]` line) rather
    /// than a command-language script.
    public static func looksLikeJobFile(_ text: String) -> Bool {
        for raw in text.split(separator: "\n") {
            let l = raw.trimmingSpaces
            if l.hasPrefix("[") && l.hasSuffix("]") && l.count > 2 { return true }
        }
        return false
    }

    /// Parses a job file. Errors name `source`, the line and the key.
    public static func parse(_ text: String, source: String = "job file") throws(BlockError) -> FioJobFile {
        var global = FioJob(name: "global")
        var jobs: [FioJob] = []
        var warnings: [String] = []
        var current: FioJob? = nil
        var inGlobal = false

        func finish() {
            if let c = current { jobs.append(c) }
            current = nil
        }
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNo = i + 1
            var l = raw.trimmingSpaces
            if l.isEmpty || l.hasPrefix("#") || l.hasPrefix(";") { continue }
            if let hash = l.firstIndex(where: { $0 == "#" || $0 == ";" }) { l = String(l[..<hash]).trimmingSpaces }
            if l.hasPrefix("[") {
                guard l.hasSuffix("]"), l.count > 2 else {
                    throw BlockError(.invalidArgument, "line \(lineNo): malformed section header '\(l)'", path: source)
                }
                let name = String(l.dropFirst().dropLast()).trimmingSpaces
                if inGlobal { inGlobal = false }
                finish()
                if name == "global" {
                    inGlobal = true
                } else {
                    var j = global
                    j.name = name
                    j.line = lineNo
                    current = j
                }
                continue
            }
            let key: String, value: String?
            if let eq = l.firstIndex(of: "=") {
                key = String(l[..<eq]).trimmingSpaces.lowercased()
                value = String(l[l.index(after: eq)...]).trimmingSpaces
            } else {
                key = l.lowercased()
                value = nil
            }
            if !inGlobal && current == nil {
                throw BlockError(.invalidArgument, "line \(lineNo): key '\(key)' outside any [section]", path: source)
            }
            if warnOnlyKeys.contains(key) {
                warnings.append("\(source) line \(lineNo): fio key '\(key)' does not apply to blockscope and is ignored")
                continue
            }
            guard supportedKeys.contains(key) else {
                throw BlockError(.invalidArgument, "line \(lineNo): unknown key '\(key)' (see docs/JOBS.md for the supported fio keys)", path: source)
            }
            if key == "ioengine", let v = value?.lowercased(), FioJobFile.emulatedEngines.contains(v) {
                warnings.append("\(source) line \(lineNo): ioengine=\(v) is not emulated; blockscope does real I/O on the image")
            }
            if inGlobal {
                try apply(key, value, to: &global, line: lineNo, source: source)
            } else {
                try apply(key, value, to: &current!, line: lineNo, source: source)
            }
        }
        finish()
        if jobs.isEmpty {
            throw BlockError(.invalidArgument, "no job sections (a job file needs at least one [name] section besides [global])", path: source)
        }
        var group = 0
        for i in jobs.indices {
            if i > 0 && (jobs[i].stonewall || jobs[i].newGroup) { group += 1 }
            jobs[i].groupID = group
        }
        for j in jobs { try validate(j, source: source) }
        for j in jobs {
            if let w = j.waitFor, !jobs.contains(where: { $0.name == w && $0.line < j.line }) {
                throw BlockError(.invalidArgument, "job '\(j.name)' (line \(j.line)): wait_for=\(w) names no earlier job", path: source)
            }
        }
        return FioJobFile(jobs: jobs, warnings: warnings)
    }

    static func validate(_ j: FioJob, source: String) throws(BlockError) {
        func fail(_ m: String) -> BlockError {
            BlockError(.invalidArgument, "job '\(j.name)' (line \(j.line)): \(m)", path: source)
        }
        if j.bsMin == 0 || j.bsMax < j.bsMin { throw fail("block size range \(j.bsMin)-\(j.bsMax) is empty") }
        if j.bsMax > 64 << 20 { throw fail("block size \(j.bsMax) is larger than 64 MiB") }
        if j.alignment == 0 { throw fail("blockalign must be positive") }
        if j.iodepth < 1 || j.iodepth > 4096 { throw fail("iodepth \(j.iodepth) is outside 1...4096") }
        if j.numjobs < 1 || j.numjobs > 256 { throw fail("numjobs \(j.numjobs) is outside 1...256") }
        if j.timeBased && j.runtimeNs == nil && j.steadyState == nil { throw fail("time_based needs a runtime") }
        for d in 0..<3 where !j.bsSplit[d].isEmpty {
            let total = j.bsSplit[d].reduce(0) { $0 + $1.percent }
            if total != 100 { throw fail("bssplit shares of the \(["read", "write", "trim"][d]) direction add up to \(total)%, not 100%") }
        }
        if j.loops < 1 { throw fail("loops must be at least 1") }
        if j.verify != nil || j.verifyOnly {
            if j.bsMin != j.bsMax && j.verify != .pattern { throw fail("verify needs a fixed block size (bs), not bsrange or bssplit") }
            if let vi = j.verifyInterval, vi == 0 || j.bsMin % vi != 0 || (j.verify != .pattern && vi < 512) {
                throw fail("verify_interval \(vi) must divide bs \(j.bsMin) and be at least 512")
            }
            if j.verify == .pattern && (j.verifyPattern ?? []).isEmpty { throw fail("verify=pattern needs verify_pattern") }
            if j.alignment % j.bsMin != 0 { throw fail("verify needs blockalign to be a multiple of bs") }
            if j.bsMin < 512 && j.verify != .pattern { throw fail("verify needs bs >= 512 (each block carries a header)") }
            if j.verifyOnly && j.verify == nil { throw fail("verify_only needs verify=crc32c or verify=md5") }
        }
    }

    /// Parses fio's time values: plain seconds or a `us`, `ms`, `s`, `m`, `h` suffix.
    public static func parseTime(_ s: String) -> UInt64? { parseTime(s, bareUnitNs: 1_000_000_000) }

    /// Parses a time whose bare number is in units of `bareUnitNs` nanoseconds (fio reads
    /// `thinktime=2000` and `latency_target=500000` as microseconds); nil on bad input or overflow.
    public static func parseTime(_ s: String, bareUnitNs: UInt64) -> UInt64? {
        let t = s.lowercased().trimmingSpaces
        let units: [(String, UInt64)] = [("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)]
        for (u, mult) in units where t.hasSuffix(u) {
            let num = t.dropLast(u.count)
            if let v = UInt64(num) { return v.multipliedReportingOverflow(by: mult).overflow ? nil : v * mult }
        }
        if let v = UInt64(t) { return v.multipliedReportingOverflow(by: bareUnitNs).overflow ? nil : v * bareUnitNs }
        return nil
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and carriage returns.
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}

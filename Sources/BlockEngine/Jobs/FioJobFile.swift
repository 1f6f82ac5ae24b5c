import BlockCore

/// The I/O pattern of a job (fio's `rw=`).
public enum RwMode: String, Sendable, CaseIterable {
    /// Sequential reads.
    case read
    /// Sequential writes.
    case write
    /// Random reads.
    case randread
    /// Random writes.
    case randwrite
    /// Sequential mixed reads and writes (`rw` or `readwrite`), split by `rwmixread`.
    case readwrite
    /// Random mixed reads and writes, split by `rwmixread`.
    case randrw
    /// Sequential trims (discards).
    case trim
    /// Random trims.
    case randtrim

    /// Whether offsets are drawn at random (otherwise they advance sequentially).
    public var isRandom: Bool { self == .randread || self == .randwrite || self == .randrw || self == .randtrim }
    /// Whether the job writes (so needs a writable image).
    public var writes: Bool { self != .read && self != .randread }
    /// Whether reads and writes are mixed.
    public var isMixed: Bool { self == .readwrite || self == .randrw }
}

/// The checksum a `verify=` job stores in each block's header.
public enum VerifyKind: String, Sendable, CaseIterable {
    /// CRC-32C (Castagnoli), 4 bytes.
    case crc32c
    /// MD5, 16 bytes.
    case md5
}

/// One job of a fio job file: a section's keys merged over the `[global]` keys before it.
///
/// Sizes are bytes, times nanoseconds. A job with `numjobs=N` runs as N threads, each with
/// its own queue and its own PRNG stream (seeded from ``randseed`` and the thread index).
public struct FioJob: Sendable, Equatable {
    /// The section name (or `name=`).
    public var name: String
    /// The line of the section header in the job file.
    public var line: Int = 0
    /// The I/O pattern.
    public var rw: RwMode = .read
    /// Bytes skipped after each sequential request (fio's `rw=write:64k` suffix), 0 for none.
    public var sequentialSkip: UInt64 = 0
    /// Percentage of reads in a mixed job (0...100).
    public var rwmixread: Int = 50
    /// Smallest block size in bytes.
    public var bsMin: UInt64 = 4096
    /// Largest block size in bytes (equal to ``bsMin`` unless `bsrange` was given).
    public var bsMax: UInt64 = 4096
    /// Alignment of random offsets in bytes (nil: the smallest block size).
    public var blockalign: UInt64? = nil
    /// Bytes to transfer and the length of the region (nil: from ``offset`` to the end of the disk).
    public var size: UInt64? = nil
    /// Start of the job's region in bytes.
    public var offset: UInt64 = 0
    /// Requests kept in flight per thread.
    public var iodepth: Int = 1
    /// Threads running this job, each on its own queue.
    public var numjobs: Int = 1
    /// Stop after this many requests per thread (overrides ``size`` as the amount of I/O).
    public var numberIos: UInt64? = nil
    /// Time limit in nanoseconds.
    public var runtimeNs: UInt64? = nil
    /// Keep going (wrapping around the region) until ``runtimeNs`` has passed.
    public var timeBased: Bool = false
    /// Issue a flush after every N writes (0: never).
    public var fsync: Int = 0
    /// Flush once at the end of the job.
    public var endFsync: Bool = false
    /// Seed of the job's PRNG (fio's default is 0x89).
    public var randseed: UInt64 = 0x89
    /// Write blocks with a verification header and check them afterwards.
    public var verify: VerifyKind? = nil
    /// Only check blocks an earlier run with the same seed wrote; write nothing.
    public var verifyOnly: Bool = false
    /// Never have two overlapping requests in flight at once.
    public var serializeOverlap: Bool = false
    /// The engine: `.uring` for io_uring/libaio, `.sync` for sync/psync/pvsync.
    public var engine: EngineKind = .auto
    /// Open the image with O_DIRECT (buffers are always 4 KiB aligned).
    public var direct: Bool = false
    /// Report the job's threads as one entry.
    public var groupReporting: Bool = false

    /// Creates a job with fio's defaults.
    public init(name: String) { self.name = name }

    /// The effective alignment of random offsets.
    public var alignment: UInt64 { blockalign ?? bsMin }
}

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
        "filename", "directory", "filename_format", "thread", "norandommap", "randrepeat", "invalidate",
        "iodepth_batch", "iodepth_batch_submit", "iodepth_batch_complete", "iodepth_batch_complete_min",
        "iodepth_batch_complete_max", "iodepth_low", "gtod_reduce", "refill_buffers", "scramble_buffers",
        "zero_buffers", "ramp_time", "stonewall", "wait_for_previous", "new_group", "log_avg_msec", "write_bw_log",
        "write_lat_log", "write_iops_log", "write_hist_log", "per_job_logs", "lat_percentiles",
        "clat_percentiles", "slat_percentiles", "percentile_list", "disable_lat", "disable_clat",
        "disable_slat", "disable_bw_measurement", "cpus_allowed", "cpumask", "nice", "prio", "prioclass",
        "hipri", "fixedbufs", "registerfiles", "sqthread_poll", "sqthread_poll_cpu", "fadvise_hint",
        "allow_file_create", "create_on_open", "unlink", "overwrite", "file_service_type", "nrfiles",
        "description", "kb_base", "unit_base", "exitall", "continue_on_error", "ioscheduler",
        "random_generator", "do_verify", "verify_fatal", "verify_backlog", "verify_dump", "fallocate",
        "sync", "startdelay", "loops", "clocksource", "group", "uid", "gid",
    ]

    /// Keys blockscope implements (aliases included).
    public static let supportedKeys: Set<String> = [
        "name", "rw", "readwrite", "rwmixread", "rwmixwrite", "bs", "blocksize", "bsrange", "blocksize_range",
        "blockalign", "ba", "size", "offset", "iodepth", "numjobs", "number_ios", "runtime", "time_based",
        "fsync", "fdatasync", "end_fsync", "randseed", "verify", "verify_only", "serialize_overlap",
        "ioengine", "direct", "buffered", "group_reporting",
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
        for j in jobs { try validate(j, source: source) }
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
        if j.timeBased && j.runtimeNs == nil { throw fail("time_based needs a runtime") }
        if j.verify != nil || j.verifyOnly {
            if j.bsMin != j.bsMax { throw fail("verify needs a fixed block size (bs), not bsrange") }
            if j.alignment % j.bsMin != 0 { throw fail("verify needs blockalign to be a multiple of bs") }
            if j.bsMin < 512 { throw fail("verify needs bs >= 512 (each block carries a header)") }
            if j.verifyOnly && j.verify == nil { throw fail("verify_only needs verify=crc32c or verify=md5") }
            if j.timeBased { throw fail("verify cannot be combined with time_based (the checked blocks must be known)") }
        }
    }

    /// Applies one key to a job; values are validated here so errors carry the line.
    static func apply(_ key: String, _ value: String?, to j: inout FioJob, line: Int, source: String) throws(BlockError) {
        func fail(_ m: String) -> BlockError {
            BlockError(.invalidArgument, "line \(line): \(key): \(m)", path: source)
        }
        func need() throws(BlockError) -> String {
            guard let value, !value.isEmpty else { throw fail("needs a value") }
            return value
        }
        func size() throws(BlockError) -> UInt64 {
            let v = try need()
            guard let s = CommandScript.parseSize(v) else { throw fail("'\(v)' is not a size (e.g. 4k, 1M, 0x1000)") }
            return s
        }
        func int(_ range: ClosedRange<Int>) throws(BlockError) -> Int {
            let v = try need()
            guard let n = Int(v), range.contains(n) else { throw fail("'\(v)' is not an integer in \(range.lowerBound)...\(range.upperBound)") }
            return n
        }
        func bool() throws(BlockError) -> Bool {
            guard let value, !value.isEmpty else { return true }
            switch value.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw fail("'\(value)' is not a boolean (0 or 1)")
            }
        }
        switch key {
        case "name": j.name = try need()
        case "rw", "readwrite":
            var v = try need().lowercased()
            // fio's "write:64k": a sequential pattern with a hole after each request.
            if let colon = v.firstIndex(of: ":") {
                let skip = String(v[v.index(after: colon)...])
                guard let n = CommandScript.parseSize(skip) else { throw fail("'\(skip)' after ':' is not a size (like 64k)") }
                j.sequentialSkip = n
                v = String(v[..<colon])
            }
            switch v {
            case "rw", "readwrite": j.rw = .readwrite
            default:
                guard let m = RwMode(rawValue: v) else {
                    throw fail("'\(v)' is not one of read, write, randread, randwrite, rw, readwrite, randrw, trim, randtrim")
                }
                j.rw = m
            }
        case "rwmixread": j.rwmixread = try int(0...100)
        case "rwmixwrite": j.rwmixread = 100 - (try int(0...100))
        case "bs", "blocksize":
            let s = try size()
            j.bsMin = s; j.bsMax = s
        case "bsrange", "blocksize_range":
            let v = try need()
            let parts = v.split(separator: "-").map { String($0) }
            guard parts.count == 2, let lo = CommandScript.parseSize(parts[0]), let hi = CommandScript.parseSize(parts[1]), lo <= hi else {
                throw fail("'\(v)' is not a range like 4k-64k")
            }
            j.bsMin = lo; j.bsMax = hi
        case "blockalign", "ba": j.blockalign = try size()
        case "size": j.size = try size()
        case "offset": j.offset = try size()
        case "iodepth": j.iodepth = try int(1...4096)
        case "numjobs": j.numjobs = try int(1...256)
        case "number_ios": j.numberIos = UInt64(try int(0...Int.max))
        case "runtime":
            let v = try need()
            guard let ns = parseTime(v) else { throw fail("'\(v)' is not a time (e.g. 10, 10s, 500ms, 2m)") }
            j.runtimeNs = ns
        case "time_based": j.timeBased = try bool()
        case "fsync", "fdatasync": j.fsync = try int(0...Int(Int32.max))
        case "end_fsync": j.endFsync = try bool()
        case "randseed":
            let v = try need()
            guard let s = v.hasPrefix("0x") ? UInt64(v.dropFirst(2), radix: 16) : UInt64(v) else { throw fail("'\(v)' is not an integer") }
            j.randseed = s
        case "verify":
            let v = try need().lowercased()
            if v == "0" || v == "null" { j.verify = nil; break }
            guard let k = VerifyKind(rawValue: v) else { throw fail("'\(v)' is not supported (use crc32c or md5)") }
            j.verify = k
        case "verify_only": j.verifyOnly = try bool()
        case "serialize_overlap": j.serializeOverlap = try bool()
        case "ioengine":
            let v = try need().lowercased()
            switch v {
            case "io_uring", "libaio", "posixaio": j.engine = .uring
            case "sync", "psync", "pvsync", "pvsync2", "vsync": j.engine = .sync
            default: throw fail("'\(v)' is not supported (use io_uring, libaio, sync, psync or pvsync)")
            }
        case "direct": j.direct = try bool()
        case "buffered": j.direct = !(try bool())
        case "group_reporting": j.groupReporting = try bool()
        default:
            throw fail("unknown key")
        }
    }

    /// Parses fio's time values: plain seconds or a `us`, `ms`, `s`, `m`, `h` suffix.
    public static func parseTime(_ s: String) -> UInt64? {
        let t = s.lowercased()
        let units: [(String, UInt64)] = [("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)]
        for (u, mult) in units where t.hasSuffix(u) {
            let num = t.dropLast(u.count)
            if let v = UInt64(num) { return v.multipliedReportingOverflow(by: mult).overflow ? nil : v * mult }
        }
        if let v = UInt64(t) { return v.multipliedReportingOverflow(by: 1_000_000_000).overflow ? nil : v * 1_000_000_000 }
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

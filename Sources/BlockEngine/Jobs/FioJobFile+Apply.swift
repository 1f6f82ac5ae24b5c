import BlockIO

extension FioJobFile {
    /// fio engines that do no real I/O in fio; blockscope runs them on the image with a warning.
    static let emulatedEngines: Set<String> = ["null", "cpuio"]

    /// Applies one key to a job; values are validated here so errors carry the line.
    static func apply(_ key: String, _ value: String?, to j: inout FioJob, line: Int, source: String) throws(BlockError) {
        let p = ValueParser(key: key, value: value, line: line, source: source)
        switch key {
        case "name": j.name = try p.need()
        case "rw", "readwrite": try applyRw(p, to: &j)
        case "rwmixread": j.rwmixread = try p.int(0...100)
        case "rwmixwrite": j.rwmixread = 100 - (try p.int(0...100))
        case "bs", "blocksize":
            let dirs = try p.perDirection { (v: String) throws(BlockError) -> UInt64 in try p.size(v) }
            if dirs.allSatisfy({ $0 == dirs[0] }), let s = dirs[0] {
                j.bsSplit = [[], [], []]
                j.bsMin = s; j.bsMax = s
            } else {
                for d in 0..<3 { if let s = dirs[d] { j.bsSplit[d] = [BlockSizeShare(size: s, percent: 100)] } }
                try refreshBlockSizes(&j, p)
            }
        case "bsrange", "blocksize_range":
            let v = try p.need()
            // The read range (fio: READ,WRITE,TRIM); `,` alone has none, and fio refuses it too
            // (found by the jobfile fuzz target: `bsrange=,` trapped on an empty split).
            let parts = (v.split(separator: ",").first ?? "").split(separator: "-").map { String($0) }
            guard parts.count == 2, let lo = CommandScript.parseSize(parts[0]), let hi = CommandScript.parseSize(parts[1]), lo <= hi, lo > 0 else {
                throw p.fail("'\(v)' is not a range like 4k-64k")
            }
            j.bsSplit = [[], [], []]
            j.bsMin = lo; j.bsMax = hi
        case "bssplit":
            j.bsSplit = try parseBsSplit(p)
            try refreshBlockSizes(&j, p)
        case "blockalign", "ba": j.blockalign = try p.size()
        case "size": j.size = try p.size()
        case "filesize": j.fileSize = try p.size()
        case "io_size", "io_limit": j.ioSize = try p.size()
        case "loops": j.loops = try p.int(1...1_000_000)
        case "offset": j.offset = try p.size()
        case "offset_increment": j.offsetIncrement = try p.size()
        case "iodepth": j.iodepth = try p.int(1...4096)
        case "numjobs": j.numjobs = try p.int(1...256)
        case "number_ios": j.numberIos = UInt64(try p.int(0...Int.max))
        case "runtime", "timeout": j.runtimeNs = try p.time(unitNs: 1_000_000_000)
        case "time_based": j.timeBased = try p.bool()
        case "startdelay": j.startDelayNs = try p.time(unitNs: 1_000_000_000)
        case "ramp_time": j.rampTimeNs = try p.time(unitNs: 1_000_000_000)
        case "fsync", "fdatasync": j.fsync = try p.int(0...Int(Int32.max))
        case "end_fsync": j.endFsync = try p.bool()
        case "randseed":
            let v = try p.need()
            guard let s = v.hasPrefix("0x") ? UInt64(v.dropFirst(2), radix: 16) : UInt64(v) else { throw p.fail("'\(v)' is not an integer") }
            j.randseed = s
        case "randrepeat": j.randrepeat = try p.bool()
        case "norandommap": j.randomMap = !(try p.bool())
        case "random_generator":
            let v = try p.need().lowercased()
            guard ["tausworthe", "lfsr", "tausworthe64"].contains(v) else { throw p.fail("'\(v)' is not one of tausworthe, lfsr, tausworthe64") }
        case "random_distribution": j.distribution = try parseDistribution(p)
        case "rate": j.rateBytes = try p.perDirection { (v: String) throws(BlockError) -> UInt64 in try p.size(v) }.map { $0 ?? 0 }
        case "rate_iops": j.rateIops = try p.perDirection { (v: String) throws(BlockError) -> UInt64 in try p.count(v) }.map { $0 ?? 0 }
        case "ratemin", "rate_min": j.rateMinBytes = try p.perDirection { (v: String) throws(BlockError) -> UInt64 in try p.size(v) }.map { $0 ?? 0 }
        case "rate_iops_min": j.rateMinIops = try p.perDirection { (v: String) throws(BlockError) -> UInt64 in try p.count(v) }.map { $0 ?? 0 }
        case "rate_process":
            let v = try p.need().lowercased()
            guard let r = RateProcess(rawValue: v) else { throw p.fail("'\(v)' is not linear or poisson") }
            j.rateProcess = r
        case "io_submit_mode":
            let v = try p.need().lowercased()
            guard v == "inline" || v == "offload" else { throw p.fail("'\(v)' is not inline or offload") }
        case "thinktime": j.thinktimeNs = try p.time(unitNs: 1_000)
        case "thinktime_spin": _ = try p.time(unitNs: 1_000)
        case "thinktime_blocks": j.thinktimeBlocks = try p.int(1...Int(Int32.max))
        case "flow": j.flow = try p.int(0...1_000_000)
        case "flow_id": j.flowID = try p.int(0...Int(Int32.max))
        case "flow_sleep": j.flowSleepNs = try p.time(unitNs: 1_000)
        case "stonewall", "wait_for_previous": j.stonewall = try p.bool()
        case "new_group": j.newGroup = try p.bool()
        case "wait_for": j.waitFor = try p.need()
        case "exitall": j.exitall = try p.bool()
        case "exit_what":
            let v = try p.need().lowercased()
            guard let w = ExitWhat(rawValue: v) else { throw p.fail("'\(v)' is not group, stonewall or all") }
            j.exitWhat = w
        case "latency_target": j.latencyTargetNs = try p.time(unitNs: 1_000)
        case "latency_window": j.latencyWindowNs = try p.time(unitNs: 1_000)
        case "latency_percentile":
            let v = try p.need()
            guard let d = Double(v.hasSuffix("%") ? String(v.dropLast()) : v), d > 0, d <= 100 else { throw p.fail("'\(v)' is not a percentile in (0, 100]") }
            j.latencyPercentile = d
        case "ss", "steadystate": j.steadyState = try parseSteadyState(p, keeping: j.steadyState)
        case "ss_dur", "steadystate_duration":
            var s = j.steadyState ?? SteadyStateSpec(metric: .iops, slope: false, limit: 10, percent: true)
            s.durationNs = try p.time(unitNs: 1_000_000_000)
            j.steadyState = s
        case "ss_ramp", "steadystate_ramp_time":
            var s = j.steadyState ?? SteadyStateSpec(metric: .iops, slope: false, limit: 10, percent: true)
            s.rampNs = try p.time(unitNs: 1_000_000_000)
            j.steadyState = s
        case "verify": j.verify = try parseVerify(p)
        case "do_verify": j.doVerify = try p.bool()
        case "verify_interval": j.verifyInterval = try p.size()
        case "verify_pattern": j.verifyPattern = try parsePattern(p)
        case "verify_backlog": j.verifyBacklog = try p.int(0...Int(Int32.max))
        case "verify_only": j.verifyOnly = try p.bool()
        case "fill_device", "fill_fs": j.fillDevice = try p.bool()
        case "zonemode":
            let v = try p.need().lowercased()
            guard v == "none" || v == "strided" else { throw p.fail("'\(v)' is not supported (none or strided)") }
            j.zoneStrided = v == "strided"
        case "zonesize": j.zoneSize = try p.size()
        case "zoneskip": j.zoneSkip = try p.size()
        case "serialize_overlap": j.serializeOverlap = try p.bool()
        case "ioengine":
            let v = try p.need().lowercased()
            switch v {
            case "io_uring", "libaio", "posixaio", "null", "cpuio": j.engine = .uring
            case "sync", "psync", "pvsync", "pvsync2", "vsync", "mmap": j.engine = .sync
            default: throw p.fail("'\(v)' is not supported (use io_uring, libaio, sync, psync or pvsync)")
            }
        case "direct": j.direct = try p.bool()
        case "buffered": j.direct = !(try p.bool())
        case "group_reporting": j.groupReporting = try p.bool()
        case "thread", "threads": _ = try p.bool()
        default:
            throw p.fail("unknown key")
        }
    }

    static func applyRw(_ p: ValueParser, to j: inout FioJob) throws(BlockError) {
        var v = try p.need().lowercased()
        j.sequentialSkip = 0
        // fio's "write:64k" (a hole after each request) and "read:-8k" (backwards).
        if let colon = v.firstIndex(of: ":") {
            var skip = String(v[v.index(after: colon)...]).trimmingSpaces
            let negative = skip.hasPrefix("-")
            if negative { skip.removeFirst() }
            guard let n = CommandScript.parseSize(skip), n < 1 << 50 else { throw p.fail("'\(skip)' after ':' is not a size (like 64k or -8k)") }
            j.sequentialSkip = negative ? -Int64(n) : Int64(n)
            v = String(v[..<colon])
        }
        switch v {
        case "rw", "readwrite": j.rw = .readwrite
        default:
            guard let m = RwMode(rawValue: v) else {
                throw p.fail("'\(v)' is not one of read, write, randread, randwrite, rw, readwrite, randrw, trim, randtrim")
            }
            j.rw = m
        }
    }

    /// Recomputes ``FioJob/bsMin``/``FioJob/bsMax`` from the per-direction split.
    static func refreshBlockSizes(_ j: inout FioJob, _ p: ValueParser) throws(BlockError) {
        let sizes = j.bsSplit.flatMap { $0.map { $0.size } }
        guard let lo = sizes.min(), let hi = sizes.max() else { return }
        if lo == 0 { throw p.fail("a block size of 0") }
        // Directions without entries use the smallest size, as fio falls back to the read split.
        for d in 0..<3 where j.bsSplit[d].isEmpty { j.bsSplit[d] = j.bsSplit.first { !$0.isEmpty } ?? [] }
        j.bsMin = lo; j.bsMax = hi
    }

    static func parseVerify(_ p: ValueParser) throws(BlockError) -> VerifyKind? {
        let v = try p.need().lowercased()
        switch v {
        case "0", "null", "none": return nil
        case "crc32c", "crc32c-intel", "crc32", "crc16", "crc7", "crc64", "xxhash": return .crc32c
        case "md5", "sha1", "sha256", "sha512", "sha3-224", "sha3-256", "sha3-384", "sha3-512": return .md5
        case "meta": return .meta
        case "pattern": return .pattern
        default: throw p.fail("'\(v)' is not supported (crc32c, crc32, crc64, md5, sha1, sha256, xxhash, meta, pattern)")
        }
    }

    /// fio's `verify_pattern`: `0x` hex bytes, a decimal integer (its low bytes) or a quoted string.
    static func parsePattern(_ p: ValueParser) throws(BlockError) -> [UInt8] {
        let v = try p.need()
        if v.hasPrefix("0x") || v.hasPrefix("0X") {
            let hex = Array(v.dropFirst(2))
            guard !hex.isEmpty, hex.count <= 1024, hex.allSatisfy({ $0.isHexDigit }) else { throw p.fail("'\(v)' is not a hex pattern") }
            let digits = hex.count % 2 == 1 ? ["0"] + hex : hex
            return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
        }
        if v.count >= 2, let q = v.first, q == "\"" || q == "'", v.last == q {
            let bytes = Array(v.dropFirst().dropLast().utf8)
            guard !bytes.isEmpty, bytes.count <= 512 else { throw p.fail("a pattern string must hold 1...512 bytes") }
            return bytes
        }
        guard let n = UInt32(v) else { throw p.fail("'\(v)' is not a pattern (0xHEX, an integer or a quoted string)") }
        return withUnsafeBytes(of: n.littleEndian) { Array($0) }
    }
}

/// Parses one key's value, turning bad input into one error naming the file, line and key.
struct ValueParser {
    let key: String
    let value: String?
    let line: Int
    let source: String

    func fail(_ m: String) -> BlockError {
        BlockError(.invalidArgument, "line \(line): \(key): \(m)", path: source)
    }

    func need() throws(BlockError) -> String {
        guard let value, !value.isEmpty else { throw fail("needs a value") }
        return value
    }

    func size(_ given: String? = nil) throws(BlockError) -> UInt64 {
        let v: String
        if let given { v = given } else { v = try need() }
        guard let s = CommandScript.parseSize(v.trimmingSpaces) else { throw fail("'\(v)' is not a size (e.g. 4k, 1M, 0x1000)") }
        return s
    }

    func count(_ v: String) throws(BlockError) -> UInt64 {
        guard let n = UInt64(v.trimmingSpaces) else { throw fail("'\(v)' is not a count") }
        return n
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

    /// A time; a bare number is in units of `unitNs` (fio: seconds for runtime, microseconds for thinktime).
    func time(unitNs: UInt64) throws(BlockError) -> UInt64 {
        let v = try need()
        guard let ns = FioJobFile.parseTime(v, bareUnitNs: unitNs) else { throw fail("'\(v)' is not a time (e.g. 10, 10s, 500ms, 2m, 100us)") }
        return ns
    }

    /// fio's `read,write,trim` lists: `4k` for all, `4k,8k` (trims take the write value),
    /// `,8k` or `4k,` to leave a direction unset (nil).
    func perDirection<T>(_ parse: (String) throws(BlockError) -> T) throws(BlockError) -> [T?] {
        let parts = try need().split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
        guard parts.count <= 3 else { throw fail("more than three comma-separated values (read,write,trim)") }
        var out: [T?] = [nil, nil, nil]
        for (i, s) in parts.enumerated() where !s.isEmpty { out[i] = try parse(s) }
        if parts.count == 1 { out[1] = out[0]; out[2] = out[0] }
        if parts.count == 2 { out[2] = out[1] }
        return out
    }
}

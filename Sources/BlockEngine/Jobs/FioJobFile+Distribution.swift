import BlockIO

extension FioJobFile {
    /// Entries allowed in one direction of a `bssplit` or zoned distribution (fio's limit is 64).
    static let maxSplitEntries = 64

    /// `bssplit=4k/10:64k/50:32k/40[,write split[,trim split]]`; entries without a share
    /// split what the others leave of 100% evenly.
    static func parseBsSplit(_ p: ValueParser) throws(BlockError) -> [[BlockSizeShare]] {
        let dirs = try p.perDirection { (text: String) throws(BlockError) -> [BlockSizeShare] in
            let items = text.split(separator: ":").map { String($0).trimmingSpaces }
            guard !items.isEmpty, items.count <= maxSplitEntries else { throw p.fail("'\(text)' needs 1...\(maxSplitEntries) SIZE/PERCENT entries") }
            var out: [BlockSizeShare] = []
            var open: [Int] = []
            for item in items {
                let parts = item.split(separator: "/", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
                guard parts.count <= 2, let size = CommandScript.parseSize(parts[0]), size > 0 else {
                    throw p.fail("'\(item)' is not SIZE/PERCENT (like 4k/60)")
                }
                if parts.count == 2 && !parts[1].isEmpty {
                    guard let pct = Int(parts[1]), (0...100).contains(pct) else { throw p.fail("'\(parts[1])' in '\(item)' is not a percentage 0...100") }
                    out.append(BlockSizeShare(size: size, percent: pct))
                } else {
                    open.append(out.count)
                    out.append(BlockSizeShare(size: size, percent: 0))
                }
            }
            try fillRemainder(&out, open: open, p)
            return out.filter { $0.percent > 0 }
        }
        return dirs.map { $0 ?? [] }
    }

    static func fillRemainder(_ out: inout [BlockSizeShare], open: [Int], _ p: ValueParser) throws(BlockError) {
        let given = out.reduce(0) { $0 + $1.percent }
        guard given <= 100 else { throw p.fail("shares add up to \(given)%, more than 100%") }
        if open.isEmpty { return }
        let left = 100 - given
        for (k, i) in open.enumerated() { out[i].percent = left / open.count + (k < left % open.count ? 1 : 0) }
    }

    /// `random_distribution=random|zipf:θ|pareto:h|normal:σ|zoned:A/S:...|zoned_abs:A/SIZE:...`,
    /// optionally per direction (`zoned:...,zoned:...`).
    static func parseDistribution(_ p: ValueParser) throws(BlockError) -> [RandomDistribution] {
        let text = try p.need().lowercased()
        let dirs = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
        guard dirs.count <= 3 else { throw p.fail("more than three comma-separated distributions (read,write,trim)") }
        // fio's per-direction form repeats the model name only in the first part ("zoned:a/b,c/d").
        let model = dirs[0].split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
        var out: [RandomDistribution?] = [nil, nil, nil]
        for (i, d) in dirs.enumerated() where !d.isEmpty {
            let full = d.contains(":") || d == "random" ? d : model + ":" + d
            out[i] = try parseOneDistribution(full, p)
        }
        if dirs.count == 1 { out[1] = out[0]; out[2] = out[0] }
        if dirs.count == 2 { out[2] = out[1] }
        return out.map { $0 ?? .random }
    }

    static func parseOneDistribution(_ d: String, _ p: ValueParser) throws(BlockError) -> RandomDistribution {
        // Empty parts kept: ":" is a distribution with no name (fio refuses it as well), not
        // an empty array (found by the jobfile fuzz target: "Index out of range").
        let parts = d.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map { String($0) }
        let name = parts[0]
        let arg = parts.count > 1 ? parts[1] : ""
        func number(_ range: ClosedRange<Double>, _ what: String) throws(BlockError) -> Double {
            // An optional second value (the centre) is accepted and ignored: offsets are scattered.
            let first = arg.split(separator: ":").first.map(String.init) ?? ""
            guard let v = Double(first), range.contains(v), v.isFinite else { throw p.fail("\(name) needs \(what), got '\(arg)'") }
            return v
        }
        switch name {
        case "random": return .random
        case "zipf":
            let t = try number(0.000001...100, "a theta > 0 (like zipf:1.2)")
            if t == 1 { throw p.fail("zipf theta must not be 1") }
            return .zipf(theta: t)
        case "pareto":
            let h = try number(0.000001...0.999999, "a power 0 < h < 1 (like pareto:0.9)")
            return .pareto(h: h)
        case "normal", "gauss": return .normal(deviation: try number(0...100, "a deviation 0...100 (like normal:10)"))
        case "zoned", "zoned_abs":
            let items = arg.split(separator: ":").map { String($0).trimmingSpaces }
            guard !items.isEmpty, items.count <= maxSplitEntries else { throw p.fail("\(name) needs 1...\(maxSplitEntries) ACCESS/SIZE zones") }
            var zones: [AccessZone] = []
            var open: [Int] = []
            for item in items {
                let ab = item.split(separator: "/", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
                guard ab.count == 2, let a = Int(ab[0]), (0...100).contains(a) else { throw p.fail("'\(item)' is not ACCESS%/SIZE (like 50/5)") }
                if ab[1].isEmpty {
                    open.append(zones.count)
                    zones.append(AccessZone(accessPercent: a, size: 0))
                } else if name == "zoned" {
                    guard let s = UInt64(ab[1].hasSuffix("%") ? String(ab[1].dropLast()) : ab[1]), s <= 100 else {
                        throw p.fail("'\(ab[1])' in '\(item)' is not a percentage of the region")
                    }
                    zones.append(AccessZone(accessPercent: a, size: s))
                } else {
                    guard let s = CommandScript.parseSize(ab[1]), s > 0 else { throw p.fail("'\(ab[1])' in '\(item)' is not a size") }
                    zones.append(AccessZone(accessPercent: a, size: s))
                }
            }
            let access = zones.reduce(0) { $0 + $1.accessPercent }
            guard access == 100 else { throw p.fail("zone accesses add up to \(access)%, not 100%") }
            if name == "zoned" {
                let sized = zones.reduce(UInt64(0)) { $0 + $1.size }
                guard sized <= 100 else { throw p.fail("zone sizes add up to \(sized)%, more than 100%") }
                for i in open { zones[i].size = (100 - sized) / UInt64(open.count) }
                return .zoned(zones.filter { $0.size > 0 || $0.accessPercent > 0 })
            }
            guard open.isEmpty else { throw p.fail("zoned_abs zones need a size each") }
            return .zonedAbs(zones)
        default:
            throw p.fail("'\(name)' is not one of random, zipf, pareto, normal, zoned, zoned_abs")
        }
    }

    /// `ss=iops:10%`, `ss=bw_slope:1%`, `ss=iops_slope:20`, `lat:5%` (limit in percent of the
    /// mean, or absolute without `%`).
    static func parseSteadyState(_ p: ValueParser, keeping old: SteadyStateSpec?) throws(BlockError) -> SteadyStateSpec {
        let v = try p.need().lowercased()
        let parts = v.split(separator: ":", maxSplits: 1).map { String($0).trimmingSpaces }
        guard parts.count == 2 else { throw p.fail("'\(v)' is not METRIC:LIMIT (like iops:10% or bw_slope:1%)") }
        let slope = parts[0].hasSuffix("_slope")
        let metricName = slope ? String(parts[0].dropLast(6)) : parts[0]
        guard let metric = SteadyStateMetric(rawValue: metricName) else {
            throw p.fail("'\(parts[0])' is not iops, iops_slope, bw, bw_slope, lat or lat_slope")
        }
        let percent = parts[1].hasSuffix("%")
        guard let limit = Double(percent ? String(parts[1].dropLast()) : parts[1]), limit >= 0, limit.isFinite else {
            throw p.fail("'\(parts[1])' is not a limit (like 10% or 2000)")
        }
        var s = SteadyStateSpec(metric: metric, slope: slope, limit: limit, percent: percent)
        s.durationNs = old?.durationNs ?? 0
        s.rampNs = old?.rampNs ?? 0
        return s
    }
}

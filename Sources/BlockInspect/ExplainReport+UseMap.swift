import BlockIO

/// Capability: a disk `blockscope explain` can explain (VHDX and VHD; QCOW2 is explained over
/// ``Qcow2Structure``, which also reads images that no longer open).
public protocol ExplainableDisk: StructuredDisk, InspectableDisk {
    /// The space table, findings and remedies of this image. Walks the whole BAT.
    func explain() throws(BlockError) -> ExplainReport
}

extension ExplainReport {
    /// A report for a block-map format from its structure walk: every unit of the use map by
    /// kind; units holding metadata are split byte by byte along ``StructuredDisk/hostRegions()``
    /// (the rest of such a unit is unused); data units that are holes throughout count as
    /// holes; free units inside the used part are unused (their hole bytes: holes), those
    /// after the last structure past the end. `kind` names a region's space kind (nil: data).
    /// Findings: one ``ExplainFindingClass/structureError`` when `check` reports problems.
    /// Reclaim: `convert` from the guest map, as `qemu-img measure` counts (`measureAll`: the
    /// format's QEMU driver reports no block status, so measure counts every guest byte).
    package static func blockMap(_ disk: any ExplainableDisk, file: SystemFile, format: String, kinds: [ExplainSpaceKind], measureAll: Bool = false,
                         kind: (HostRegion) -> ExplainSpaceKind) throws(BlockError) -> ExplainReport {
        let size = try file.size()
        let map = try disk.walkStructure(progress: nil)
        let unit = map.unit
        let holes = HostHoles(file: file, size: size)
        let whole = holes.wholeUnits(unit: unit, size: size)
        let regions = disk.hostRegions().filter { $0.kind.isMetadata && $0.length > 0 && $0.offset < size }
        var report = ExplainReport(format: format, fileSize: size, allocatedOnDisk: (try? file.allocatedSize()) ?? size, unit: unit)
        var by: [ExplainSpaceKind: UInt64] = [:]
        let n = Int((size + unit - 1) / unit)
        var lastUsed = -1
        for i in 0..<min(n, map.count) where map.kind(i) != .free { lastUsed = i }
        let usedEnd = min(size, UInt64(lastUsed + 1) * unit)
        var i = 0
        while i < n && UInt64(i) * unit < usedEnd {
            let start = UInt64(i) * unit, b = min(unit, size - start)
            let k = map.kind(i)
            if k == .free {
                let hb = holes.bytes(start, start + b)
                by[.holes, default: 0] += hb
                by[.unused, default: 0] += b - hb
            } else if k.isMetadata {
                var covered: UInt64 = 0
                var cursor = start
                for r in regions.sorted(by: { $0.offset < $1.offset }) {
                    let s = max(cursor, r.offset), e = min(start + b, r.offset + r.length)
                    if s < e { by[kind(r), default: 0] += e - s; covered += e - s; cursor = e }
                }
                // A unit no header-level region covers (a VHD block's bitmap) is its own kind.
                if covered == 0 { by[kind(HostRegion(kind: k, offset: start, length: b)), default: 0] += b } else { by[.unused, default: 0] += b - covered }
            } else {
                let sk = kind(HostRegion(kind: k, offset: start, length: b))
                if whole[i] { by[.holes, default: 0] += b } else { by[sk, default: 0] += b }
            }
            i += 1
        }
        if usedEnd < size {
            let hb = holes.bytes(usedEnd, size)
            by[.holes, default: 0] += hb
            by[.pastEnd, default: 0] += size - usedEnd - hb
        }
        report.space = kinds.map { ($0, by[$0] ?? 0) }
        let c = try disk.check(repair: nil)
        if c.corruptions + c.leaks + c.checkErrors > 0 {
            let lines = c.messages.prefix(5).joined(separator: "; ")
            report.findings.append(ExplainFinding(.structureError, host: [], clusters: UInt64(c.corruptions + c.leaks),
                                                  text: "check reports \(c.corruptions) corruption\(c.corruptions == 1 ? "" : "s") and \(c.leaks) leak\(c.leaks == 1 ? "" : "s"): \(lines)\(c.messages.count > 5 ? "; ..." : "")."))
        }
        var counter = ConvertClusterCounter()
        if measureAll { counter.add(0, disk.logicalSize, virtualSize: disk.logicalSize) }
        else { try disk.forEachMapExtent(detail: false) { e in if e.data && !e.zero { counter.add(e.start, e.length, virtualSize: disk.logicalSize) } } }
        let required = qcow2ConvertSize(virtualSize: disk.logicalSize, dataClusters: counter.clusters, hasBacking: false)
        report.reclaim = [("convert_size", .size(required)), ("convert", .int(Int64(bitPattern: size) - Int64(bitPattern: required)))]
        return report
    }
}

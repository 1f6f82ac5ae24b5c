import BlockIO

/// Bytes per cluster of a default `qemu-img convert -O qcow2` (64 KiB).
package let qcow2ConvertCluster: UInt64 = 64 << 10

/// What a plain `qemu-img convert -O qcow2` of an image writes, as `qemu-img measure -O
/// qcow2` computes its "required size" (QEMU 7.2's qcow2_measure with default options: 64 KiB
/// clusters, 16-bit refcounts): the metadata of a fully allocated image of `virtualSize`
/// (header, L2 and L1 tables, refcount table and blocks counting every cluster including
/// themselves), plus `dataClusters` 64 KiB clusters of non-zero data (`wholeDisk`: the whole
/// virtual size, as measure counts a raw external data file).
package func qcow2ConvertSize(virtualSize: UInt64, dataClusters: UInt64, hasBacking wholeDisk: Bool) -> UInt64 {
    let dcs = qcow2ConvertCluster
    let virtual = (virtualSize + dcs - 1) / dcs * dcs
    let data = wholeDisk ? virtual : dataClusters * dcs
    var meta = dcs                                 // header
    let l2e = (virtual / dcs + dcs / 8 - 1) / (dcs / 8) * (dcs / 8)
    meta += l2e * 8                                // L2 tables
    let l1e = (l2e * 8 / dcs + dcs / 8 - 1) / (dcs / 8) * (dcs / 8)
    meta += l1e * 8                                // L1 table
    let clusters = (meta + virtual) / dcs
    let perTable = dcs / 8, perBlock = dcs * 8 / 16
    var table: UInt64 = 0, blocks: UInt64 = 0, n: UInt64 = 0, last: UInt64 = 0
    repeat {
        last = n
        blocks = (clusters + table + blocks + perBlock - 1) / perBlock
        table = (blocks + perTable - 1) / perTable
        n = clusters + blocks + table
    } while n != last
    meta += (blocks + table) * dcs
    return meta + data
}

/// Counts the 64 KiB destination clusters guest extents touch, in ascending guest order
/// (each counted once), for ``qcow2ConvertSize(virtualSize:dataClusters:hasBacking:)``.
package struct ConvertClusterCounter {
    package private(set) var clusters: UInt64 = 0
    private var last: UInt64 = .max

    package init() {}

    /// Adds the guest bytes `[start, start+length)`, clipped to `virtualSize`.
    package mutating func add(_ start: UInt64, _ length: UInt64, virtualSize: UInt64) {
        guard length > 0, start < virtualSize else { return }
        let a = start / qcow2ConvertCluster
        let b = (min(virtualSize, start + length) - 1) / qcow2ConvertCluster
        var d = last == .max || a > last ? a : last + 1
        while d <= b { clusters += 1; last = d; d += 1 }
    }
}

extension ExplainReport {
    /// Replaces `convert_size` and `convert` with what a convert of the whole chain writes:
    /// `disk`'s data extents through its backing files (as `qemu-img map` lists them; zero
    /// extents skipped), as `qemu-img measure` counts an image with a backing file.
    public mutating func measureConvert(through disk: any InspectableDisk) throws(BlockError) {
        var counter = ConvertClusterCounter()
        let size = disk.logicalSize
        try disk.forEachMapExtent(detail: false) { e in if e.data && !e.zero { counter.add(e.start, e.length, virtualSize: size) } }
        let required = qcow2ConvertSize(virtualSize: size, dataClusters: counter.clusters, hasBacking: false)
        reclaim.removeAll { $0.key == "convert_size" || $0.key == "convert" }
        reclaim.append(("convert_size", .size(required)))
        reclaim.append(("convert", .int(Int64(bitPattern: fileSize) - Int64(bitPattern: required))))
    }
}

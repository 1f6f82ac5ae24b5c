/// One extent of `map` output, shaped like `qemu-img map --output=json`'s entries.
public struct MapExtent: Sendable, Equatable {
    /// Guest start offset in bytes.
    public var start: UInt64
    /// Length in bytes.
    public var length: UInt64
    /// Backing-chain depth the data comes from (0 = this image).
    public var depth: Int
    /// Whether the range is allocated somewhere in the chain (qemu-img's `present`).
    public var present: Bool
    /// Whether it reads as zeroes.
    public var zero: Bool
    /// Whether data is stored for it.
    public var data: Bool
    /// Host offset in the file at `depth`, when qemu-img would print one.
    public var offset: UInt64?
    /// blockscope's own detail (`--detail`): "compressed", "subclusters ...", a BAT state, ...
    public var detail: String?

    /// Creates an extent.
    public init(start: UInt64, length: UInt64, depth: Int, present: Bool, zero: Bool, data: Bool, offset: UInt64? = nil, detail: String? = nil) {
        self.start = start
        self.length = length
        self.depth = depth
        self.present = present
        self.zero = zero
        self.data = data
        self.offset = offset
        self.detail = detail
    }

    /// Whether `next` continues this extent the way qemu-img merges map entries
    /// (same flags and depth, contiguous guest range, contiguous host offsets or both absent).
    public func canMerge(with next: MapExtent) -> Bool {
        guard start + length == next.start, depth == next.depth, present == next.present,
              zero == next.zero, data == next.data, detail == next.detail else { return false }
        switch (offset, next.offset) {
        case (nil, nil): return true
        case let (a?, b?): return a + length == b
        default: return false
        }
    }

    /// The entry as qemu-img map's JSON object (with `detail` only when asked).
    public func json(includeDetail: Bool = false) -> JSONValue {
        var kv: [(String, JSONValue)] = [
            ("start", .size(start)), ("length", .size(length)), ("depth", .int(Int64(depth))),
            ("present", .bool(present)), ("zero", .bool(zero)), ("data", .bool(data)),
        ]
        if let offset { kv.append(("offset", .size(offset))) }
        if includeDetail, let detail { kv.append(("detail", .string(detail))) }
        return .object(kv)
    }
}

/// The index of the first of `extents` (in guest order, not overlapping: a map) that ends
/// after `offset`, by binary search; `extents.count` when none does. `map` of an image over a
/// backing file or parent starts there for each unallocated range instead of scanning the
/// backing image's map from its start (quadratic in ranges × backing extents).
package func firstExtentIndex(endingAfter offset: UInt64, in extents: [MapExtent]) -> Int {
    var lo = 0, hi = extents.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if extents[mid].start + extents[mid].length <= offset { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

/// Merges adjacent extents as qemu-img map does.
public func mergeExtents(_ extents: [MapExtent]) -> [MapExtent] {
    var out: [MapExtent] = []
    for e in extents { appendMerging(&out, e) }
    return out
}

/// Appends `e` to `out`, or lengthens the last extent when qemu-img would merge the two, so a
/// walk over millions of blocks holds only the merged list (an empty 64 TiB VHDX: one extent,
/// not two million). Empty extents are dropped.
public func appendMerging(_ out: inout [MapExtent], _ e: MapExtent) {
    guard e.length > 0 else { return }
    if let last = out.last, last.canMerge(with: e) {
        out[out.count - 1].length += e.length
    } else {
        out.append(e)
    }
}

/// The result of a consistency check, counted as `qemu-img check` counts.
public struct CheckReport: Sendable, Equatable {
    /// Metadata corruptions (refcount too low, bad COPIED flags, overlaps, entries past EOF).
    public var corruptions: Int = 0
    /// Leaked clusters or blocks (refcount too high or unreferenced).
    public var leaks: Int = 0
    /// QCOW2 over an open, written disk: clusters whose stored refcount is above their
    /// references only by releases a flush has queued (docs/adr/0006: applied by the first
    /// flush after the change that dropped the reference is stable). Not leaks; 0 for `check`
    /// of a file, which knows nothing queued in memory (qemu-img counts those as leaks).
    public var releasesPending: Int = 0
    /// Corruptions fixed by a repair.
    public var corruptionsFixed: Int = 0
    /// Leaks fixed by a repair.
    public var leaksFixed: Int = 0
    /// Errors that prevented checking parts of the image.
    public var checkErrors: Int = 0
    /// Data clusters or blocks allocated.
    public var allocatedClusters: UInt64 = 0
    /// Total clusters or blocks the guest size spans.
    public var totalClusters: UInt64 = 0
    /// Allocated clusters not contiguous with their guest predecessor.
    public var fragmentedClusters: UInt64 = 0
    /// Compressed clusters.
    public var compressedClusters: UInt64 = 0
    /// End of the last used host cluster (qemu-img's image-end-offset).
    public var imageEndOffset: UInt64? = nil
    /// One line per problem found, for the human output.
    public var messages: [String] = []
    /// What a repair would do (or did), in words.
    public var repairActions: [String] = []

    /// Creates an empty report.
    public init() {}

    /// qemu-img check's exit code: 0 clean, 2 corruptions, 3 leaks only (1 check errors).
    public var exitCode: Int32 {
        if checkErrors > 0 { return 1 }
        if corruptions > 0 { return 2 }
        if leaks > 0 { return 3 }
        return 0
    }
}

/// What a repair may fix (`check -r leaks|all`).
public enum RepairMode: String, Sendable, CaseIterable {
    /// Fix leaks only.
    case leaks
    /// Fix leaks and corruptions.
    case all
}

/// A disk whose layout can be listed and checked (`map`, `check`).
public protocol InspectableDisk: DiskFile {
    /// Extents of the whole guest range through the backing chain, unmerged or merged.
    func mapExtents() throws(BlockError) -> [MapExtent]
    /// Checks metadata consistency; with `repair`, fixes what the mode allows (needs a writable open).
    func check(repair: RepairMode?) throws(BlockError) -> CheckReport
    /// Streams the merged extents in guest order; with `detail`, adds blockscope's
    /// per-cluster detail where the format has any (others ignore it). Formats whose map is
    /// large (QCOW2) stream it in bounded memory; the default merges ``mapExtents()``.
    func forEachMapExtent(detail: Bool, _ body: (MapExtent) throws(BlockError) -> Void) throws(BlockError)
    /// Whether QEMU's driver for the format reports block status, so an image above this one
    /// in a chain sees its holes. QEMU 7.2's VHDX driver has none: `qemu-img map` shows a
    /// VHDX backing file as data over its whole size, and so does blockscope. Default true.
    var reportsBlockStatus: Bool { get }
}

extension InspectableDisk {
    /// true: the format's map is what a chain above it sees.
    public var reportsBlockStatus: Bool { true }

    /// The default: ``mapExtents()`` merged, then handed out one by one (`detail` ignored).
    public func forEachMapExtent(detail: Bool, _ body: (MapExtent) throws(BlockError) -> Void) throws(BlockError) {
        for e in mergeExtents(try mapExtents()) { try body(e) }
    }
}

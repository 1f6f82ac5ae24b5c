import BlockIO

/// The structure model's capability: a disk whose host file can be described as named
/// regions (``HostRegionKind``) and walked for what every unit of it holds. The CLI and the
/// TUI ask for this protocol, never for a concrete disk type.
public protocol StructuredDisk: DiskFile {
    /// Bytes per entry of the use map: the cluster size (QCOW2), 1 MiB (VHDX's allocation
    /// unit), the block size plus bitmap granularity (VHD: 512 bytes), or 64 KiB (RAW).
    var structureUnit: UInt64 { get }
    /// Named regions known from the headers and top-level tables alone (no per-cluster work,
    /// so cheap enough before a first frame at any image size). Parts that could not be read
    /// are ``HostRegionKind/unreadable`` regions whose label says why.
    func hostRegions() -> [HostRegion]
    /// Walks the whole image (every table; seconds at TiB scale, so run it off the UI
    /// thread) and returns what each unit of the host file holds, with expected refcounts
    /// where the format has refcounts. `progress` gets the fraction done and cancels the
    /// walk (throwing `cancelled`) by returning false.
    func walkStructure(progress: ((Double) -> Bool)?) throws(BlockError) -> HostUseMap
}

/// What each unit (``unit`` bytes) of a host file holds, from a whole-image walk: one byte
/// per unit (a ``HostRegionKind`` and a "stored refcount differs" flag), plus the expected
/// refcounts for QCOW2 (one more byte per cluster). 32 MiB for a 1 TiB file of 64 KiB
/// clusters; no per-cluster objects.
public struct HostUseMap: Sendable {
    /// Bytes per unit.
    public let unit: UInt64
    private let uses: [UInt8]
    private let expected: RefcountArray?
    /// For QCOW2, the walk's counts as `check` reports them (leaks, corruptions, allocated
    /// and fragmented clusters); nil for formats without refcounts.
    public let report: CheckReport?

    /// QCOW2 over an open disk: clusters whose stored refcount exceeds their references only
    /// by releases queued for a later flush (cluster -> how many); see ``releasePending(_:)``.
    private let pendingReleases: [Int: UInt64]
    /// Clusters an active L1/L2 entry points to with an OFLAG_COPIED flag that disagrees with
    /// their refcount (each such entry is one of ``report``'s corruptions).
    private let copiedWrong: Set<Int>

    /// Structures the walk could not count or read because they lie past the end of the file
    /// (an L2 table there: the references in it are unknown). Each is one of ``report``'s
    /// corruptions; its label says what and why.
    public let unreadable: [HostRegion]

    package init(unit: UInt64, uses: [UInt8], expected: RefcountArray? = nil, report: CheckReport? = nil,
         pendingReleases: [Int: UInt64] = [:], copiedWrong: Set<Int> = [], unreadable: [HostRegion] = []) {
        self.unreadable = unreadable
        self.unit = unit
        self.uses = uses
        self.expected = expected
        self.report = report
        self.pendingReleases = pendingReleases
        self.copiedWrong = copiedWrong
    }

    /// References a flush will still drop from cluster `i` (0 when none is pending): its stored
    /// refcount is that much above the references found on purpose (docs/adr/0006), which
    /// is neither a leak nor a mismatch.
    public func releasePending(_ i: Int) -> UInt64 { pendingReleases[i] ?? 0 }

    /// Whether any unit of `[first, end)` has a release pending (see ``releasePending(_:)``).
    public func releasePending(_ first: Int, _ end: Int) -> Bool {
        if pendingReleases.isEmpty { return false }
        if end - first > pendingReleases.count { return pendingReleases.keys.contains { $0 >= first && $0 < end } }
        return (first..<end).contains { pendingReleases[$0] != nil }
    }

    /// Whether an active L1/L2 entry points to cluster `i` with a wrong OFLAG_COPIED flag.
    public func copiedFlagWrong(_ i: Int) -> Bool { copiedWrong.contains(i) }

    /// Builds a map from regions: each unit takes the kind of the regions that touch it,
    /// metadata winning over data (formats without refcounts).
    public init(unit: UInt64, fileSize: UInt64, regions: [HostRegion]) {
        var u = [UInt8](repeating: 0, count: Int((fileSize + unit - 1) / unit))
        for r in regions where r.length > 0 && r.offset < fileSize {
            let last = Int(min(fileSize - 1, r.offset + r.length - 1) / unit)
            for i in Int(r.offset / unit)...last where u[i] == 0 || r.kind.isMetadata { u[i] = r.kind.rawValue }
        }
        self.init(unit: unit, uses: u)
    }

    /// Units covered (the host file's size in units, or a little more when metadata
    /// references clusters past its end).
    public var count: Int { uses.count }

    /// What unit `i` holds (``HostRegionKind/free`` past the end).
    public func kind(_ i: Int) -> HostRegionKind {
        i < uses.count ? HostRegionKind(rawValue: uses[i] & 0x7f) ?? .unreadable : .free
    }

    /// Whether unit `i`'s stored refcount differs from the references found (a leak when
    /// higher, a corruption when lower).
    public func mismatched(_ i: Int) -> Bool { i < uses.count && uses[i] & 0x80 != 0 }

    /// References found to cluster `i` (what its refcount should be); nil without refcounts.
    public func expectedRefcount(_ i: Int) -> UInt64? { expected.map { $0[i] } }

    /// Units of each kind.
    public func counts() -> [HostRegionKind: Int] {
        var c = [Int](repeating: 0, count: 128)
        for u in uses { c[Int(u & 0x7f)] += 1 }
        var out: [HostRegionKind: Int] = [:]
        for (i, n) in c.enumerated() where n > 0 { out[HostRegionKind(rawValue: UInt8(i)) ?? .unreadable, default: 0] += n }
        return out
    }

    /// How many units have each expected refcount (QCOW2; empty without refcounts), ascending.
    public func expectedHistogram() -> [(refcount: UInt64, units: Int)] {
        guard let expected else { return [] }
        var small = [Int](repeating: 0, count: 256)
        for v in expected.small { small[Int(v)] += 1 }
        var out: [(refcount: UInt64, units: Int)] = []
        for (v, n) in small.enumerated() where n > 0 && v < 255 { out.append((UInt64(v), n)) }
        if small[255] > 0 {
            var big: [UInt64: Int] = [:]
            for i in expected.small.indices where expected.small[i] == 255 { big[expected[i], default: 0] += 1 }
            out += big.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
        return out
    }

    /// Units whose stored refcount differs from the references found.
    public var mismatchCount: Int { uses.reduce(0) { $0 + Int($1 >> 7) } }

    /// The first unit at or after `from` (wrapping) that is mismatched or satisfies `kinds`.
    public func next(from: Int, mismatched wantMismatch: Bool, kinds: Set<HostRegionKind> = []) -> Int? {
        guard !uses.isEmpty else { return nil }
        for k in 0..<uses.count {
            let i = (from + k) % uses.count
            if (wantMismatch && uses[i] & 0x80 != 0) || kinds.contains(kind(i)) { return i }
        }
        return nil
    }

    /// The most telling kind among units `[first, end)` (metadata over data over free, a
    /// mismatch over all) for one cell of a host map.
    public func dominant(_ first: Int, _ end: Int) -> (kind: HostRegionKind, mismatched: Bool) {
        var best = HostRegionKind.free
        var bad = false
        var i = first
        while i < min(end, uses.count) {
            let k = HostRegionKind(rawValue: uses[i] & 0x7f) ?? .unreadable
            if uses[i] & 0x80 != 0 { bad = true }
            if best == .free || (k.isMetadata && !best.isMetadata) || k == .leaked || k == .unreadable { best = k }
            i += 1
        }
        return (best, bad)
    }
}

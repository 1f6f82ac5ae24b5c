import BlockIO
import BlockInspect

/// What `explain` collects during the one reference walk (``Qcow2ReferenceWalk``), beside
/// the walk's own use map and expected refcounts: per host cluster whether the active image
/// maps it as data, as zeroes, or a snapshot holds it, and which snapshot alone holds it;
/// the L2 tables whose content is not an L2 table (not counted); the clusters whose stored
/// refcount is too low or too high, as runs; and the destination clusters a plain convert
/// would allocate (as `qemu-img measure` counts them). Memory: one byte per host cluster,
/// two more with snapshots; runs and tables bounded.
final class Qcow2ExplainObserver: Qcow2ReferenceObserver {
    /// Per host cluster: ``activeData``, ``activeZero``, ``snapshotRef``, ``explained``.
    /// Touched once per reference on the walking thread only: no dynamic exclusivity checks
    /// (they were a fifth of the time on a 1 TiB image).
    @exclusivity(unchecked) var flags: [UInt8]
    static let activeData: UInt8 = 1
    static let activeZero: UInt8 = 2
    static let snapshotRef: UInt8 = 4
    /// Set by the findings for clusters a finding already accounts for.
    static let explained: UInt8 = 8

    /// Per host cluster with snapshots: -1 unreferenced, s the only holder is snapshot s,
    /// -3 several snapshots and nothing else, -2 the active image or metadata.
    @exclusivity(unchecked) var owner: [Int16]
    /// An L2 table whose content is not one, left out of the counting.
    struct BadTable {
        var offset: UInt64
        var referrer: Qcow2Referrer
        var looksLike: ExplainLooksLike
        var invalidEntries: Int
    }
    /// Tables judged not L2 tables (bounded to 4,096; one per host offset).
    var badTables: [BadTable] = []
    /// Host offsets of ``badTables``.
    var badOffsets: Set<UInt64> = []
    /// L2 tables an L1 entry points to that map nothing at all (all-zero clusters).
    var emptyTables: [(offset: UInt64, referrer: Qcow2Referrer)] = []

    /// A run of clusters with one refcount problem.
    struct Run { var first: Int; var count: Int }
    /// Clusters with stored refcount below references, references >= 2: double-reference
    /// candidates (bounded to 1,024).
    var doubleCandidates: [Int] = []
    /// Clusters with stored refcount below their single reference, as runs (bounded).
    var tooLow: [Run] = []
    var tooLowCount = 0
    /// Clusters with stored refcount above their references (> 0), as runs (bounded).
    var tooHigh: [Run] = []
    var tooHighCount = 0
    /// The largest stored refcount seen among mismatches (for texts).
    var maxStoredLow: UInt64 = 0

    /// Destination clusters (64 KiB) of a default `convert -O qcow2` that hold data.
    @exclusivity(unchecked) var convert = ConvertClusterCounter()

    let h: Qcow2Header
    let classifier: Qcow2ContentClassifier
    let wholeHole: HostHoles.ClusterBits

    init(clusters: Int, header: Qcow2Header, classifier: Qcow2ContentClassifier, snapshots: Int, wholeHole: HostHoles.ClusterBits) {
        flags = [UInt8](repeating: 0, count: clusters)
        owner = snapshots > 0 ? [Int16](repeating: -1, count: clusters) : []
        h = header
        self.classifier = classifier
        self.wholeHole = wholeHole
    }

    func counted(offset: UInt64, length: UInt64, kind: HostRegionKind, by r: Qcow2Referrer) {
        guard length > 0 else {
            // External data file: guest data a convert copies, no cluster of this file.
            if kind == .data, r.snapshot == nil, !r.zero, let g = r.guestOffset(l2Entries: h.l2Entries, clusterBits: h.clusterBits) {
                convert.add(g, h.clusterSize, virtualSize: h.size)
            }
            return
        }
        let (first, last) = qcow2ClusterSpan(offset, length, clusterBits: h.clusterBits)
        guard first < flags.count else { return }
        let end = min(last, flags.count - 1)
        if kind == .data || kind == .compressed {
            var bit: UInt8 = Self.snapshotRef
            if r.snapshot == nil { bit = r.zero ? Self.activeZero : Self.activeData }
            for c in first...end { flags[c] |= bit }
            if r.snapshot == nil, !r.zero, kind == .compressed || !wholeHole[first],
               let g = r.guestOffset(l2Entries: h.l2Entries, clusterBits: h.clusterBits) {
                convert.add(g, h.clusterSize, virtualSize: h.size)
            }
        }
        if !owner.isEmpty {
            for c in first...end {
                let o = owner[c]
                if let s = r.snapshot {
                    if o == -1 { owner[c] = Int16(truncatingIfNeeded: s) } else if o >= 0 && Int(o) != s { owner[c] = -3 }
                } else {
                    owner[c] = -2
                }
            }
        }
    }

    func countsL2(_ words: [UInt64], at offset: UInt64, by r: Qcow2Referrer) -> Bool {
        if badOffsets.contains(offset) { return false }
        let c = classifier.census(words)
        if !c.isTable {
            if badTables.count < 4096 {
                badTables.append(BadTable(offset: offset, referrer: r, looksLike: classifier.looksLikeInstead(ofL2: words), invalidEntries: c.invalid))
                badOffsets.insert(offset)
            }
            return false
        }
        if r.snapshot == nil, c.mapped + c.compressed == 0, words.allSatisfy({ $0 == 0 }), emptyTables.count < 4096 {
            emptyTables.append((offset, r))
        }
        return true
    }

    func mismatched(cluster: Int, stored: UInt64, expected: UInt64) {
        if expected == 0 { return }   // leaked: the use map marks it
        if stored < expected {
            if expected >= 2 {
                if doubleCandidates.count < 1024 { doubleCandidates.append(cluster) }
                return
            }
            tooLowCount += 1
            maxStoredLow = max(maxStoredLow, stored)
            Self.extend(&tooLow, cluster)
        } else {
            tooHighCount += 1
            Self.extend(&tooHigh, cluster)
        }
    }

    static func extend(_ runs: inout [Run], _ c: Int) {
        if let last = runs.last, last.first + last.count == c { runs[runs.count - 1].count += 1 }
        else if runs.count < 65536 { runs.append(Run(first: c, count: 1)) }
    }
}

/// Pass two, only when there are double-reference candidates: the same walk again, keeping
/// who references each candidate cluster (at most 8 referrers each).
final class Qcow2ReferrerRecorder: Qcow2ReferenceObserver {
    let targets: Set<Int>
    let skip: Set<UInt64>
    let clusterBits: UInt32
    var found: [Int: [(kind: HostRegionKind, referrer: Qcow2Referrer)]] = [:]

    init(targets: Set<Int>, skip: Set<UInt64>, clusterBits: UInt32) {
        self.targets = targets
        self.skip = skip
        self.clusterBits = clusterBits
    }

    func counted(offset: UInt64, length: UInt64, kind: HostRegionKind, by r: Qcow2Referrer) {
        guard length > 0 else { return }
        let (first, last) = qcow2ClusterSpan(offset, length, clusterBits: clusterBits)
        if last - first > 4096 { return }
        for c in first...last where targets.contains(c) {
            if found[c, default: []].count < 8 { found[c, default: []].append((kind, r)) }
        }
    }

    func countsL2(_ words: [UInt64], at offset: UInt64, by r: Qcow2Referrer) -> Bool { !skip.contains(offset) }

    func mismatched(cluster: Int, stored: UInt64, expected: UInt64) {}
}

import BlockCore
import BlockInspect

/// The TUI's explanation of the image (the Diagnosis view, the Map's finding marks): the
/// report `blockscope explain` prints, built by the block layer's one explainer
/// (``explainImage(path:format:progress:warn:)``) on a background thread, so the UI never
/// waits for the walk.
///
/// Nothing runs until a view asks (``start()``). The report is kept until ``restart()``
/// (after writes, the `r` key); memory is the explainer's while it runs (about four bytes
/// per host cluster) and the report's afterwards (at most 256 ranges per finding).
package final class Diagnosis {
    /// The image explained.
    package let path: String
    private let walker: InspectWalker<Outcome>
    private var marksCache: (generation: Int, host: IntervalSet, guest: IntervalSet)?
    /// ``AppState/layoutVersion`` when the report being shown was asked for.
    package private(set) var layoutVersion = 0

    /// What one run gives: the report and the warnings said while building it.
    struct Outcome: Sendable {
        var report: ExplainReport
        var warnings: [String]
    }

    /// A diagnosis of the image at `path` (nothing runs yet).
    package init(path: String) {
        self.path = path
        walker = InspectWalker { progress in
            final class Said: @unchecked Sendable { var lines: [String] = [] }
            let said = Said()
            let report = try explainImage(path: path, progress: progress, warn: { said.lines.append($0) })
            return Outcome(report: report, warnings: said.lines)
        }
    }

    /// Starts the explanation unless one ran or runs (`layoutVersion`: the layout it reads).
    package func start(layoutVersion v: Int = 0) {
        guard !walker.started else { return }
        layoutVersion = v
        walker.start()
    }

    /// Explains the image anew (the image changed): the last report stays until the new one is ready.
    package func restart(layoutVersion v: Int) {
        layoutVersion = v
        walker.start()
    }

    /// Stops a running explanation (the app quits).
    package func cancel() { walker.cancel() }

    /// Called on the explaining thread with each progress report, before it checks for
    /// cancellation (tests hold a run mid-way with it).
    var observer: (@Sendable (Double) -> Void)? {
        get { walker.observer }
        set { walker.observer = newValue }
    }

    /// Blocks until no explanation runs (tests; a view never waits).
    package func waitUntilIdle() { walker.waitUntilIdle() }

    /// The last finished report, nil before the first.
    package var report: ExplainReport? { walker.result?.report }
    /// The warnings the last run said (a writer holds the image).
    package var warnings: [String] { walker.result?.warnings ?? [] }
    /// The fraction done of the running explanation, nil when none runs.
    package var progress: Double? { walker.progress }
    /// Why the last explanation failed (no explainer for the format, an unreadable file).
    package var error: String? { walker.error }
    /// Whether an explanation was asked for.
    package var started: Bool { walker.started }
    /// Finished explanations so far.
    package var generation: Int { walker.generation }

    /// Whether any byte of host `[start, start + length)` belongs to a finding.
    package func marksHost(_ start: UInt64, _ length: UInt64) -> Bool { marks().host.intersects(start, length: length) }
    /// Whether any byte of guest `[start, start + length)` belongs to a finding.
    package func marksGuest(_ start: UInt64, _ length: UInt64) -> Bool { marks().guest.intersects(start, length: length) }

    /// The first finding whose host (or guest, when `guest`) ranges touch `[start, start + length)`.
    package func finding(at start: UInt64, _ length: UInt64, guest: Bool) -> ExplainFinding? {
        report?.findings.first { f in
            (guest ? f.guest : f.host).contains { $0.offset < start &+ length && start < $0.offset &+ $0.length }
        }
    }

    private func marks() -> (host: IntervalSet, guest: IntervalSet) {
        let g = walker.generation
        if let c = marksCache, c.generation == g { return (c.host, c.guest) }
        var host = IntervalSet(), guest = IntervalSet()
        for f in report?.findings ?? [] {
            for r in f.host { host.insert(r.offset, length: r.length) }
            for r in f.guest { guest.insert(r.offset, length: r.length) }
        }
        marksCache = (g, host, guest)
        return (host, guest)
    }
}

/// Where Enter (or a jump key) takes the Diagnosis view from a finding.
package enum DiagnosisJump: Sendable, Equatable {
    /// The table entry that maps a guest offset (L1/L2).
    case entry(guest: UInt64)
    /// The refcount row of a host offset (Refcounts).
    case refcount(host: UInt64)
    /// The host bytes at an offset (Hex).
    case hex(host: UInt64)
    /// The host cell at an offset (Map, host grid).
    case map(host: UInt64)

    /// Where Enter goes for `f`: a finding about referrers (two L2 entries sharing a cluster,
    /// a table whose window lost its mapping) to the entry mapping its first guest range; a
    /// finding about counts (leaks, refcounts too low or high, a stranded block) to its
    /// first host cluster's refcount row; anything else (an orphaned table, the header) to
    /// its first host bytes. Nil when the finding has no range.
    package static func preferred(_ f: ExplainFinding) -> DiagnosisJump? {
        switch f.findingClass {
        case .doubleReference, .metadataOverwritten:
            if let g = f.guest.first { return .entry(guest: g.offset) }
        case .leakedCluster, .refcountTooLow, .refcountTooHigh, .strandedRefcountBlock:
            if let h = f.host.first { return .refcount(host: h.offset) }
        default:
            break
        }
        return f.host.first.map { .hex(host: $0.offset) }
    }

    /// The jump as the footer and status line say it ("L2 entry of guest 0x20000000").
    package var words: String {
        switch self {
        case let .entry(g): return "table entry of guest \(BlockIO.hex(g))"
        case let .refcount(h): return "refcount row of host \(BlockIO.hex(h))"
        case let .hex(h): return "host bytes at \(BlockIO.hex(h))"
        case let .map(h): return "map cell of host \(BlockIO.hex(h))"
        }
    }
}

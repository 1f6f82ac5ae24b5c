#if canImport(Glibc)
import Glibc
#endif

/// Timing counters for finding where a target's time goes: with `BLOCKSCOPE_FUZZ_TIMING=1`
/// in the environment, each ``measure(_:_:)`` adds its thread CPU time to a named phase,
/// and at exit the phases are printed to stderr (calls, total ms, µs per call, the slowest
/// call). Without the variable ``measure(_:_:)`` costs one branch. scripts/fuzz/profile.sh
/// runs a target this way; docs/FUZZING.md ("Throughput") has what it found.
public enum PhaseTimer {
    nonisolated(unsafe) static let enabled = getenv("BLOCKSCOPE_FUZZ_TIMING") != nil
    nonisolated(unsafe) static var phases: [String: (calls: Int, ns: UInt64, max: UInt64)] = [:]
    nonisolated(unsafe) static var registered = false

    /// Runs `body`, adding its CPU time to `phase` when timing is on.
    @inline(__always)
    public static func measure<T, E: Error>(_ phase: StaticString, _ body: () throws(E) -> T) throws(E) -> T {
        guard enabled else { return try body() }
        let t0 = now()
        defer { add("\(phase)", now() - t0) }
        return try body()
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func add(_ phase: String, _ ns: UInt64) {
        if !registered {
            registered = true
            atexit { PhaseTimer.report() }
        }
        var p = phases[phase] ?? (0, 0, 0)
        p.calls += 1
        p.ns += ns
        p.max = max(p.max, ns)
        phases[phase] = p
    }

    static func report() {
        var out = "phase timing (thread CPU time):\n"
        for (name, p) in phases.sorted(by: { $0.value.ns > $1.value.ns }) {
            out += "  \(name): \(p.calls) calls, \(p.ns / 1_000_000) ms, \(p.ns / 1000 / UInt64(max(p.calls, 1))) us/call, max \(p.max / 1000) us\n"
        }
        _ = Array(out.utf8).withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}

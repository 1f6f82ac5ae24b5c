import BlockIO
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress bar on stderr (percent, ETA, IOPS) while a workload runs.
///
/// Drawn only when stderr is a terminal; otherwise ``watch(_:)`` just waits.
package enum ProgressBar {
    /// Whether stderr is a terminal.
    public static var isEnabled: Bool { isatty(2) == 1 }

    /// Redraws the bar every `interval` seconds until `workload` finishes, then clears it.
    public static func watch(_ workload: Workload, interval: Double = 0.25) {
        guard isEnabled else { return }
        var last: (ios: UInt64, t: UInt64) = (0, monotonicNanos())
        while !workload.isFinished {
            usleep(UInt32(interval * 1e6))
            let s = workload.snapshot()
            let now = monotonicNanos()
            let ios = s.totalIos
            let rate = Double(ios - min(ios, last.ios)) * 1e9 / Double(max(1, now - last.t))
            last = (ios, now)
            let frac = s.progress ?? 0
            let width = 30
            let filled = Int(frac * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            var eta = "--"
            if frac > 0.01 {
                let left = Double(s.elapsedNs) / 1e9 * (1 - frac) / frac
                eta = String(format: "%02d:%02d", Int(left) / 60, Int(left) % 60)
            }
            let line = String(format: "\r[%@] %5.1f%% eta %@ iops=%@ inflight=%d ", bar, frac * 100, eta, FioReport.short(rate), s.inFlight)
            line.withCString { p in _ = write(2, p, strlen(p)) }
        }
        let clear = "\r" + String(repeating: " ", count: 79) + "\r"
        clear.withCString { p in _ = write(2, p, strlen(p)) }
    }
}

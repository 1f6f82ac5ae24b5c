import BlockInspect
import BlockCore
import BlockEngine
import Foundation

/// A fio job file running on the engine's ``Workload`` while the TUI watches.
///
/// The workload's queues publish into the same event sink as the prompt's commands (queue
/// IDs from 1, the prompt uses 0); pause, resume and stop go to the workload; exact
/// counters come from its ``Workload/snapshot()`` (events are lossy, counters are not).
package final class JobHost: @unchecked Sendable {
    /// The running workload.
    package let workload: Workload
    /// The job file.
    package let path: String
    private let lock = ConditionLock()
    private var outcome: String?

    /// Parses `path`, prepares the workload on `disk` and starts it.
    /// Its queues record the requests they hold in `inFlight`, when given.
    package init(path: String, disk: any DiskFile, sink: (any IoEventSink)?, inFlight: InFlightRegistry? = nil) throws(BlockError) {
        self.path = path
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw BlockError(.notFound, "cannot read job file: \(error.localizedDescription)", path: path)
        }
        let file = try FioJobFile.parse(text, source: path)
        var o = WorkloadOptions()
        o.eventSink = sink
        o.firstQueueID = 1
        o.inFlightRegistry = inFlight
        o.queueLabel = "job \(URL(fileURLWithPath: path).lastPathComponent)"
        workload = try Workload(disk: disk, jobs: file.jobs, options: o)
        try workload.start()
        let t = Thread { [self] in
            let text: String
            do {
                let r = try workload.wait()
                let s = workload.snapshot()
                text = "job \(URL(fileURLWithPath: path).lastPathComponent) done: \(s.totalIos) I/Os in \(formatDuration(r.elapsedNs)), read \(formatBytes(Double(s.readBytes))), wrote \(formatBytes(Double(s.writeBytes)))\(r.verifiedBlocks > 0 ? ", \(r.verifiedBlocks) blocks verified" : "")" + JobHost.fioSummary(r)
            } catch let e {
                text = "error: job \(path): \(e)"
            }
            lock.lock(); outcome = text; lock.broadcast(); lock.unlock()
        }
        t.name = "blockscope-tui-job"
        t.start()
    }

    /// fio's end-of-job figures per direction, from the workload's exact histograms (every
    /// thread merged): ` — write: IOPS=…, BW=…/s, lat p50=… p99=… p99.9=… max=…`.
    static func fioSummary(_ r: WorkloadResult) -> String {
        var parts: [String] = []
        let secs = Double(max(r.elapsedNs, 1)) / 1e9
        for (name, pick) in [("read", \JobResult.read), ("write", \JobResult.write), ("trim", \JobResult.trim), ("sync", \JobResult.sync)] {
            var d = DirectionStats()
            for j in r.jobs { d.merge(j[keyPath: pick]) }
            if d.ios == 0 { continue }
            let bw = name == "sync" ? "" : ", BW=\(formatBytes(Double(d.bytes) / secs))/s"
            parts.append("\(name): IOPS=\(fixed(Double(d.ios) / secs, 0))\(bw), lat p50=\(formatDuration(d.percentile(50))) p99=\(formatDuration(d.percentile(99))) p99.9=\(formatDuration(d.percentile(99.9))) max=\(formatDuration(d.percentile(100)))")
        }
        return parts.isEmpty ? "" : " — " + parts.joined(separator: "; ")
    }

    /// Waits up to `seconds` for the workload to finish; its final line, or nil at the deadline.
    package func waitFinished(seconds: Double) -> String? {
        let deadline = monotonicNanos() + UInt64(max(0, seconds) * 1e9)
        lock.lock(); defer { lock.unlock() }
        while outcome == nil && lock.wait(untilNanos: deadline) {}
        return outcome
    }

    /// The final line once the workload finished, else nil.
    package var finishedLine: String? {
        lock.lock(); defer { lock.unlock() }
        return outcome
    }

    /// A one-line live summary from the workload's counters.
    package var summary: String {
        let s = workload.snapshot()
        let secs = Double(s.elapsedNs) / 1e9
        let bw = secs > 0 ? Double(s.readBytes + s.writeBytes) / secs : 0
        let pct = s.progress.map { " \(Int($0 * 100))%" } ?? ""
        return "job \(URL(fileURLWithPath: path).lastPathComponent)\(pct): \(s.totalIos) I/Os, \(fixed(s.iops, 0)) IOPS, \(formatBytes(bw))/s, \(s.inFlight) in flight\(workload.isPaused ? ", paused" : "")"
    }
}

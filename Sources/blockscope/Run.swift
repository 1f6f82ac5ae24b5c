import ArgumentParser
import BlockCore
import BlockEngine
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension SubmitPolicy: ExpressibleByArgument {}

/// `blockscope run IMAGE JOB`: run a fio job file or a command-language script on an image.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run",
        abstract: "Run a fio job file or a command-language script (write/read/zero/discard/fsync) on an image.",
        discussion: """
        A file with INI sections ([global], [job]) is a fio job file: its jobs run concurrently, one \
        thread and one queue per job thread, and the results print like fio's (--output=json gives \
        fio's JSON shape). Anything else is a command-language script. See docs/JOBS.md.
        """)

    @Argument(help: "The image file.") var image: String
    @Argument(help: "A fio job file, or a script in blockscope's command language.") var script: String
    @OptionGroup var imageOptions: ImageOptions
    @Flag(help: "Open the image for writing (needed by jobs and commands that write).") var write = false
    @Option(help: "Output style of a job run: human or json (fio's JSON shape).") var output: OutputFormat = .human
    @Option(help: "Apply every completed write/zero/discard to this raw file (created as a copy of the image's content when missing).")
    var mirror: String?
    @Option(help: "Record every guest request to this JSON Lines file (replay it with `blockscope replay`).")
    var trace: String?
    @Flag(help: "With --trace, also record every engine event (SQEs, CQEs, mappings, ...).") var traceDetail = false
    @Option(help: "How job threads submit: per-completion (resubmit each slot at once) or batch.")
    var submitPolicy: SubmitPolicy = .perCompletion
    @Flag(help: "Attach an event stream with a subscriber thread draining it (measures the stream's cost; counts on stderr).")
    var eventSubscriber = false
    @Flag(help: .hidden) var eventSinkOnly = false
    /// Measurement aid (hidden): every queue records its requests in an in-flight registry, as
    /// under the TUI; with a value > 0, a thread also snapshots it every that many ms (a
    /// frame's look). Prints the snapshots taken and the largest count seen on stderr.
    @Option(help: .hidden) var inflightRegistry: Int? = nil

    func run() throws {
        try refuseDirectories(images: [image, mirror], files: [(script, "a job file or script"), (trace, "a trace file")])
        try reportingErrors { () throws(BlockError) in
            let text: String
            do { text = try String(contentsOfFile: script, encoding: .utf8) }
            catch { throw BlockError(.notFound, "cannot read script: \(error.localizedDescription)", path: script) }
            if FioJobFile.looksLikeJobFile(text) {
                try runJobs(text)
                return
            }
            let lines: [ScriptLine]
            do throws(BlockError) { lines = try CommandScript.parse(text, source: script) } catch {
                // The engine's language has no UI words; say where they belong.
                var e = error
                if ["goto", "view", "theme", "pause"].contains(where: { e.message.contains("unknown command '\($0)'") }) {
                    e.message += "; goto, view, theme and pause steer the TUI: use the script with `blockscope tui IMAGE --script FILE`"
                }
                throw e
            }
            if !write, let w = lines.first(where: { $0.command.isWrite }) {
                throw BlockError(.readOnly, "line \(w.line) modifies the image, which is open read-only", path: script)
            }
            let disk = try openImage(image, imageOptions.openOptions(writable: write))
            // One line per command as it finishes (flushed: a paced script shows its progress through a pipe too).
            let runner = try ScriptRunner(disk: disk, engine: imageOptions.engine, output: { print($0); fflush(nil) })
            // A signal stops the script between commands; the image is still flushed and closed.
            let signals = StopSignals(onStop: { _ in })
            defer { signals.cancel() }
            for l in lines where !signals.stopped { try runner.run([l], source: script) }
            try disk.close()
            if signals.stopped { throw BlockError(.cancelled, "stopped by \(StopSignals.name(signals.caught.load(ordering: .relaxed))) before the end; the image was flushed and closed", path: script) }
        }
    }

    private func runJobs(_ text: String) throws(BlockError) {
        let file = try FioJobFile.parse(text, source: script)
        for w in file.warnings { printError("warning: \(w)") }
        if !write, let j = file.jobs.first(where: { $0.rw.writes && !$0.verifyOnly }) {
            throw BlockError(.readOnly, "job '\(j.name)' (line \(j.line)) writes; give --write to open the image for writing", path: script)
        }
        if mirror != nil && !write {
            throw BlockError(.invalidArgument, "--mirror needs --write", path: script)
        }
        var o = imageOptions.openOptions(writable: write)
        o.direct = file.jobs.contains { $0.direct }
        if o.direct, let j = file.jobs.first(where: { $0.direct && !$0.fits(directBlock: 4096) }) {
            printError("warning: job '\(j.name)' (line \(j.line)) uses sizes or offsets that are not multiples of 4 KiB; the image is opened without O_DIRECT")
            o.direct = false
        }
        let disk = try openImage(image, o)
        var wo = WorkloadOptions()
        wo.engine = imageOptions.engine
        wo.submitPolicy = submitPolicy
        if let mirror { wo.mirror = try MirrorFile(path: mirror, disk: disk) }
        var recorder: TraceRecorder? = nil
        if let trace {
            let threads = file.jobs.reduce(0) { $0 + $1.numjobs }
            recorder = try TraceRecorder(path: trace, disk: disk, detail: traceDetail, queues: threads)
            wo.recordTrace = true
            wo.eventSink = recorder?.stream
        }
        var drainer: EventDrainer? = nil
        if eventSinkOnly {
            // Measurement aid: the queues build and publish events, nobody subscribes.
            let threads = file.jobs.reduce(0) { $0 + $1.numjobs }
            wo.eventSink = EventFanout.combine([wo.eventSink, EventStream(queues: threads)])
        }
        if eventSubscriber {
            let threads = file.jobs.reduce(0) { $0 + $1.numjobs }
            let d = EventDrainer(queues: threads)
            drainer = d
            wo.eventSink = EventFanout.combine([wo.eventSink, d.stream])
        }
        var looker: RegistryLooker? = nil
        if let every = inflightRegistry {
            let r = InFlightRegistry()
            wo.inFlightRegistry = r
            if every > 0 { looker = RegistryLooker(registry: r, everyMs: every) }
        }
        let workload = try Workload(disk: disk, jobs: file.jobs, options: wo)
        // A signal ends the jobs early, as fio's Ctrl-C does: partial results, then flush and close.
        let signals = StopSignals(onStop: { _ in workload.stop() })
        defer { signals.cancel() }
        try workload.start()
        recorder?.begin(start: workload.startTime)
        ProgressBar.watch(workload)
        let result: WorkloadResult
        do { result = try workload.wait() } catch {
            recorder?.finish(requests: [])
            throw error
        }
        recorder?.finish(requests: result.trace)
        if let looker {
            let (n, most) = looker.finish()
            printError("in-flight registry: \(n) snapshots, at most \(most) requests, \(wo.inFlightRegistry?.count ?? 0) after the job")
        }
        if let drainer {
            let (n, lost) = drainer.finish()
            printError("events: \(n) delivered to the subscriber, \(lost) lost, subscriber thread cpu \(drainer.cpuNs / 1000) us")
        }
        if let lost = recorder?.lostEvents, lost > 0 { printError("warning: trace lost \(lost) detail events (the recorder fell behind)") }
        try wo.mirror?.sync()
        switch output {
        case .json: print(FioReport.json(result, image: image).render(pretty: true))
        case .human: print(FioReport.human(result), terminator: "")
        }
        try disk.close()
    }
}

/// A thread that snapshots an ``InFlightRegistry`` at a fixed interval, as the TUI does once
/// a frame (measures what looking costs the job threads).
final class RegistryLooker: @unchecked Sendable {
    private let registry: InFlightRegistry
    /// Whether to stop, snapshots taken, the largest count seen.
    private let state = Mutex<(stopping: Bool, snapshots: Int, most: Int)>((false, 0, 0))
    /// Signalled when the thread has returned (``ended``).
    private let done = ConditionLock()
    private var ended = false

    init(registry: InFlightRegistry, everyMs: Int) {
        self.registry = registry
        Thread.detachNewThread { [self] in
            while true {
                let s = registry.snapshot()
                let stop = state.withLock { st in
                    st.snapshots += 1
                    st.most = max(st.most, s.count)
                    return st.stopping
                }
                if stop { break }
                usleep(useconds_t(everyMs * 1000))
            }
            done.withLock { ended = true; done.broadcast() }
        }
    }

    /// Stops the thread; returns how many snapshots it took and the largest count it saw.
    func finish() -> (Int, Int) {
        state.withLock { $0.stopping = true }
        done.lock()
        while !ended { done.wait() }
        done.unlock()
        return state.withLock { ($0.snapshots, $0.most) }
    }
}

/// A subscriber thread that drains an ``EventStream`` and counts what it receives.
final class EventDrainer: @unchecked Sendable {
    let stream: EventStream
    private let sub: EventSubscription
    private let cond = ConditionLock()
    private var stopping = false
    private var running = true
    private var count = 0
    /// CPU time the subscriber thread used, nanoseconds.
    private(set) var cpuNs: UInt64 = 0

    init(queues: Int) {
        stream = EventStream(queues: queues, capacityPerQueue: 1 << 14)
        sub = stream.subscribe()
        let t = Thread { [self] in
            var n = 0
            while true {
                cond.lock(); let stop = stopping; cond.unlock()
                let got = sub.drain { _ in n += 1 }
                if stop && got == 0 { break }
                if got == 0 { sub.wait(timeoutNs: 100_000_000) }
            }
            let cpu = threadCpuTimes()
            cond.lock(); count = n; cpuNs = cpu.user + cpu.system; running = false; cond.broadcast(); cond.unlock()
        }
        t.start()
    }

    /// Stops the thread; returns (delivered, lost).
    func finish() -> (Int, UInt64) {
        cond.lock()
        stopping = true
        stream.wakeReader()
        while running { cond.wait() }
        cond.unlock()
        sub.cancel()
        return (count, sub.lostEvents)
    }
}

import BlockCore
import BlockEngine
import Foundation

/// Runs prompt and script commands on a background thread, one at a time, so the UI never
/// waits for I/O (and step mode can hold the worker at an event while the UI keeps drawing).
///
/// The worker owns its ``ScriptRunner`` (and with it an I/O queue), created on the worker
/// thread because a queue belongs to the thread that uses it. Output lines and errors are
/// collected for the UI to pick up with ``takeOutput()``.
package final class CommandWorker: @unchecked Sendable {
    private let disk: any DiskFile
    private let engine: EngineKind
    private let sink: (any IoEventSink)?
    private let inFlight: InFlightRegistry?
    private let cond = ConditionLock()
    private var queue: [ScriptCommand] = []
    private var output: [String] = []
    private var running = false
    private var stopped = false

    /// Starts the worker thread for `disk`; events of its queue go to `sink`, and the
    /// requests it holds are recorded in `inFlight` when given.
    package init(disk: any DiskFile, engine: EngineKind, sink: (any IoEventSink)?, inFlight: InFlightRegistry? = nil) {
        self.disk = disk
        self.engine = engine
        self.sink = sink
        self.inFlight = inFlight
        let t = Thread { [self] in self.loop() }
        t.name = "blockscope-tui-worker"
        t.start()
    }

    /// Queues a command.
    package func enqueue(_ command: ScriptCommand) {
        cond.lock()
        queue.append(command)
        cond.broadcast()
        cond.unlock()
    }

    /// Whether a command is running or queued.
    package var busy: Bool {
        cond.lock(); defer { cond.unlock() }
        return running || !queue.isEmpty
    }

    /// Lines produced since the last call.
    package func takeOutput() -> [String] {
        cond.lock(); defer { cond.unlock() }
        let o = output
        output.removeAll()
        return o
    }

    /// Stops after the current command; queued ones are dropped.
    package func stop() {
        cond.lock()
        stopped = true
        queue.removeAll()
        cond.broadcast()
        cond.unlock()
    }

    /// Waits up to `seconds` for the worker to finish its current command.
    package func waitIdle(seconds: Double) {
        let deadline = monotonicNanos() + UInt64(max(0, seconds) * 1e9)
        cond.lock()
        while (running || !queue.isEmpty) && cond.wait(untilNanos: deadline) {}
        cond.unlock()
    }

    private func emit(_ line: String) {
        cond.lock()
        output.append(line)
        cond.unlock()
    }

    private func loop() {
        var runner: ScriptRunner?
        while true {
            cond.lock()
            while queue.isEmpty && !stopped { cond.wait() }
            if stopped { cond.broadcast(); cond.unlock(); return }
            let cmd = queue.removeFirst()
            running = true
            cond.unlock()
            do {
                if runner == nil {
                    runner = try ScriptRunner(disk: disk, engine: engine, eventSink: sink, inFlightRegistry: inFlight, label: "prompt", output: { [weak self] in self?.emit($0) })
                }
                try runner!.run(cmd)
            } catch let e {
                emit("error: \(e.description)")
            }
            cond.lock()
            running = false
            cond.broadcast()
            cond.unlock()
        }
    }
}

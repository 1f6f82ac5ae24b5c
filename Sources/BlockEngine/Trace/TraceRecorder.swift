import BlockIO
import Foundation

/// Writes a `run --trace` file: the header, every guest request, and with detail every event.
///
/// Detail events travel through an ``EventStream`` (so recording never blocks the queues)
/// that a background thread drains into the file; events the drainer could not keep up
/// with are counted in ``lostEvents`` and noted at the end of the file.
package final class TraceRecorder: @unchecked Sendable {
    /// The trace file's path.
    public let path: String
    /// The stream carrying detail events (nil without `--trace-detail`); give it to the workload.
    public let stream: EventStream?
    private let handle: FileHandle
    private let subscription: EventSubscription?
    private let done = ConditionLock()
    private var stopping = false
    private var drainerRunning = false
    private var start: UInt64 = 0

    /// Creates the file and writes its header; with `detail`, starts the event drainer.
    public init(path: String, disk: any DiskFile, detail: Bool, queues: Int) throws(BlockError) {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw BlockError(.io, "cannot create trace file", path: path, operation: "open")
        }
        handle = h
        handle.write(Data((TraceFile.header(image: disk.path, size: disk.logicalSize, format: disk.format) + "\n").utf8))
        if detail {
            let s = EventStream(queues: queues + 1, capacityPerQueue: 1 << 16)
            stream = s
            subscription = s.subscribe()
        } else {
            stream = nil
            subscription = nil
        }
    }

    /// Starts draining detail events; `start` is the workload's start time (event `t` origin).
    public func begin(start: UInt64) {
        self.start = start
        guard let subscription else { return }
        drainerRunning = true
        let t = Thread { [self] in
            var buf = ""
            while true {
                done.lock()
                let stop = stopping
                done.unlock()
                let n = subscription.drain { e in buf += TraceFile.line(e, start: self.start) + "\n" }
                if !buf.isEmpty { handle.write(Data(buf.utf8)); buf = "" }
                if stop && n == 0 { break }
                if n == 0 { subscription.wait(timeoutNs: 100_000_000) }
            }
            done.lock()
            drainerRunning = false
            done.broadcast()
            done.unlock()
        }
        t.start()
    }

    /// Events lost because the drainer fell behind.
    public var lostEvents: UInt64 { stream?.lostEvents ?? 0 }

    /// Stops the drainer, appends the requests (submission order) and closes the file.
    public func finish(requests: [TraceRequest]) {
        done.lock()
        stopping = true
        stream?.wakeReader()
        while drainerRunning { done.wait() }
        done.unlock()
        subscription?.cancel()
        var buf = ""
        for r in requests {
            buf += TraceFile.line(r) + "\n"
            if buf.utf8.count > 1 << 20 { handle.write(Data(buf.utf8)); buf = "" }
        }
        if lostEvents > 0 {
            buf += JSONValue.object([("type", .string("lost")), ("events", .size(lostEvents))]).render(pretty: false) + "\n"
        }
        handle.write(Data(buf.utf8))
        try? handle.close()
    }
}

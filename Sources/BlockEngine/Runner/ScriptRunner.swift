import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// Runs command-language scripts on a disk through one async queue, a command at a time.
///
/// Each I/O command becomes one guest request on the queue (io_uring by default), submitted
/// and waited for before the next; a `read` with a pattern verifies every byte. Output
/// lines read like qemu-io's ("wrote 65536/65536 bytes at offset 0x0"). `sleep` blocks the
/// calling thread for its duration and prints nothing.
public final class ScriptRunner {
    private let disk: any DiskFile
    private let queue: any AsyncIo
    private var nextTag: UInt64 = 1
    /// Called with one line per finished command.
    public var output: (String) -> Void

    /// Creates a runner with its own queue of the given engine.
    /// `inFlightRegistry`, when given, records the requests the runner's queue holds (a
    /// queue named `label`: the TUI's is `prompt`).
    public init(disk: any DiskFile, engine: EngineKind = .auto, eventSink: (any IoEventSink)? = nil,
                inFlightRegistry: InFlightRegistry? = nil, label: String = "script",
                output: @escaping (String) -> Void = { print($0) }) throws(BlockError) {
        self.disk = disk
        let qo = QueueOptions(depth: 8, queueID: 0, engine: engine, eventSink: eventSink, inFlightRegistry: inFlightRegistry, label: label)
        self.queue = try disk.makeQueue(qo)
        self.output = output
    }

    deinit { queue.close() }

    /// Runs every line in order; stops at the first failure, naming its line.
    public func run(_ lines: [ScriptLine], source: String = "script") throws(BlockError) {
        for l in lines {
            do { try run(l.command) } catch let e {
                var e = e
                e.message = "\(source) line \(l.line): \(e.message)"
                throw e
            }
        }
    }

    private func wait(_ tag: UInt64) throws(BlockError) -> IoCompletion {
        try queue.submit()
        while let c = try queue.awaitCompletion() {
            if c.userData == tag { return c }
        }
        throw BlockError(.io, "request \(tag) never completed")
    }

    /// Runs one command. Writes need a writable disk.
    public func run(_ cmd: ScriptCommand) throws(BlockError) {
        let tag = nextTag
        nextTag += 1
        if cmd.isWrite && !disk.isWritable {
            throw BlockError(.readOnly, "image is open read-only: cannot modify it", path: disk.path)
        }
        switch cmd {
        case let .write(off, len, pat):
            let buf = try buffer(len)
            buf.bytes.initializeMemory(as: UInt8.self, repeating: pat)
            try queue.write(at: off, from: UnsafeRawBufferPointer(buf.bytes), userData: tag)
            let c = try wait(tag)
            if let e = c.error { throw e }
            output("wrote \(len)/\(len) bytes at offset \(hex(off))")
        case let .read(off, len, pat):
            let buf = try buffer(len)
            try queue.read(at: off, into: buf.bytes, userData: tag)
            let c = try wait(tag)
            if let e = c.error { throw e }
            if let pat {
                for i in 0..<Int(len) where buf.bytes[i] != pat {
                    throw BlockError(.corruptImage, "pattern verification failed: byte at \(hex(off + UInt64(i))) is \(hex(UInt64(buf.bytes[i]))), expected \(hex(UInt64(pat)))", path: disk.path, guestOffset: off + UInt64(i), operation: "read")
                }
            }
            output("read \(len)/\(len) bytes at offset \(hex(off))\(pat != nil ? " (pattern \(hex(UInt64(pat!))) verified)" : "")")
        case let .zero(off, len):
            try queue.writeZeroes(at: off, length: len, userData: tag)
            let c = try wait(tag)
            if let e = c.error { throw e }
            output("zeroed \(len) bytes at offset \(hex(off))")
        case let .discard(off, len):
            try queue.discard(at: off, length: len, userData: tag)
            let c = try wait(tag)
            if let e = c.error { throw e }
            output("discarded \(len) bytes at offset \(hex(off))")
        case .fsync:
            try queue.fsync(userData: tag)
            let c = try wait(tag)
            if let e = c.error { throw e }
            output("fsync done")
        case let .sleep(ns):
            // No request: the queue stays idle while the script waits.
            var want = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
            var left = timespec()
            while nanosleep(&want, &left) != 0 && errno == EINTR { want = left }
        case .job:
            throw BlockError(.invalidArgument, "'job' runs a job file on a workload (the TUI prompt, or `run IMAGE FILE.fio`), not inside a script", path: disk.path)
        }
    }

    private func buffer(_ len: UInt64) throws(BlockError) -> AlignedBuffer {
        if len > 1 << 30 { throw BlockError(.invalidArgument, "request of \(len) bytes is larger than 1 GiB; split it") }
        return AlignedBuffer(count: Int(len))
    }
}

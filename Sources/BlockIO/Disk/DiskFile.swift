/// An image format, named as qemu-img names it (`qcow2`, `vpc`, ...): the value of
/// `--format`, of `OpenOptions.format` and of `"format"` in JSON output.
///
/// Open on purpose: each format's target declares its constant (QCOW2's lives in
/// `Qcow2`) and registers an `ImageFormatModule` in BlockCore, so no code outside a format's
/// target lists the formats (docs/adr/0017-format-modules.md). Encodes as its name.
public struct ImageFormat: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The name qemu-img uses (`-f`, `"format"` in `qemu-img info --output=json`).
    public let rawValue: String

    /// A format by its qemu-img name; whether blockscope knows it is the registry's question
    /// (BlockCore's `imageFormatModule(named:)`).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The qemu-img name.
    public var description: String { rawValue }
}

/// Which I/O implementation a disk's queues use.
public enum EngineKind: String, Sendable, CaseIterable, Codable {
    /// io_uring when the kernel supports the needed opcodes, sync otherwise.
    case auto
    /// The embedded io_uring engine.
    case uring
    /// Synchronous `pread`/`pwrite` (for comparison and as a fallback).
    case sync
}

/// Block-size hints of a disk, as a VMM reports them to a guest.
public struct DiskTopology: Sendable, Equatable {
    /// The smallest addressable unit, in bytes (512 or 4096).
    public var logicalBlockSize: Int
    /// The device's physical sector size, in bytes.
    public var physicalBlockSize: Int
    /// The smallest I/O that avoids read-modify-write, in bytes.
    public var minimumIoSize: Int
    /// The preferred I/O size (a cluster or block), in bytes.
    public var optimalIoSize: Int
    /// The request alignment QEMU's driver for the format advertises, in bytes (an NBD
    /// export's minimum block size, as qemu-nbd gives it): 512 for VHDX, 1 for the others.
    public var requestAlignment: Int

    /// Creates a topology.
    public init(logicalBlockSize: Int = 512, physicalBlockSize: Int = 512, minimumIoSize: Int = 512, optimalIoSize: Int = 0,
                requestAlignment: Int = 1) {
        self.logicalBlockSize = logicalBlockSize
        self.physicalBlockSize = physicalBlockSize
        self.minimumIoSize = minimumIoSize
        self.optimalIoSize = optimalIoSize
        self.requestAlignment = requestAlignment
    }
}

/// Options for ``openDisk(_:options:)``.
public struct OpenOptions: Sendable {
    /// Open for writing; images open read-only unless this is set (`--write`).
    public var writable: Bool = false
    /// Force a format instead of probing the magic (`--format`).
    public var format: ImageFormat? = nil
    /// Which engine the disk's queues use (`--engine`).
    public var engine: EngineKind = .auto
    /// Open data files with `O_DIRECT`.
    public var direct: Bool = false
    /// Neither take nor test QEMU's image locks (``openDisk``): for tests that open one image
    /// twice on purpose and for the fuzz sandbox; never set from the command line.
    public var ignoreLocks: Bool = false
    /// Maximum backing-chain depth before the open is refused.
    public var maxBackingDepth: Int = 16
    /// Number of L2 tables (or equivalent metadata blocks) a format may cache.
    public var metadataCacheEntries: Int = 1024
    /// Read a named internal snapshot's view instead of the active image (QCOW2).
    public var snapshot: String? = nil
    /// Paths already open higher in a backing chain (loop detection).
    public var chain: [String] = []
    /// Receives events from every queue of the disk; nil costs one branch per event.
    public var eventSink: (any IoEventSink)? = nil
    /// Confines the files an image refers to (backing files, parent images, external data
    /// files) to this directory: a reference that resolves (symlinks and `..` followed)
    /// outside it is refused with `invalidArgument`. nil, the default, allows any path. Set it
    /// for images from untrusted sources; the fuzz targets do.
    public var referenceRoot: String? = nil
    /// Opens the images this one refers to (backing files, parents): `openDisk` sets itself
    /// here, so a format opens a reference without knowing the other formats. nil refuses
    /// references.
    public var referenceOpener: ImageOpener? = nil

    /// Creates options with defaults: read-only, probe the format, io_uring when available.
    public init(writable: Bool = false, format: ImageFormat? = nil, engine: EngineKind = .auto) {
        self.writable = writable
        self.format = format
        self.engine = engine
    }
}

/// An open disk image: the synchronous interface shared by every format.
///
/// One `DiskFile` per open image holds the format's metadata; it is shared by all queues
/// (threads) that do I/O on the image and is safe to call from any thread. Offsets and
/// lengths are guest bytes unless the name says host.
public protocol DiskFile: AnyObject, Sendable {
    /// The image's path, as given to ``openDisk(_:options:)``.
    var path: String { get }
    /// The image's format.
    var format: ImageFormat { get }
    /// The guest-visible size in bytes (qemu-img's virtual-size).
    var logicalSize: UInt64 { get }
    /// Whether the image was opened for writing.
    var isWritable: Bool { get }
    /// Block-size hints.
    var topology: DiskTopology { get }
    /// Non-fatal conditions found on open (image in use, corrupt bit on a read-only open, ...).
    var warnings: [String] { get }

    /// Bytes the image's files occupy on the host (qemu-img's actual-size).
    func physicalSize() throws(BlockError) -> UInt64
    /// Reads `buffer.count` guest bytes at `offset` synchronously.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError)
    /// Writes guest bytes synchronously; needs a writable open.
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockError)
    /// Makes a guest range read as zeroes.
    func writeZeroes(at offset: UInt64, length: UInt64) throws(BlockError)
    /// Discards a guest range (it may then read as zeroes or as the backing file).
    func discard(at offset: UInt64, length: UInt64) throws(BlockError)
    /// Writes cached metadata and flushes the image's files to stable storage.
    func flush() throws(BlockError)
    /// Creates a per-queue async I/O object; the queue belongs to the calling thread.
    func makeQueue(_ options: QueueOptions) throws(BlockError) -> any AsyncIo
    /// The keys of `qemu-img info --output=json` for this image (plus a `blockscope` object).
    func info() throws(BlockError) -> JSONValue
    /// Flushes, clears dirty state and closes the image's files.
    func close() throws(BlockError)
    /// The host file whose byte `n` is guest byte `n`, when the disk is mapped one to one
    /// (RAW): another format's queue may read it straight from the file (a QCOW2 backing
    /// file), and a discard punches a hole that reads back as zeroes. nil for every mapped
    /// format (the default).
    var identityFile: SystemFile? { get }
}

extension DiskFile {
    /// nil: guest offsets go through the format's mapping.
    public var identityFile: SystemFile? { nil }
}

/// Options for one I/O queue.
public struct QueueOptions: Sendable {
    /// Ring depth: how many requests may be in the kernel at once.
    public var depth: Int
    /// The queue's number, reported in events.
    public var queueID: Int
    /// Which engine: `.sync` gives a synchronous queue, otherwise io_uring.
    public var engine: EngineKind
    /// Where events go, overriding the disk's sink.
    public var eventSink: (any IoEventSink)?
    /// Where the queue records the requests it holds (its ``QueueCore`` does, from accept
    /// to the completion's hand-back); nil costs one branch per request.
    public var inFlightRegistry: InFlightRegistry?
    /// What the queue is, as the registry and the views name it (`job w #0`, `prompt`);
    /// a front end's queue is named by ``frontEnd`` instead.
    public var label: String?
    /// The front end that feeds the queue (an NBD connection): its client's name, and each
    /// request's client tag and read instant, recorded with the request in the registry.
    public var frontEnd: FrontEndQueue?

    /// Creates queue options.
    public init(depth: Int = 32, queueID: Int = 0, engine: EngineKind = .auto, eventSink: (any IoEventSink)? = nil,
                inFlightRegistry: InFlightRegistry? = nil, label: String? = nil, frontEnd: FrontEndQueue? = nil) {
        self.depth = depth
        self.queueID = queueID
        self.engine = engine
        self.eventSink = eventSink
        self.inFlightRegistry = inFlightRegistry
        self.label = label
        self.frontEnd = frontEnd
    }
}

/// The result of one request on an ``AsyncIo`` queue.
public struct IoCompletion: Sendable {
    /// The tag the request was submitted with.
    public var userData: UInt64
    /// The request's length in bytes for read, write, zero and discard (0 for fsync), the
    /// same in every engine; 0 when the request failed.
    public var bytes: Int
    /// The failure, with context; nil on success.
    public var error: BlockError?

    /// Creates a completion.
    public init(userData: UInt64, bytes: Int, error: BlockError? = nil) {
        self.userData = userData
        self.bytes = bytes
        self.error = error
    }
}

/// A per-queue asynchronous I/O object (the Swift form of a VMM's `AsyncIo`).
///
/// Requests are tagged with a `userData` the caller chooses and complete in any order.
/// Buffers belong to the caller and must stay valid until the request's completion is
/// returned by ``nextCompletion()``. Requests are queued by the `read`/`write`/... calls and
/// handed to the kernel by ``submit()``. A queue is owned by one thread; many queues on one
/// image share its metadata object.
public protocol AsyncIo: AnyObject {
    /// Queues a guest read of `buffer.count` bytes at `offset`.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) throws(BlockError)
    /// Queues a guest write of `buffer` at `offset`.
    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, userData: UInt64) throws(BlockError)
    /// Queues making a guest range read as zeroes.
    func writeZeroes(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError)
    /// Queues a discard of a guest range.
    func discard(at offset: UInt64, length: UInt64, userData: UInt64) throws(BlockError)
    /// Queues a flush: dirty metadata is written, then the data file is fsynced (IORING_OP_FSYNC).
    func fsync(userData: UInt64) throws(BlockError)
    /// Makes the write, write-zeroes or discard queued next under `userData` a force unit
    /// access request (NBD_CMD_FLAG_FUA; a virtio device without a write cache): the queue
    /// runs its own flush after the data part, inside the same request, and hands back one
    /// completion when both are done (``QueueCore``). Call it just before queueing.
    func forceUnitAccess(userData: UInt64)
    /// Makes the requests queued under `userData` from now on, until
    /// ``endParts(userData:)``, the parts of one guest request of kind `op` and `length`
    /// bytes: accepted once (the first part, as the whole), counted once, and handed back as
    /// one completion of `length` bytes (or the first part's error) after every part has
    /// completed. A front end that carries out one client request as several queue requests
    /// (an NBD NO_HOLE WRITE_ZEROES written as 1 MiB writes of a zero buffer) uses it so
    /// that the engine's figures and events count what the client sent. Call
    /// ``forceUnitAccess(userData:)`` before the first part for a FUA request: its flush
    /// then covers every part.
    func beginParts(userData: UInt64, op: GuestOp, length: UInt64)
    /// Ends the parts of the request begun by ``beginParts(userData:op:length:)``: it
    /// completes once they all have (at once if they have). With no part accepted nothing
    /// completes.
    func endParts(userData: UInt64)
    /// Hands queued requests to the kernel; returns how many entries were submitted.
    @discardableResult
    func submit() throws(BlockError) -> Int
    /// The next finished request, if one is ready (never blocks).
    func nextCompletion() -> IoCompletion?
    /// Blocks until at least one completion is ready or nothing is in flight.
    func waitForCompletion() throws(BlockError)
    /// Guest requests accepted and not yet returned by ``nextCompletion()``.
    var inFlight: Int { get }
    /// An eventfd that becomes readable when completions arrive (-1 if none).
    var eventFD: Int32 { get }
    /// Releases the queue's ring; in-flight requests must have completed.
    func close()
}

extension AsyncIo {
    /// Blocks until the next request completes and returns it; nil when nothing is in
    /// flight. (``nextCompletion()`` never blocks; ``waitForCompletion()`` returns none.)
    public func awaitCompletion() throws(BlockError) -> IoCompletion? {
        while true {
            if let c = nextCompletion() { return c }
            if inFlight == 0 { return nil }
            try waitForCompletion()
        }
    }
}

extension QueueOptions {
    /// Fills what the queue did not choose from the disk's open options (event sink,
    /// engine) and says whether the queue must be synchronous: `--engine=sync`, or `auto`
    /// on a kernel without the io_uring opcodes blockscope needs. Every format's
    /// `makeQueue` goes through here, so the engine choice is made in one place.
    public func resolved(with open: OpenOptions) -> (options: QueueOptions, synchronous: Bool) {
        var q = self
        if q.eventSink == nil { q.eventSink = open.eventSink }
        if q.engine == .auto { q.engine = open.engine }
        let sync = q.engine == .sync || (q.engine == .auto && !IoUringContext.isSupported)
        return (q, sync)
    }
}

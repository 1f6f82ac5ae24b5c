import BlockIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a vhost-user-blk server offers its front end: the open disk, the device it looks
/// like to the guest (features, `virtio_blk_config`), where each virtqueue's queue publishes
/// events and registers its requests (the TUI), and counters for the log.
///
/// Shared between the accept loop and the connection thread; immutable or atomic.
public final class VhostUserBlkExport: Sendable {
    /// The open image; each virtqueue makes its own queue on it.
    public let disk: any DiskFile
    /// Features and config space offered to the driver.
    package let device: VirtioBlkDevice
    /// Receives each virtqueue queue's I/O events (the TUI), or nil.
    public let eventSink: (any IoEventSink)?
    /// Where each virtqueue's queue records its requests (client `vhost vqN`, tag = the
    /// descriptor head), or nil.
    public let inFlightRegistry: InFlightRegistry?
    /// Queue IDs given to virtqueues: `queueIDBase + index`.
    public let queueIDBase: Int
    /// How long a virtqueue keeps looking at its available ring after it last took a
    /// request, before it asks the driver for a kick again (0: ask at once), and how often it
    /// looks meanwhile, in nanoseconds. See ``VhostUserPolling``.
    public let polling: VhostUserPolling
    /// Requests completed (every type), for the log's connection summary.
    public let requests = Atomic<UInt64>(0)
    /// Requests answered with IOERR or UNSUPP.
    public let errors = Atomic<UInt64>(0)

    /// Describes `disk` as a virtio-blk device with `queues` virtqueues (1 to 64),
    /// writable when the disk was opened for writing.
    public init(disk: any DiskFile, queues: Int, eventSink: (any IoEventSink)? = nil,
                inFlightRegistry: InFlightRegistry? = nil, queueIDBase: Int = 1, polling: VhostUserPolling = .standard) {
        self.disk = disk
        self.device = VirtioBlkDevice(size: disk.logicalSize, writable: disk.isWritable, queues: queues)
        self.eventSink = eventSink
        self.inFlightRegistry = inFlightRegistry
        self.queueIDBase = queueIDBase
        self.polling = polling
    }
}

/// The poll window of a vhost-user-blk virtqueue (ADR 0021): after taking requests the
/// queue leaves the driver's kick unarmed (avail_event stays behind, so the driver's
/// EVENT_IDX rule asks no kick) and looks at the available ring every `intervalNs`
/// (a timed wait, not a busy loop), until `windowNs` pass without a new request; then it
/// arms the kick and sleeps. Only a look that takes a batch (``minBatch``) opens or extends
/// the window, so a guest with one request out keeps its kicks and their latency. A guest
/// keeping a deep queue then sends almost no kicks, each of
/// which costs an emulated guest a trap into its VMM and a syscall; a quiet guest pays one
/// window of looks per burst. Without EVENT_IDX the window is not used.
public struct VhostUserPolling: Sendable, Equatable {
    /// Nanoseconds without a new request after which the kick is armed again (0: no window).
    public var windowNs: UInt64
    /// Nanoseconds between looks at the available ring inside the window.
    public var intervalNs: UInt64

    /// A window of `windowNs`, looked at every `intervalNs` (at least 1 µs).
    public init(windowNs: UInt64, intervalNs: UInt64) {
        self.windowNs = windowNs
        self.intervalNs = max(intervalNs, 1_000)
    }

    /// Requests one look must take to open or extend the window.
    public static let minBatch = 2
    /// No window: the kick is armed as soon as the ring is empty.
    public static let off = VhostUserPolling(windowNs: 0, intervalNs: 1_000)
    /// What `serve --vhost-user` uses: a 200 µs window looked at every 20 µs (ADR 0021),
    /// unless the environment's BLOCKSCOPE_VHOST_POLL ("WINDOW_US,INTERVAL_US"; "0,0" for
    /// no window) says otherwise.
    public static var standard: VhostUserPolling {
        if let v = getenv("BLOCKSCOPE_VHOST_POLL").map({ String(cString: $0) }) {
            let p = v.split(separator: ",").compactMap { UInt64($0) }
            if p.count == 2 { return VhostUserPolling(windowNs: p[0] * 1_000, intervalNs: p[1] * 1_000) }
        }
        return VhostUserPolling(windowNs: 200_000, intervalNs: 20_000)
    }
}

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
    /// How long a virtqueue keeps looking at its available ring after it last took a batch
    /// of requests, before it asks the driver for a kick again (0: ask at once), and how often
    /// it looks meanwhile, in nanoseconds. See ``VhostUserPolling``.
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

/// The poll window of a vhost-user-blk virtqueue (ADR 0021): after a look that leaves a
/// batch of requests with the device, the queue leaves the driver's kick unarmed
/// (avail_event stays behind, so the driver's EVENT_IDX rule asks no kick) and looks at the
/// available ring every `intervalNs` (a timed wait, not a busy loop), until `windowNs` pass
/// without such a look (``minBatch`` requests out); then it arms the kick and sleeps. A
/// guest with one request out thus keeps its kicks and their latency, while a guest keeping
/// a deep queue sends almost no kicks, each of which costs an emulated guest a trap into its
/// VMM and a syscall; a quiet guest pays one window of looks per burst. Inside the window
/// the call for used entries also waits while the guest is still submitting (the
/// virtqueue's `flushUsed`). Without EVENT_IDX the window is not used.
public struct VhostUserPolling: Sendable, Equatable {
    /// Nanoseconds without a batch after which the kick is armed again (0: no window).
    public var windowNs: UInt64
    /// Nanoseconds between looks at the available ring inside the window.
    public var intervalNs: UInt64

    /// A window of `windowNs`, looked at every `intervalNs` (at least 1 µs).
    public init(windowNs: UInt64, intervalNs: UInt64) {
        self.windowNs = windowNs
        self.intervalNs = max(intervalNs, 1_000)
    }

    /// Requests the driver must have out with the device (taken by a look that took at
    /// least one, and not yet in the used ring) to open or extend the window.
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

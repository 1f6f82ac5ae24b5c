import BlockIO
import Synchronization

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
    /// Requests completed (every type), for the log's connection summary.
    public let requests = Atomic<UInt64>(0)
    /// Requests answered with IOERR or UNSUPP.
    public let errors = Atomic<UInt64>(0)

    /// Describes `disk` as a virtio-blk device with `queues` virtqueues (1 to 64),
    /// writable when the disk was opened for writing.
    public init(disk: any DiskFile, queues: Int, eventSink: (any IoEventSink)? = nil,
                inFlightRegistry: InFlightRegistry? = nil, queueIDBase: Int = 1) {
        self.disk = disk
        self.device = VirtioBlkDevice(size: disk.logicalSize, writable: disk.isWritable, queues: queues)
        self.eventSink = eventSink
        self.inFlightRegistry = inFlightRegistry
        self.queueIDBase = queueIDBase
    }
}

import BlockIO
import Synchronization

/// What one export offers every connection: the open disk, its size and transmission flags,
/// block-size constraints, the shared allocation map and the server-wide counters.
///
/// Shared by all connection threads; everything here is immutable or atomic.
public final class NbdExport: Sendable {
    /// The open image; each connection makes its own queue on it.
    public let disk: any DiskFile
    /// The export's name ("" is the default export clients get without naming one).
    package let name: String
    /// A description sent with NBD_INFO_DESCRIPTION and NBD_OPT_LIST.
    package let exportDescription: String
    /// Guest size in bytes.
    package let size: UInt64
    /// Whether writes are accepted (`--write`).
    package let writable: Bool
    /// The transmission flags this export can offer; a client gets them through
    /// ``transmissionFlags(structuredReplies:)``.
    package let flags: Nbd.TransmissionFlags
    /// Minimum block size advertised: 1 (any byte offset and length work), 512 for VHDX,
    /// whose sector-based driver qemu-nbd also advertises as 512 (clients then align), and
    /// 4096 when the image's data is opened with O_DIRECT (`--cache none`).
    package let minimumBlockSize: UInt32
    /// Preferred block size advertised: 4 KiB, as qemu-nbd (smaller requests still work).
    package let preferredBlockSize: UInt32
    /// Largest READ/WRITE payload accepted, in bytes; longer requests get EINVAL.
    package let maximumPayload: UInt32
    /// The `base:allocation` map shared by every connection.
    package let allocation: NbdAllocationMap
    /// Counters for `--stats` and the connect/disconnect log.
    package let stats = NbdStats()
    /// Receives each connection queue's I/O events (the TUI), or nil.
    package let eventSink: (any IoEventSink)?
    /// Where each connection's queue records the requests it holds and its figures (the
    /// TUI's In-flight and Completions views), as a front end queue named `nbd ID PEER`
    /// whose requests carry their NBD cookie; nil: not tracked.
    package let inFlightRegistry: InFlightRegistry?

    /// The flags sent in NBD_INFO_EXPORT / the NBD_OPT_EXPORT_NAME reply to a client that did
    /// (or did not) negotiate structured replies: NBD_FLAG_SEND_DF only with them, as the
    /// protocol requires (DF is about structured read chunks).
    package func transmissionFlags(structuredReplies: Bool) -> Nbd.TransmissionFlags {
        structuredReplies ? flags : flags.subtracting(.sendDf)
    }

    /// The default bound on one request's payload: 32 MiB, as qemu-nbd.
    public static let defaultMaximumPayload: UInt32 = 32 << 20

    /// Describes `disk` as an export. The flags advertise FLUSH and FUA always (a no-op on a
    /// read-only export), TRIM, WRITE_ZEROES and FAST_ZERO when writable, CACHE, DF (to
    /// clients with structured replies), and CAN_MULTI_CONN: every queue shares the disk's
    /// metadata and file, so a flush on any connection makes every completed write durable.
    /// `direct` says the disk was opened with O_DIRECT (requests must then be 4 KiB aligned).
    public init(disk: any DiskFile, name: String = "", maximumPayload: UInt32 = NbdExport.defaultMaximumPayload,
                direct: Bool = false, eventSink: (any IoEventSink)? = nil, inFlightRegistry: InFlightRegistry? = nil) {
        self.disk = disk
        self.name = name
        self.size = disk.logicalSize
        self.writable = disk.isWritable
        self.exportDescription = "blockscope \(disk.format.rawValue) \(disk.path)"
        var f: Nbd.TransmissionFlags = [.hasFlags, .sendFlush, .sendFua, .sendDf, .sendCache, .canMultiConn]
        if writable { f.formUnion([.sendTrim, .sendWriteZeroes, .sendFastZero]) } else { f.insert(.readOnly) }
        self.flags = f
        self.minimumBlockSize = direct ? 4096 : UInt32(clamping: disk.topology.requestAlignment)
        self.preferredBlockSize = 4096
        self.maximumPayload = maximumPayload
        self.allocation = NbdAllocationMap(disk: disk)
        self.eventSink = eventSink
        self.inFlightRegistry = inFlightRegistry
    }
}

/// Server-wide counters, updated with relaxed atomics by every connection thread.
package final class NbdStats: Sendable {
    /// Completed NBD_CMD_READs.
    package let reads = Atomic<UInt64>(0)
    /// Completed NBD_CMD_WRITEs.
    package let writes = Atomic<UInt64>(0)
    /// Completed flush, trim, zero, cache and block-status requests.
    package let others = Atomic<UInt64>(0)
    /// Bytes read by clients.
    package let readBytes = Atomic<UInt64>(0)
    /// Bytes written by clients.
    package let writeBytes = Atomic<UInt64>(0)
    /// Requests answered with an error.
    package let errors = Atomic<UInt64>(0)
    /// Sum of request latencies (receive of the header to reply sent), in nanoseconds.
    package let latencyNs = Atomic<UInt64>(0)
    /// Connected clients.
    package let clients = Atomic<Int>(0)

    /// Creates zeroed counters.
    package init() {}

    /// Completed requests of every kind.
    package var requests: UInt64 {
        reads.load(ordering: .relaxed) &+ writes.load(ordering: .relaxed) &+ others.load(ordering: .relaxed)
    }
}

/// One descriptor of a virtqueue request's chain as the guest's driver wrote it: where the
/// buffer is in guest-physical memory, how long it is, which way the data goes, and whether
/// it came from an indirect table. The Virtqueue view lists these under each request.
public struct VirtqSegment: Sendable, Equatable {
    /// Guest-physical address of the buffer (of the table, for an indirect descriptor).
    public var address: UInt64
    /// Length in bytes as the descriptor says.
    public var length: UInt32
    /// VIRTQ_DESC_F_WRITE: the device writes it (read data, the status byte).
    public var writable: Bool
    /// Read from an indirect table (VIRTQ_DESC_F_INDIRECT's table), not the ring's own.
    public var inIndirectTable: Bool
    /// The descriptor points to an indirect table of ``length`` / 16 descriptors.
    public var isIndirectTable: Bool

    /// A descriptor from its fields.
    public init(address: UInt64, length: UInt32, writable: Bool, inIndirectTable: Bool = false, isIndirectTable: Bool = false) {
        self.address = address
        self.length = length
        self.writable = writable
        self.inIndirectTable = inIndirectTable
        self.isIndirectTable = isIndirectTable
    }
}

/// A request a virtqueue holds: its head descriptor, the request id it carries everywhere
/// (the engine's `userData`: In-flight, events, step mode), and its descriptor chain.
public struct VirtqChain: Sendable, Equatable {
    /// The head descriptor index (the used ring entry's id).
    public var head: UInt16
    /// The request's id (`generation << 32 | head` for vhost-user).
    public var userData: UInt64
    /// The chain's descriptors in the order the device walked them.
    public var segments: [VirtqSegment]

    /// A chain from its parts.
    public init(head: UInt16, userData: UInt64, segments: [VirtqSegment]) {
        self.head = head
        self.userData = userData
        self.segments = segments
    }
}

/// The stages a virtqueue request passes that the engine does not see, as a vhost-user
/// server publishes them (``IoEventPayload/virtqueue(stage:head:value:)``) so step mode can
/// stop a guest's request at each: taken from the avail ring, decoded, its used entry
/// written, the guest called (or not).
public enum VirtqStage: UInt8, Sendable, CaseIterable {
    /// The chain was taken from the avail ring and walked; `value` is its descriptor count.
    case popped
    /// The request header was decoded; `value` is the virtio-blk request type.
    case decoded
    /// The used ring entry was written and published; `value` is the used length.
    case usedWritten
    /// The driver was interrupted (call); `value` is the used index it was told of.
    case called
    /// The call was left out because the driver did not want it (EVENT_IDX's used_event or
    /// VRING_AVAIL_F_NO_INTERRUPT); `value` is the used index.
    case callSuppressed
}

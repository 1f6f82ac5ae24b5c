import BlockIO
import BlockInspect

/// One guest cluster whose new mapping is applied when its data write completes (QEMU's
/// `QCowL2Meta`): the host cluster is allocated and its refcount raised when the write is
/// planned, the L2 entry changes only after the data is on the host.
struct QcowAllocRecord {
    /// Guest cluster index.
    let guestCluster: UInt64
    /// Host offset of the cluster the data goes to.
    let host: UInt64
    /// Whether ``host`` was allocated for this write (released again if the write fails).
    let newCluster: Bool
    /// Extended L2: subclusters that become allocated (the union over joined writers);
    /// ignored when ``fullBitmap``.
    var allocMask: UInt64
    /// Extended L2: the new cluster holds every subcluster's data (bitmap all-allocated).
    let fullBitmap: Bool
    /// The host range whose refcount drops once the new L2 entry is stable (the old
    /// cluster of a copy-on-write, or a compressed cluster's bytes).
    let freeOld: (offset: UInt64, length: UInt64)?
    /// Whether later writes to the same guest cluster may write into ``host`` while this
    /// allocation is in flight: the cluster is fresh (reads as zeroes), its old content was
    /// zeroes too, and no write of the record rewrites bytes outside its own data.
    let joinable: Bool
    /// Writes of this record still in flight (1, plus the writes that joined it).
    var writers = 1
    /// Whether one of its writes completed and set the L2 entry.
    var committed = false
}

/// A host range whose refcount is released once a flush has made the L2 (or L1) change
/// that stopped referencing it stable.
struct QcowPendingFree {
    /// Host byte range.
    var offset: UInt64
    /// Bytes (whole clusters, or a compressed cluster's sectors).
    var length: UInt64
    /// Released by the first flush that begins after a flush with this sequence number completed.
    var safeAfter: UInt64
}

/// The write path's part of ``QcowMetadataState`` (protected by the metadata lock).
///
/// Ordering rules (docs/adr/0006-qcow2-write-ordering.md): a refcount is raised in memory
/// when a cluster is allocated and written back before any L2 entry that uses it; an L2
/// entry changes only after its data write completed; an L1 entry is written after the L2
/// table it points to; a refcount drops only after the change that stopped referencing the
/// cluster is stable. Clusters freed in this session are never reused in it (the allocation
/// cursor only moves forward), so an in-flight write can never land in someone else's data.
struct QcowWriteState {
    /// Incompatible feature bits as they are on disk now.
    var incompatible: UInt64
    /// Where the refcount table is now (it moves when it grows).
    var refcountTableOffset: UInt64
    /// Its size in clusters.
    var refcountTableClusters: UInt32
    /// End of the host file including clusters allocated in memory, in bytes.
    var hostEnd: UInt64
    /// Size the image file is known to have on disk.
    var fileEnd: UInt64
    /// Clusters at or after this index lay past the end of the file at open: they read as
    /// zeroes until written, and (with the forward-only cursor) are written at most once.
    let freshFrom: UInt64
    /// The next host cluster index the allocator considers.
    var cursor: UInt64 = 0
    /// Dirty L2 tables (host offsets); pinned in the cache.
    var dirtyL2: Set<UInt64> = []
    /// Dirty refcount blocks (host offsets); pinned in the cache.
    var dirtyRefblocks: Set<UInt64> = []
    /// Refcount table entries changed in memory.
    var dirtyRefTable: Set<Int> = []
    /// Active L1 entries changed in memory.
    var dirtyL1: Set<Int> = []
    /// Allocations whose data write is in flight, by token.
    var records: [UInt64: QcowAllocRecord] = [:]
    /// Guest clusters with an allocation in flight -> its token (QEMU's cluster_allocs).
    var busy: [UInt64: UInt64] = [:]
    /// Next token.
    var nextToken: UInt64 = 1
    /// Refcount releases waiting for a flush.
    var pendingFrees: [QcowPendingFree] = []
    /// Flushes begun.
    var flushSeq: UInt64 = 0
    /// The last flush that completed.
    var flushDone: UInt64 = 0
    /// Whether a flush is between begin and end (flushes run one at a time per image).
    var flushing = false
    /// Host clusters that hold metadata (header, L1, L2, refcount table and blocks,
    /// snapshot tables and snapshot L1 tables): data writes there are refused.
    var metadataClusters: Set<UInt64> = []
    /// Whether the write path was prepared (``QcowMetadata/prepareForWriting()``).
    var prepared = false
    /// Guest bytes the backing image covers (0 without one): copy-on-write fills past it are zeroes.
    var backingSize: UInt64 = 0
    /// Where the backing chain holds data, for events (nil: every byte below ``backingSize``
    /// counts as backing data).
    var backingData: (@Sendable () -> BackingAllocation?)?
    /// Whether blockscope set the dirty bit (lazy refcounts) and must clear it on close.
    var setDirtyBit = false

    init(header: Qcow2Header, fileSize: UInt64) {
        incompatible = header.incompatibleFeatures
        refcountTableOffset = header.refcountTableOffset
        refcountTableClusters = header.refcountTableClusters
        hostEnd = fileSize
        fileEnd = fileSize
        freshFrom = (fileSize + header.clusterSize - 1) >> UInt64(header.clusterBits)
    }
}

/// Where the bytes of a span that are not guest data come from (copy-on-write sources).
public enum Qcow2FillSource: Sendable, Equatable {
    /// Zeroes.
    case zero
    /// The backing image at this guest offset (zeroes past its end or without one).
    case backing(guestOffset: UInt64)
    /// The data file at this host offset (the old cluster of a copy-on-write).
    case host(offset: UInt64)
    /// Part of a compressed cluster: decompress it and take the bytes at `offsetInCluster`.
    case compressed(descriptor: Qcow2CompressedDescriptor, offsetInCluster: Int)
}

/// One piece of a span that must be filled before the span is written.
public struct Qcow2Fill: Sendable, Equatable {
    /// Offset of the piece within the span.
    public var spanOffset: Int
    /// Bytes.
    public var length: Int
    /// Where they come from.
    public var source: Qcow2FillSource
}

/// One host write that a guest write (or zero) becomes: guest data, possibly surrounded by
/// copy-on-write fill, written at one host offset of the data file.
public struct Qcow2ClusterWrite: Sendable {
    /// Guest offset of the guest data in this piece.
    public var guestOffset: UInt64
    /// Bytes of guest data.
    public var length: UInt64
    /// Host offset where the span starts.
    public var hostOffset: UInt64
    /// Bytes written at ``hostOffset`` (guest data plus fills).
    public var spanLength: UInt64
    /// Where the guest data starts within the span.
    public var dataOffsetInSpan: Int
    /// Pieces of the span outside the guest data (empty for a plain in-place write).
    public var fills: [Qcow2Fill]
    /// Allocations to commit when the write completes (empty: no metadata changes).
    public var tokens: [UInt64]
    /// The guest data is zeroes (a zero or discard that needs a data write), not the caller's buffer.
    public var zeroData: Bool

    /// Whether the span is exactly the guest data (no bounce buffer needed).
    public var isDirect: Bool { fills.isEmpty && !zeroData }
}

/// The result of planning a guest write.
public enum Qcow2WritePlan: Sendable {
    /// A cluster of the range has an allocation in flight; retry after it completes.
    case busy
    /// The host writes to issue (in guest order), and the events that planning produced.
    case ready([Qcow2ClusterWrite], events: [IoEventPayload])
}

/// One step of a flush.
public enum Qcow2FlushStep: Sendable {
    /// Writes to the image file, issued together.
    case write([(offset: UInt64, bytes: [UInt8])])
    /// A datasync of the image file (and of the external data file when `dataFileToo`).
    case sync(dataFileToo: Bool)
}

/// The metadata a flush writes, in order: refcount blocks, a datasync (of the data file
/// too), then L2 tables and refcount table entries and a datasync, then L1 entries and a
/// datasync. Steps with nothing to write are left out; a flush with nothing dirty is one
/// datasync.
public struct Qcow2FlushBatch: Sendable {
    /// The flush's sequence number.
    public let seq: UInt64
    /// The steps, in order; each must complete before the next is issued.
    public var steps: [Qcow2FlushStep]
    let l2: Set<UInt64>
    let refblocks: Set<UInt64>
    let refTable: Set<Int>
    let l1: Set<Int>
    /// What each step does, by name (parallel to ``steps``): `.writingRefcountBlocks`,
    /// `.writingL2Tables`, `.writingRefcountTable`, `.writingL1Table`, or `.fsyncSubmitted`
    /// for a datasync.
    public var phases: [FsyncPhase] = []
    /// Refcount releases this flush applied when it began (a cluster freed, or a shared
    /// cluster's count dropping, e.g. 2 -> 1 after a copy-on-write), as `tableUpdate` events.
    public var events: [IoEventPayload] = []

    /// The name of step `i` (`.fsyncSubmitted` for a datasync or an unnamed step).
    public func phase(ofStep i: Int) -> FsyncPhase { i < phases.count ? phases[i] : .fsyncSubmitted }

}

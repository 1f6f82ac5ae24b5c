import BlockCore

/// What every cluster-based capability below needs: the cluster size and each host
/// cluster's stored reference count (QCOW2's refcount blocks).
public protocol HostClusterInspector: LayoutInspector {
    /// Cluster size in bytes (a power of two).
    var clusterSize: UInt64 { get }
    /// The stored refcount of the cluster at host `offset` (nil when unreadable or none).
    func refcount(ofClusterAt offset: UInt64) -> UInt64?
}

/// What the L1/L2 view, `m` in Hex and the stepper's entry highlight need from an image whose
/// guest space is mapped by a two-level cluster table (QCOW2's L1 and L2 tables). The views
/// ask for this capability, not for a format's inspector; the entries are BlockCore's decoded
/// ``Qcow2L2Entry`` values and every classification comes from BlockCore.
public protocol ClusterTableInspector: HostClusterInspector {
    /// Entries per L2 table.
    var l2Entries: Int { get }
    /// True when L2 entries carry a subcluster bitmap (extended L2, 16 bytes per entry).
    var extendedL2: Bool { get }
    /// The L1 table's raw entries (empty when it could not be read).
    var l1: [UInt64] { get }
    /// Host offset of the L1 table (0 when unknown).
    var l1TableOffset: UInt64 { get }
    /// True when unallocated clusters read from a backing file.
    var hasBacking: Bool { get }
    /// The L2 table under L1 entry `index`; nil when it has none or cannot be read.
    func l2Table(l1Index index: Int) -> [Qcow2L2Entry]?
    /// Why the L2 table under L1 entry `index` cannot be read (BlockCore's error); nil when
    /// it reads or the entry is empty.
    func l2ReadError(l1Index index: Int) -> String?
    /// Why the L1 and refcount tables could not be read at all (nil when they were).
    var tablesUnreadable: String? { get }
    /// How a guest range this image maps nothing for reads: from the backing file only where
    /// the backing chain holds data there, else as zeroes (role and words).
    func unallocatedState(_ start: UInt64, _ length: UInt64) -> (role: Role, text: String)
    /// The L2 entry that maps guest `offset`; nil when its table is absent.
    func l2Entry(forGuest offset: UInt64) -> Qcow2L2Entry?
    /// How an entry reads as a whole (BlockCore's classification).
    func type(of e: Qcow2L2Entry) -> Qcow2SubclusterType
    /// Host offset and length of a compressed entry's data.
    func compressedExtent(_ e: Qcow2L2Entry) -> (offset: UInt64, length: UInt64)
    /// Host offset of the L2 table an L1 entry points to (0 when unallocated).
    func l2TableOffset(_ l1Entry: UInt64) -> UInt64
}

/// What the Refcounts view needs from an image whose host clusters carry reference counts
/// (QCOW2's refcount table and blocks): stored counts, and the background walk's use map
/// with the expected counts.
public protocol RefcountInspector: HostClusterInspector {
    /// Width of one refcount in bits (1 to 64).
    var refcountBits: Int { get }
    /// Host offset of the refcount table (0 when unknown).
    var refcountTableOffset: UInt64 { get }
    /// The refcount table's raw entries (empty when unreadable).
    var refcountTable: [UInt64] { get }
    /// Host clusters: the use map's count, or the file's size in clusters before the walk.
    var hostClusters: Int { get }
    /// The finished whole-image use map (asking starts the walk); nil until it is done.
    var usage: HostUseMap? { get }
    /// The walk's state in words while there is no use map to show; nil once it is there.
    var usageStatus: String? { get }
}

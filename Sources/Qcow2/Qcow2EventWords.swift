import BlockIO
import BlockInspect

/// QCOW2's words for its queues' events: L1 and L2 entries decoded by the format's own
/// masks, the references an entry change drops (released at the next flush, ADR 0006), and
/// which L1/L2 row or host cluster an update changed.
public struct Qcow2EventWords: FormatEventWords {
    /// log2 of the cluster size.
    public var clusterBits: Int
    /// L2 entries per table (cluster size / 8, or / 16 with extended L2).
    public var l2Entries: Int

    /// Words for an image of `clusterBits` clusters (16 for 64 KiB) and L2 tables of
    /// `l2Entries` entries (the cluster size over 8 unless given).
    public init(clusterBits: Int, l2Entries: Int? = nil) {
        self.clusterBits = clusterBits
        self.l2Entries = l2Entries ?? (1 << clusterBits) / 8
    }

    /// "host cluster".
    public var allocationUnit: String { "host cluster" }
    /// Refcount indices count clusters.
    public var hostUnitBits: Int? { clusterBits }

    /// A mapping in the words of clusters, refcounts and the backing chain.
    public func mappingWords(_ kind: RegionKind, host: UInt64, op: GuestOp?) -> String? {
        let reading = op == .read
        switch kind {
        case .allocated:
            if reading { return "allocated in this image at host \(hex(host)) (its own cluster): the read goes to host \(hex(host))" }
            if op == nil { return "allocated in this image at host \(hex(host)) (its own cluster, refcount 1)" }
            return "allocated in this image at host \(hex(host)) (its own cluster, refcount 1: a write goes in place)"
        case .shared:
            if reading { return "shared at host \(hex(host)) (refcount > 1: a snapshot uses it too): the read goes to host \(hex(host))" }
            return "shared at host \(hex(host)) (refcount > 1: a snapshot uses it too, so a write copies it first)"
        case .backing: return "not allocated in this image: the backing file holds the data" + (reading ? ", so the read goes to the backing file" : "")
        case .unallocated: return "unallocated in this image and in its backing chain: reads as zeroes"
        case .zero: return "reads as zeroes (zero cluster)"
        case .compressed: return "compressed cluster at host \(hex(host))" + (reading ? ": the read decompresses it" : "")
        case .mixed: return "several kinds (one line per region follows), first at host \(hex(host))"
        }
    }

    /// A region before a write: its refcount and COPIED flag.
    public func regionWords(_ kind: RegionKind, host: UInt64, refcount: UInt64) -> String? {
        switch kind {
        case .allocated: return "allocated at host \(hex(host)), refcount \(refcount), COPIED (this image's own cluster)"
        case .shared: return "shared — host \(hex(host)) has refcount \(refcount) (a snapshot references it too; no COPIED flag)"
        case .backing: return "unallocated here; the backing file has the data"
        case .unallocated: return "unallocated here and in the backing chain (reads as zeroes)"
        case .zero: return "zero cluster (reads as zeroes, no data)"
        case .compressed: return "compressed, stored at host \(hex(host))"
        case .mixed: return "mixed"
        }
    }

    /// L1 and L2 entries in words; nil for other tables.
    public func entryWords(_ table: MetadataTable, _ value: UInt64) -> String? {
        switch table {
        case .l1: return Qcow2EventWords.l1Words(value)
        case .l2: return Qcow2EventWords.l2Words(value, clusterBits: clusterBits)
        default: return nil
        }
    }

    /// The L2 table an L1 change unlinks, or the cluster (compressed bytes) an L2 change stops
    /// referencing: its refcount release is pending until the next flush.
    public func releaseWords(_ table: MetadataTable, old: UInt64, new: UInt64) -> String {
        switch table {
        case .l1:
            return Qcow2DroppedReference.l2Table(old: old, new: new).map { "; old L2 table \(hex($0)): refcount \(InspectWords.releasePending)" } ?? ""
        case .l2:
            guard let d = Qcow2DroppedReference.data(old: old, new: new, clusterBits: UInt32(clusterBits)) else { return "" }
            return "; old \(d.compressed ? "compressed bytes at" : "cluster") \(hex(d.offset)): refcount \(InspectWords.releasePending)"
        default:
            return ""
        }
    }

    /// "L1", "L2".
    public func tableName(_ table: MetadataTable) -> String? {
        switch table {
        case .l1: return "L1"
        case .l2: return "L2"
        default: return nil
        }
    }

    /// An L1 update is a directory row, an L2 update a row of the leaf table that maps
    /// `guest`, a refcount update a host cluster of the refcount panel.
    public func target(ofUpdate table: MetadataTable, index: UInt64, guest: UInt64) -> (target: InspectTarget, name: String)? {
        let per = UInt64(max(1, l2Entries))
        switch table {
        case .l1: return (.entry(InspectLink(.directory, Int(index))), "L1[\(index)]")
        case .l2: return (.entry(InspectLink(.leaf(Int((guest >> UInt64(clusterBits)) / per)), Int(index))), "L2[\(index)]")
        case .refcount: return (.hostUnit(Int(index)), "the refcount of host cluster \(index)")
        default: return nil
        }
    }

    /// An L1 entry: "empty", "L2 table at 0x40000 (COPIED)".
    public static func l1Words(_ e: UInt64) -> String {
        let off = e & Qcow2Entry.offsetMask
        if off == 0 { return "empty" }
        return "L2 table at \(hex(off)) (\(e & Qcow2Entry.copied != 0 ? "COPIED" : "shared with a snapshot"))"
    }

    /// An L2 entry (standard part): "unallocated", "zero", "data at 0x50000 (COPIED)",
    /// "compressed at 0x… (N bytes)".
    public static func l2Words(_ e: UInt64, clusterBits: Int?) -> String {
        if e & Qcow2Entry.compressed != 0 {
            guard let bits = clusterBits else { return "compressed (\(hex(e)))" }
            let d = Qcow2CompressedDescriptor(entry: e & ~(Qcow2Entry.copied | Qcow2Entry.compressed), clusterBits: UInt32(bits))
            return "compressed at \(hex(d.hostOffset)) (\(d.length) bytes)"
        }
        let off = e & Qcow2Entry.offsetMask
        let flag = e & Qcow2Entry.copied != 0 ? "COPIED" : "shared, no COPIED"
        if e & Qcow2Entry.zero != 0 { return off == 0 ? "zero" : "zero, preallocated at \(hex(off)) (\(flag))" }
        if off == 0 { return "unallocated" }
        return "data at \(hex(off)) (\(flag))"
    }
}

import BlockIO
import BlockInspect

/// L1/L2 entry decoding, per QEMU's docs/interop/qcow2.txt.
public enum Qcow2Entry {
    /// L1 and standard L2 entries: bit 63 COPIED (refcount is exactly 1).
    public static let copied: UInt64 = 1 << 63
    /// L2 entry bit 62: compressed cluster.
    public static let compressed: UInt64 = 1 << 62
    /// Standard L2 entry bit 0: reads as zeroes (v3, without extended L2).
    public static let zero: UInt64 = 1
    /// Bits 9..55: an L2 table or data cluster host offset.
    public static let offsetMask: UInt64 = 0x00ff_ffff_ffff_fe00
    /// Subcluster bitmap: the 32 "allocated" bits.
    public static let allAllocated: UInt64 = 0xffff_ffff
}

/// How one subcluster (or cluster, without extended L2) reads, as QEMU classifies it.
public enum Qcow2SubclusterType: String, Sendable, Equatable {
    /// Data at a host offset.
    case normal
    /// Compressed cluster.
    case compressed
    /// Reads as zeroes, no host cluster.
    case zeroPlain = "zero-plain"
    /// Reads as zeroes, host cluster preallocated.
    case zeroAlloc = "zero-alloc"
    /// Not allocated here: backing file or zeroes.
    case unallocatedPlain = "unallocated"
    /// Not allocated here, but inside an allocated cluster (extended L2).
    case unallocatedAlloc = "unallocated-alloc"
    /// Inconsistent entry (both bitmap bits set, allocated bit without a cluster).
    case invalid
}

/// A compressed cluster descriptor, decoded.
public struct Qcow2CompressedDescriptor: Sendable, Equatable {
    /// Host byte offset of the compressed data (not aligned).
    public var hostOffset: UInt64
    /// Bytes to read: whole 512-byte sectors minus the offset into the first.
    public var length: Int

    /// Decodes the low 62 bits of an L2 entry: `x = 62 - (cluster_bits - 8)` offset bits,
    /// then the number of additional 512-byte sectors.
    public init(entry: UInt64, clusterBits: UInt32) {
        let x = 62 - (UInt64(clusterBits) - 8)
        hostOffset = entry & ((1 << x) - 1)
        let sectors = ((entry >> x) & ((1 << (UInt64(clusterBits) - 8)) - 1)) + 1
        length = Int(sectors * 512 - (hostOffset & 511))
    }
}

/// One decoded L2 entry (64-bit entry plus, with extended L2, its subcluster bitmap).
public struct Qcow2L2Entry: Sendable, Equatable {
    /// The 64-bit entry.
    public var entry: UInt64
    /// The subcluster bitmap (0 without extended L2).
    public var bitmap: UInt64

    /// Creates an entry.
    public init(entry: UInt64, bitmap: UInt64) {
        self.entry = entry
        self.bitmap = bitmap
    }

    /// Host offset bits 9..55.
    public var hostOffset: UInt64 { entry & Qcow2Entry.offsetMask }
    /// Whether bit 62 is set.
    public var isCompressed: Bool { entry & Qcow2Entry.compressed != 0 }

    /// Whether the cluster is allocated (has a host cluster, or is offset 0 in an external
    /// data file with COPIED set), ignoring zero flags.
    public func hasHostCluster(externalData: Bool) -> Bool {
        if isCompressed { return false }
        return hostOffset != 0 || (externalData && entry & Qcow2Entry.copied != 0)
    }

    /// The type of subcluster `sc` (0 without extended L2), as QEMU's qcow2_get_subcluster_type.
    public func type(subcluster sc: Int, extendedL2: Bool, externalData: Bool) -> Qcow2SubclusterType {
        if isCompressed { return .compressed }
        let allocated = hasHostCluster(externalData: externalData)
        if !extendedL2 {
            if entry & Qcow2Entry.zero != 0 { return allocated ? .zeroAlloc : .zeroPlain }
            return allocated ? .normal : .unallocatedPlain
        }
        if (bitmap >> 32) & bitmap & Qcow2Entry.allAllocated != 0 { return .invalid }
        let allocBit = (bitmap >> UInt64(sc)) & 1 != 0
        let zeroBit = (bitmap >> UInt64(32 + sc)) & 1 != 0
        if allocated {
            if zeroBit { return .zeroAlloc }
            return allocBit ? .normal : .unallocatedAlloc
        }
        if zeroBit { return .zeroPlain }
        return allocBit ? .invalid : .unallocatedPlain
    }
}

/// One region of a guest read, as ``QcowMetadata/mapClustersForRead(offset:length:)`` resolves it.
public struct ReadMapping: Sendable, Equatable {
    /// Where a region's bytes come from.
    public enum Kind: Sendable, Equatable {
        /// Host data at `hostOffset` of the image's data file (the image itself, or its
        /// external data file).
        case data(hostOffset: UInt64)
        /// Reads as zeroes.
        case zero
        /// Not allocated in this image: read the backing image at the same guest offset
        /// (zeroes without a backing image or past its end).
        case backing
        /// Part of a compressed cluster: read `descriptor`, decompress one cluster, and take
        /// the bytes at `offsetInCluster`.
        case compressed(descriptor: Qcow2CompressedDescriptor, offsetInCluster: Int)
    }

    /// Guest offset of the region.
    public var guestOffset: UInt64
    /// Bytes.
    public var length: UInt64
    /// Where the bytes come from.
    public var kind: Kind

    /// Creates a region.
    public init(guestOffset: UInt64, length: UInt64, kind: Kind) {
        self.guestOffset = guestOffset
        self.length = length
        self.kind = kind
    }

    /// The event layer's summary of the kind: a range no L2 entry maps is `.backing` where a
    /// backing file of `backingSize` bytes covers its start and (with `chain`) holds data in
    /// it, `.unallocated` (reads as zeroes) elsewhere or without one.
    public func regionKind(backingSize: UInt64, chain: BackingAllocation? = nil) -> RegionKind {
        switch kind {
        case .data: return .allocated
        case .zero: return .zero
        case .backing:
            guard guestOffset < backingSize else { return .unallocated }
            if let chain, !chain.holdsData(guestOffset, min(length, backingSize - guestOffset)) { return .unallocated }
            return .backing
        case .compressed: return .compressed
        }
    }

    /// Appends `next` to `list`, extending the last region when it continues it
    /// (contiguous data, or adjacent zero/backing regions).
    static func append(_ next: ReadMapping, to list: inout [ReadMapping]) {
        if var last = list.last, last.guestOffset + last.length == next.guestOffset {
            var joins = false
            switch (last.kind, next.kind) {
            case let (.data(a), .data(b)): joins = a + last.length == b
            case (.zero, .zero), (.backing, .backing): joins = true
            default: break
            }
            if joins {
                last.length += next.length
                list[list.count - 1] = last
                return
            }
        }
        list.append(next)
    }
}

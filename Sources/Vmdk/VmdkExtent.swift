import BlockIO
import BlockInspect
import BlockMap

/// One extent of an open VMDK: a descriptor line with its file opened and, for sparse
/// extents, its grain directory read.
public final class VmdkExtent: @unchecked Sendable {
    /// The descriptor line it came from.
    public let line: VmdkDescriptor.Extent
    /// The extent file's path as opened (nil for ZERO extents).
    public let path: String?
    /// The extent file (nil for ZERO extents); may be the disk's own file (monolithicSparse).
    public let file: SystemFile?
    /// Guest byte offset where the extent starts.
    public let guestStart: UInt64
    /// Guest bytes of the extent.
    public let length: UInt64
    /// FLAT/VMFS: the host byte offset of the extent's first guest byte.
    public let flatOffset: UInt64
    /// SPARSE/SESPARSE: the grain directory and tables.
    public let grains: VmdkGrainMap?

    init(line: VmdkDescriptor.Extent, path: String?, file: SystemFile?, guestStart: UInt64, length: UInt64, flatOffset: UInt64, grains: VmdkGrainMap?) {
        self.line = line
        self.path = path
        self.file = file
        self.guestStart = guestStart
        self.length = length
        self.flatOffset = flatOffset
        self.grains = grains
    }

    /// The guest end (exclusive).
    public var guestEnd: UInt64 { guestStart + length }
    /// The extent's type word as qemu-img info prints it (empty for the one extent of a
    /// monolithic sparse file, as qemu prints).
    public var typeName: String { line.line == 0 ? "" : line.type.rawValue }
}

/// Where one guest range of a VMDK lives.
public struct VmdkRegion: Sendable, Equatable {
    /// What backs the range.
    public enum Kind: Sendable, Equatable {
        /// Bytes at `host` of extent `extent`'s file.
        case data(extent: Int, host: UInt64)
        /// Reads as zeroes (a zeroed grain, a ZERO extent, a grain of a parentless image).
        case zero
        /// Not allocated here: read from the parent (zeroes without one).
        case parent
        /// Part of a compressed grain whose marker (or data) starts at `host`; the range
        /// starts `inGrain` bytes into the grain.
        case compressed(extent: Int, host: UInt64, inGrain: UInt64)
    }
    /// Guest offset.
    public var guestOffset: UInt64
    /// Length in bytes.
    public var length: UInt64
    /// What backs it.
    public var kind: Kind

    /// Appends `r`, merging it into the last region when contiguous and of the same kind.
    static func append(_ r: VmdkRegion, to list: inout [VmdkRegion]) {
        if r.length == 0 { return }
        if var last = list.last, last.guestOffset + last.length == r.guestOffset {
            switch (last.kind, r.kind) {
            case let (.data(e1, a), .data(e2, b)) where e1 == e2 && a + last.length == b: last.length += r.length
            case (.zero, .zero), (.parent, .parent): last.length += r.length
            default: list.append(r); return
            }
            list[list.count - 1] = last
            return
        }
        list.append(r)
    }
}

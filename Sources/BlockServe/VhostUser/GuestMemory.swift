#if canImport(Glibc)
import Glibc
#endif

/// A contiguous piece of guest memory as this process sees it: where it is mapped here and
/// its guest-physical address (for log lines and views).
public struct GuestSegment: Equatable {
    /// The first byte in this process (inside a mapping of ``GuestMemory``).
    public var host: UnsafeMutableRawPointer
    /// Bytes in the piece.
    public var length: Int
    /// The guest-physical address of the first byte.
    public var guestPhysical: UInt64
}

/// The guest's memory as the VMM shared it with SET_MEM_TABLE: one mapping per region,
/// translating guest-physical addresses (descriptors) and the VMM's virtual addresses
/// (SET_VRING_ADDR) into pointers of this process, always within a region's bounds.
///
/// Owned by one connection's thread; the mappings live until ``unmapAll()`` (a new table,
/// the connection's end), which the connection calls only once no request uses them.
/// Tests and the fuzz target build one over memory of their own with ``init(regions:)``.
public final class GuestMemory: @unchecked Sendable {
    /// One region: its addresses in the guest and in the VMM, and where it is mapped here.
    public struct Region {
        /// Guest-physical address of the first byte.
        public var guestPhysical: UInt64
        /// The VMM's virtual address of the first byte.
        public var userAddress: UInt64
        /// Bytes in the region.
        public var size: UInt64
        /// The first byte in this process.
        public var host: UnsafeMutableRawPointer
        /// The mapping to unmap (start, length), nil for memory the caller owns.
        var mapping: (UnsafeMutableRawPointer, Int)?
    }

    /// The regions, in the order the table listed them.
    public private(set) var regions: [Region]

    /// Memory over buffers the caller owns and keeps alive (tests, fuzzing): each
    /// `(guestPhysical, userAddress, buffer)` is one region.
    public init(regions: [(guestPhysical: UInt64, userAddress: UInt64, buffer: UnsafeMutableRawBufferPointer)]) {
        self.regions = regions.map {
            Region(guestPhysical: $0.guestPhysical, userAddress: $0.userAddress, size: UInt64($0.buffer.count), host: $0.buffer.baseAddress!, mapping: nil)
        }
    }

    /// Maps every region of a SET_MEM_TABLE with its descriptor (`fds[i]` for `table[i]`),
    /// shared and read-write. A descriptor whose file is shorter than the region's end, or a
    /// failed `mmap`, is an error naming the region; nothing stays mapped then. The
    /// descriptors are not closed here.
    public init(table: [VhostUserMemoryRegion], fds: [Int32]) throws(VhostUserParseError) {
        regions = []
        guard table.count == fds.count else {
            throw VhostUserParseError("SET_MEM_TABLE lists \(table.count) regions but carries \(fds.count) file descriptors")
        }
        for (i, r) in table.enumerated() {
            var st = stat()
            guard fstat(fds[i], &st) == 0 else { unmapAll(); throw VhostUserParseError("SET_MEM_TABLE region \(i): fstat: \(String(cString: strerror(errno)))") }
            let end = r.mmapOffset + r.size
            // Touching a shared mapping past the end of its file raises SIGBUS: refuse it here.
            if (st.st_mode & S_IFMT) == S_IFREG && UInt64(st.st_size) < end {
                unmapAll()
                throw VhostUserParseError("SET_MEM_TABLE region \(i) ends at offset \(end) of a file of \(st.st_size) bytes")
            }
            guard end <= UInt64(Int.max) else { unmapAll(); throw VhostUserParseError("SET_MEM_TABLE region \(i) is too large") }
            let p = mmap(nil, Int(end), PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0)
            guard let p, p != MAP_FAILED else {
                unmapAll()
                throw VhostUserParseError("SET_MEM_TABLE region \(i): mmap of \(end) bytes: \(String(cString: strerror(errno)))")
            }
            regions.append(Region(guestPhysical: r.guestPhysical, userAddress: r.userAddress, size: r.size,
                                  host: p + Int(r.mmapOffset), mapping: (p, Int(end))))
        }
    }

    deinit { unmapAll() }

    /// Unmaps every region mapped here (none is used afterwards).
    public func unmapAll() {
        for r in regions { if let (p, n) = r.mapping { munmap(p, n) } }
        regions.removeAll()
    }

    /// Bytes mapped in all regions.
    public var totalSize: UInt64 { regions.reduce(0) { $0 + $1.size } }

    /// A pointer to `length` bytes at the VMM virtual address `address`, when they lie in
    /// one region (the rings must), else nil.
    public func user(_ address: UInt64, _ length: Int) -> UnsafeMutableRawPointer? {
        for r in regions where address >= r.userAddress && address - r.userAddress < r.size {
            let off = address - r.userAddress
            return UInt64(length) <= r.size - off ? r.host + Int(off) : nil
        }
        return nil
    }

    /// A pointer to `length` bytes at guest-physical `address`, when they lie in one
    /// region (descriptor tables must), else nil.
    public func guest(_ address: UInt64, _ length: Int) -> UnsafeMutableRawPointer? {
        for r in regions where address >= r.guestPhysical && address - r.guestPhysical < r.size {
            let off = address - r.guestPhysical
            return UInt64(length) <= r.size - off ? r.host + Int(off) : nil
        }
        return nil
    }

    /// Appends the pieces that make up `length` bytes at guest-physical `address` to `out`
    /// (more than one when the range crosses from one region into the next). Returns false,
    /// appending nothing, when any byte lies outside every region or more than `limit`
    /// pieces would be needed.
    public func pieces(_ address: UInt64, _ length: UInt64, limit: Int, into out: inout [GuestSegment]) -> Bool {
        var a = address, left = length
        let start = out.count
        while left > 0 {
            guard out.count - start < limit,
                  let r = regions.first(where: { a >= $0.guestPhysical && a - $0.guestPhysical < $0.size }) else {
                out.removeSubrange(start...)
                return false
            }
            let off = a - r.guestPhysical
            let n = min(left, r.size - off)
            out.append(GuestSegment(host: r.host + Int(off), length: Int(n), guestPhysical: a))
            a &+= n
            left -= n
        }
        return true
    }
}

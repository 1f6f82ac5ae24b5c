import BlockIO

/// One request's buffers as a driver chained them in a split virtqueue: the device-readable
/// pieces, then the device-writable ones, each translated into this process's mapping of
/// guest memory (a descriptor that crosses regions gives one piece per region).
package struct DescriptorChain {
    /// Device-readable pieces, in chain order.
    package var readable: [GuestSegment] = []
    /// Device-writable pieces, in chain order.
    package var writable: [GuestSegment] = []
    /// Descriptors visited (those of an indirect table included, the table's own too).
    package var descriptors = 0
    /// Total device-readable bytes.
    package var readableBytes: UInt64 = 0
    /// Total device-writable bytes.
    package var writableBytes: UInt64 = 0
    /// Every descriptor as the driver wrote it (guest-physical), when the walk was asked to
    /// record them (a watched virtqueue: the Virtqueue view); nil otherwise.
    package var segments: [VirtqSegment]? = nil

    /// Creates an empty chain.
    package init() {}

    /// The largest number of pieces one chain may have; more is a malformed chain. A Linux
    /// guest sends at most `seg_max` (``VirtioBlkDevice/segMax``) data buffers plus header
    /// and status.
    package static let maxPieces = 1024
    /// The largest indirect table accepted, in descriptors.
    package static let maxIndirect = 1024

    /// Walks the chain that starts at descriptor `head` of the `size`-entry table at `table`
    /// (inside `memory`). Follows NEXT within the table and, when `indirect` was negotiated,
    /// one level of INDIRECT table. Every address is checked against `memory`; a loop, a
    /// chain longer than the table, an index past the table, a nested or empty indirect
    /// table, a readable buffer after a writable one, or more than ``maxPieces`` pieces is an
    /// error sentence, and nothing in guest memory is changed. With `record`, the chain's
    /// ``segments`` list each descriptor read.
    package static func walk(memory: GuestMemory, table: UnsafeRawPointer, size: Int, head: UInt16,
                            indirect: Bool, record: Bool = false) -> Result<DescriptorChain, VirtqChainError> {
        var chain = DescriptorChain()
        if let e = walk(memory: memory, table: table, size: size, head: head, indirect: indirect, record: record, into: &chain) { return .failure(e) }
        return .success(chain)
    }

    /// ``walk(memory:table:size:head:indirect:)`` into `chain`, whose arrays are emptied and
    /// reused (a virtqueue keeps one, so taking a request allocates nothing once they have
    /// grown); returns the error sentence, or nil when `chain` holds the request's pieces.
    package static func walk(memory: GuestMemory, table: UnsafeRawPointer, size: Int, head: UInt16,
                            indirect: Bool, record: Bool = false, into chain: inout DescriptorChain) -> VirtqChainError? {
        chain.readable.removeAll(keepingCapacity: true)
        chain.writable.removeAll(keepingCapacity: true)
        chain.descriptors = 0
        chain.readableBytes = 0
        chain.writableBytes = 0
        chain.segments = record ? [] : nil
        var index = Int(head)
        guard index < size else { return (.init("head \(head) is past the table of \(size) descriptors")) }
        var tableBase = table
        var tableSize = size
        var inIndirect = false
        var budget = size
        while true {
            chain.descriptors += 1
            budget -= 1
            if budget < 0 { return (.init("the chain from head \(head) loops or is longer than its table of \(tableSize) descriptors")) }
            let d = UnsafeRawBufferPointer(start: tableBase + index * Virtq.descriptorSize, count: Virtq.descriptorSize)
            let addr = LE.u64(d, 0), len = LE.u32(d, 8), flags = LE.u16(d, 12), next = LE.u16(d, 14)
            if record {
                chain.segments!.append(VirtqSegment(address: addr, length: len, writable: flags & Virtq.descWrite != 0,
                                                    inIndirectTable: inIndirect, isIndirectTable: flags & Virtq.descIndirect != 0))
            }
            if flags & Virtq.descIndirect != 0 {
                if !indirect { return (.init("descriptor \(index) of head \(head) is INDIRECT, which was not negotiated")) }
                if inIndirect { return (.init("an indirect table of head \(head) holds another INDIRECT descriptor")) }
                if flags & Virtq.descNext != 0 { return (.init("descriptor \(index) of head \(head) has both INDIRECT and NEXT")) }
                let count = Int(len) / Virtq.descriptorSize
                if len == 0 || Int(len) % Virtq.descriptorSize != 0 || count > maxIndirect {
                    return (.init("the indirect table of head \(head) has \(len) bytes (a multiple of 16, at most \(maxIndirect) descriptors)"))
                }
                guard let t = memory.guest(addr, Int(len)) else {
                    return (.init("the indirect table of head \(head) at guest 0x\(String(addr, radix: 16)) (\(len) bytes) lies outside guest memory"))
                }
                tableBase = UnsafeRawPointer(t)
                tableSize = count
                inIndirect = true
                budget = count
                index = 0
                continue
            }
            let writable = flags & Virtq.descWrite != 0
            if !writable && !chain.writable.isEmpty {
                return (.init("head \(head) has a device-readable buffer after a device-writable one"))
            }
            if len > 0 {
                let used = chain.readable.count + chain.writable.count
                let ok = writable
                    ? memory.pieces(addr, UInt64(len), limit: maxPieces - used, into: &chain.writable)
                    : memory.pieces(addr, UInt64(len), limit: maxPieces - used, into: &chain.readable)
                if !ok {
                    return (.init("buffer of head \(head) at guest 0x\(String(addr, radix: 16)) (\(len) bytes) lies outside guest memory or the chain has over \(maxPieces) pieces"))
                }
                if writable { chain.writableBytes += UInt64(len) } else { chain.readableBytes += UInt64(len) }
            }
            if flags & Virtq.descNext == 0 { return nil }
            index = Int(next)
            if index >= tableSize { return (.init("descriptor of head \(head) points to \(next), past its table of \(tableSize)")) }
        }
    }
}

/// Why a descriptor chain was refused: one sentence for the log line.
package struct VirtqChainError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, naming the head descriptor.
    package var description: String
    /// Creates an error with its sentence.
    package init(_ description: String) { self.description = description }
}

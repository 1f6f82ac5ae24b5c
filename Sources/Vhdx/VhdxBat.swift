import BlockIO
import BlockMap
import BlockInspect

/// The state field (bits 0-2) of a VHDX BAT entry.
public enum VhdxBlockState: UInt8, Sendable, CaseIterable {
    /// Payload: not present (dynamic: reads as zero; differencing: read the parent).
    case notPresent = 0
    /// Payload: undefined contents (read as zeroes).
    case undefined = 1
    /// Payload: reads as zeroes.
    case zero = 2
    /// Payload: unmapped (trimmed); reads as zeroes. QEMU's header calls it 5: both are accepted.
    case unmapped = 3
    /// QEMU's value for UNMAPPED.
    case unmappedQemu = 5
    /// Payload: data at FileOffsetMB. Sector bitmap: present.
    case fullyPresent = 6
    /// Payload (differencing only): the sector bitmap says which sectors are here.
    case partiallyPresent = 7

    /// The state's MS-VHDX name.
    public var name: String {
        switch self {
        case .notPresent: return "NOT_PRESENT"
        case .undefined: return "UNDEFINED"
        case .zero: return "ZERO"
        case .unmapped, .unmappedQemu: return "UNMAPPED"
        case .fullyPresent: return "FULLY_PRESENT"
        case .partiallyPresent: return "PARTIALLY_PRESENT"
        }
    }
}

/// A decoded BAT entry: state and file offset in bytes.
public struct VhdxBatEntry: Sendable, Equatable {
    /// The raw 64-bit value.
    public var raw: UInt64
    /// The state bits, or nil for the reserved value 4.
    public var state: VhdxBlockState? { VhdxBlockState(rawValue: UInt8(raw & 7)) }
    /// FileOffsetMB in bytes (bits 20-63 are megabytes, so masking keeps the byte offset).
    public var fileOffset: UInt64 { raw & ~UInt64(0xFFFFF) }
    /// Builds an entry from a state and a 1 MiB-aligned byte offset.
    public init(state: VhdxBlockState, fileOffset: UInt64) { raw = (fileOffset & ~UInt64(0xFFFFF)) | UInt64(state.rawValue) }
    /// Wraps a raw value.
    public init(raw: UInt64) { self.raw = raw }
}

/// BAT geometry: how payload and sector-bitmap entries interleave (MS-VHDX 2.5).
public struct VhdxBatGeometry: Sendable, Equatable {
    /// Payload block size.
    public let blockSize: UInt64
    /// Logical sector size.
    public let logicalSectorSize: UInt64
    /// Payload blocks per sector-bitmap block: 2^23 * logical sector size / block size.
    public let chunkRatio: UInt64
    /// Payload blocks covering the virtual size.
    public let dataBlocks: UInt64
    /// Sector bitmap blocks.
    public let bitmapBlocks: UInt64
    /// BAT entries the file needs.
    public let totalEntries: UInt64

    /// Computes the geometry; throws `overflow`/`corruptImage` when the numbers do not fit.
    public init(virtualSize: UInt64, blockSize: UInt64, logicalSectorSize: UInt64, differencing: Bool, path: String) throws(BlockError) {
        self.blockSize = blockSize
        self.logicalSectorSize = logicalSectorSize
        let chunk = try checkedMul(1 << 23, logicalSectorSize, "vhdx chunk size")
        guard blockSize > 0, chunk % blockSize == 0, chunk / blockSize >= 1 else {
            throw BlockError(.corruptImage, "vhdx: chunk ratio (2^23 * \(logicalSectorSize) / \(blockSize)) is not a positive integer", path: path, operation: "open")
        }
        chunkRatio = chunk / blockSize
        dataBlocks = (virtualSize + blockSize - 1) / blockSize
        bitmapBlocks = (dataBlocks + chunkRatio - 1) / chunkRatio
        if differencing {
            totalEntries = try checkedMul(bitmapBlocks, chunkRatio + 1, "vhdx BAT entry count")
        } else {
            totalEntries = dataBlocks + (dataBlocks - 1) / chunkRatio
        }
        if totalEntries > (1 << 32) {
            throw BlockError(.overflow, "vhdx: BAT would need \(totalEntries) entries", path: path, operation: "open")
        }
    }

    /// The BAT index of payload block `block`.
    @inlinable public func payloadIndex(_ block: UInt64) -> Int { Int(block + block / chunkRatio) }
    /// The BAT index of the sector bitmap block for chunk `chunk`.
    @inlinable public func bitmapIndex(_ chunk: UInt64) -> Int { Int(chunk * (chunkRatio + 1) + chunkRatio) }
}

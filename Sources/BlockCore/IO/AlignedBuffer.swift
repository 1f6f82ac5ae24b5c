/// A heap buffer with a chosen alignment, for `O_DIRECT` I/O and io_uring.
///
/// Owns its memory (freed on deinit); the pointer stays stable for the buffer's life, so
/// it may be handed to the kernel while a request is in flight. Not thread-safe.
public final class AlignedBuffer: @unchecked Sendable {
    /// The buffer's bytes.
    public let bytes: UnsafeMutableRawBufferPointer
    /// The alignment the buffer was allocated with.
    public let alignment: Int

    /// Allocates `count` zeroed bytes aligned to `alignment` (a power of two, default 4 KiB).
    public init(count: Int, alignment: Int = 4096) {
        self.alignment = alignment
        self.bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: alignment)
        self.bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { bytes.deallocate() }

    /// The number of bytes.
    public var count: Int { bytes.count }
    /// The base address.
    public var baseAddress: UnsafeMutableRawPointer { bytes.baseAddress! }
}

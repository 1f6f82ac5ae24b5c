import Glibc

/// A zeroed buffer with a chosen alignment, for `O_DIRECT` I/O and io_uring.
///
/// Owns its memory (freed on deinit); the pointer stays stable for the buffer's life, so
/// it may be handed to the kernel while a request is in flight. Not thread-safe.
///
/// Buffers of ``mappedThreshold`` bytes or more are anonymous mappings of their own: the
/// kernel hands them out zeroed, only the pages the I/O touches become resident, and deinit
/// returns every page to the system. From the heap, a server's 128 KiB slot buffers stayed
/// in per-thread malloc arenas after their connections ended, and its resident size crept
/// up by 10-16% over a 60 s soak (docs/SOAK.md).
public final class AlignedBuffer: @unchecked Sendable {
    /// The buffer's bytes.
    public let bytes: UnsafeMutableRawBufferPointer
    /// The alignment the buffer was allocated with.
    public let alignment: Int
    /// The mapping's length when the buffer is a mapping of its own, else 0.
    private let mappedLength: Int

    /// Size from which a buffer is a mapping of its own rather than heap memory.
    public static let mappedThreshold = 64 << 10

    /// Allocates `count` zeroed bytes aligned to `alignment` (a power of two, default 4 KiB).
    public init(count: Int, alignment: Int = 4096) {
        self.alignment = alignment
        let n = max(count, 1)
        if n >= Self.mappedThreshold && alignment <= 4096 {
            let length = (n + 4095) & ~4095
            let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            if let p, p != MAP_FAILED {
                self.bytes = UnsafeMutableRawBufferPointer(start: p, count: n)
                self.mappedLength = length
                return
            }
        }
        self.mappedLength = 0
        self.bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: alignment)
        self.bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit {
        if mappedLength > 0 { munmap(bytes.baseAddress, mappedLength) } else { bytes.deallocate() }
    }

    /// The number of bytes.
    public var count: Int { bytes.count }
    /// The base address.
    public var baseAddress: UnsafeMutableRawPointer { bytes.baseAddress! }
}

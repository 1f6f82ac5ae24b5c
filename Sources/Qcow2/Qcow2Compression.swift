import BlockIO
import BlockInspect
import CZlib
import CZstd

/// Decompresses QCOW2 compressed clusters: raw deflate (zlib, windowBits -12) or zstd frames.
///
/// The stored length is rounded up to 512-byte sectors, so the input usually carries
/// trailing bytes of the next cluster; both decoders stop at the end of the stream/frame.
/// A cluster must decompress to exactly `output.count` bytes (one cluster), as QEMU requires.
/// Not thread-safe: one decompressor per queue (it keeps a zstd context).
public final class Qcow2Decompressor {
    private let type: UInt8
    private var zstd: OpaquePointer?

    /// Creates a decompressor for compression type 0 (zlib) or 1 (zstd).
    public init(type: UInt8) {
        self.type = type
    }

    deinit { if let zstd { ZSTD_freeDCtx(zstd) } }

    /// Decompresses the cluster in `input` and stores its bytes from `offsetInCluster` on into
    /// all of `output` (a read or copy-on-write fill that needs part of a compressed cluster).
    /// `scratch` (one cluster) holds the whole cluster when `output` is not all of it; a
    /// whole-cluster `output` is decompressed into directly.
    public func decompress(_ input: UnsafeRawBufferPointer, part output: UnsafeMutableRawBufferPointer, offsetInCluster: Int,
                           scratch: UnsafeMutableRawBufferPointer, path: String, hostOffset: UInt64, guestOffset: UInt64? = nil) throws(BlockError) {
        if offsetInCluster == 0 && output.count == scratch.count {
            try decompress(input, into: output, path: path, hostOffset: hostOffset, guestOffset: guestOffset)
            return
        }
        try decompress(input, into: scratch, path: path, hostOffset: hostOffset, guestOffset: guestOffset)
        output.copyMemory(from: UnsafeRawBufferPointer(rebasing: scratch[offsetInCluster..<(offsetInCluster + output.count)]))
    }

    /// Decompresses `input` into all of `output`.
    ///
    /// Throws `corruptImage` (with the guest offset when given) when the data is not a valid
    /// stream or does not fill the cluster.
    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
                           path: String, hostOffset: UInt64, guestOffset: UInt64? = nil) throws(BlockError) {
        func bad(_ m: String) -> BlockError {
            BlockError(.corruptImage, "qcow2: compressed cluster at \(hex(hostOffset)): \(m)", path: path, guestOffset: guestOffset, hostOffset: hostOffset, operation: "decompress")
        }
        if type == 1 {
            if zstd == nil { zstd = ZSTD_createDCtx() }
            guard let ctx = zstd, let inBase = input.baseAddress, let outBase = output.baseAddress else { throw bad("no zstd context") }
            let frame = ZSTD_findFrameCompressedSize(inBase, input.count)
            if ZSTD_isError(frame) != 0 { throw bad("bad zstd frame: \(String(cString: ZSTD_getErrorName(frame)))") }
            let n = ZSTD_decompressDCtx(ctx, outBase, output.count, inBase, frame)
            if ZSTD_isError(n) != 0 { throw bad("zstd: \(String(cString: ZSTD_getErrorName(n)))") }
            if n != output.count { throw bad("zstd frame holds \(n) bytes, expected a \(output.count)-byte cluster") }
            return
        }
        var strm = z_stream()
        if bs_inflate_init_raw(&strm) != Z_OK { throw bad("inflateInit failed") }
        defer { inflateEnd(&strm) }
        strm.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        strm.avail_in = uInt(input.count)
        strm.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
        strm.avail_out = uInt(output.count)
        let r = inflate(&strm, Z_FINISH)
        if !((r == Z_STREAM_END || r == Z_BUF_ERROR) && strm.avail_out == 0) {
            throw bad("deflate stream is invalid or short (zlib result \(r), \(output.count - Int(strm.avail_out)) of \(output.count) bytes)")
        }
    }
}

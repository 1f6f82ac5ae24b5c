import BlockIO
import BlockInspect
import BlockMap

import CZlib

/// Inflates VMDK compressed grains: zlib streams (RFC 1950, with header and checksum, as
/// qemu's `compress()` and VMware write them), after a 12-byte grain marker when the
/// extent has markers.
enum VmdkCompression {
    /// Inflates the grain whose stored bytes start `raw` (marker first with `markers`) and
    /// copies guest bytes `inGrain ..< inGrain + output.count` of it into `output`. A grain
    /// that inflates short (the last grain of a disk) reads as zeroes past its end.
    static func inflateGrain(_ raw: UnsafeRawBufferPointer, markers: Bool, grainBytes: UInt64, inGrain: UInt64,
                             into output: UnsafeMutableRawBufferPointer, path: String, host: UInt64, guest: UInt64) throws(BlockError) {
        func bad(_ m: String) -> BlockError {
            BlockError(.corruptImage, "vmdk: compressed grain at \(hex(host)): \(m)", path: path, guestOffset: guest, hostOffset: host, operation: "read")
        }
        var data = raw
        if markers {
            if raw.count < 12 { throw bad("the grain marker lies beyond the end of the file") }
            let size = Int(raw.load(fromByteOffset: 8, as: UInt32.self).littleEndian)
            if size == 0 || size > raw.count - 12 { throw bad("compressed size \(size) is 0 or runs past \(raw.count - 12) readable bytes") }
            data = UnsafeRawBufferPointer(rebasing: raw[12..<(12 + size)])
        }
        let grain = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(grainBytes), alignment: 64)
        defer { grain.deallocate() }
        var strm = z_stream()
        if inflateInit_(&strm, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) != Z_OK { throw bad("inflateInit failed") }
        defer { inflateEnd(&strm) }
        strm.next_in = UnsafeMutablePointer(mutating: data.baseAddress?.assumingMemoryBound(to: Bytef.self))
        strm.avail_in = uInt(data.count)
        strm.next_out = grain.baseAddress?.assumingMemoryBound(to: Bytef.self)
        strm.avail_out = uInt(grain.count)
        let r = inflate(&strm, Z_FINISH)
        if r != Z_STREAM_END && !(r == Z_BUF_ERROR && strm.avail_out == 0) {
            throw bad("deflate stream is invalid (zlib result \(r) after \(grain.count - Int(strm.avail_out)) bytes)")
        }
        let produced = grain.count - Int(strm.avail_out)
        let start = Int(inGrain)
        let have = max(0, min(output.count, produced - start))
        if have > 0 { output.copyMemory(from: UnsafeRawBufferPointer(rebasing: grain[start..<(start + have)])) }
        if have < output.count { UnsafeMutableRawBufferPointer(rebasing: output[have...]).initializeMemory(as: UInt8.self, repeating: 0) }
    }
}

import BlockIO
import BlockInspect
import BlockMap

import CZlib

extension VmdkFormat {
    /// Writes the guest content of `source` as a streamOptimized VMDK at `path`, laid out as
    /// VMware writes one for an OVA: header (gdOffset "at end"), embedded descriptor, then
    /// each non-zero 64 KiB grain deflated behind a grain marker, then every grain table and
    /// the grain directory behind metadata markers, the footer (the header with the directory's
    /// real offset) and the end-of-stream marker. All-zero grains are left out.
    public static func writeStreamOptimized(path: String, source: any DiskFile) throws(BlockError) {
        let grainSectors: UInt64 = 128
        let grainBytes = Int(grainSectors * 512)
        let capacity = (source.logicalSize + 511) / 512
        let grains = (capacity + grainSectors - 1) / grainSectors
        let tables = Int((grains + 511) / 512)
        let gdSectors = (UInt64(tables) * 4 + 511) / 512
        let flags = VmdkSparseHeader.flagNewlineDetect | VmdkSparseHeader.flagCompressed | VmdkSparseHeader.flagMarkers
        var header = VmdkSparseHeader(version: 3, flags: flags, capacity: capacity, grainSize: grainSectors, descriptorOffset: 1,
                                      descriptorSize: 20, numGTEsPerGT: 512, rgdOffset: 0, gdOffset: VmdkSparseHeader.gdAtEnd,
                                      overHead: 128, compressAlgorithm: VmdkSparseHeader.compressionDeflate)
        let base = String(path.split(separator: "/").last ?? "")
        let desc = VmdkDescriptor(cid: UInt32.random(in: 1...UInt32.max - 1), createType: "streamOptimized",
                                  extents: [VmdkDescriptor.Extent(sectors: capacity, type: .sparse, file: base)],
                                  ddb: [("virtualHWVersion", "4"), ("adapterType", "ide")])
        let text = Array(desc.text().utf8)
        if text.count > 20 * 512 { throw BlockError(.overflow, "vmdk: descriptor exceeds its 20 sectors", path: path, operation: "create") }
        let f = try SystemFile(path: path, writable: true, create: true, truncate: true)
        defer { f.close() }
        try f.writeBytes(header.encode(), at: 0)
        try f.writeBytes(text, at: 512)
        var pos: UInt64 = 128 * 512
        var gt = [UInt32](repeating: 0, count: tables * 512)
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: grainBytes, alignment: 4096)
        defer { input.deallocate() }
        let bound = Int(compressBound(uLong(grainBytes)))
        var out = [UInt8](repeating: 0, count: 12 + bound + 512)
        for g in 0..<grains {
            let start = g * grainSectors * 512
            let n = Int(min(UInt64(grainBytes), source.logicalSize - start))
            try source.read(into: UnsafeMutableRawBufferPointer(rebasing: input[0..<n]), at: start)
            if n < grainBytes { UnsafeMutableRawBufferPointer(rebasing: input[n...]).initializeMemory(as: UInt8.self, repeating: 0) }
            if !input.contains(where: { $0 != 0 }) { continue }
            var len = uLongf(bound)
            let r = out.withUnsafeMutableBytes { o in
                compress2(o.baseAddress!.advanced(by: 12).assumingMemoryBound(to: Bytef.self), &len,
                          input.baseAddress!.assumingMemoryBound(to: Bytef.self), uLong(n), 6)
            }
            if r != Z_OK { throw BlockError(.io, "vmdk: deflate of grain \(g) failed (zlib \(r))", path: path, guestOffset: start, operation: "create") }
            ByteField.putLE(&out, 0, g * grainSectors, width: 8)
            ByteField.putLE(&out, 8, UInt64(len), width: 4)
            let total = (12 + Int(len) + 511) / 512 * 512
            for i in (12 + Int(len))..<total { out[i] = 0 }
            try f.writeBytes(Array(out[0..<total]), at: pos)
            gt[Int(g)] = UInt32(pos / 512)
            pos += UInt64(total)
        }
        var gd = [UInt8](repeating: 0, count: Int(gdSectors * 512))
        for t in 0..<tables {
            let entries = gt[(t * 512)..<((t + 1) * 512)]
            if !entries.contains(where: { $0 != 0 }) { continue }
            try f.writeBytes(VmdkMarker.metadata(.grainTable, sectors: 4), at: pos)
            var b = [UInt8](repeating: 0, count: 2048)
            for (i, e) in entries.enumerated() { ByteField.putLE(&b, i * 4, UInt64(e), width: 4) }
            try f.writeBytes(b, at: pos + 512)
            ByteField.putLE(&gd, t * 4, (pos + 512) / 512, width: 4)
            pos += 512 + 2048
        }
        try f.writeBytes(VmdkMarker.metadata(.grainDirectory, sectors: gdSectors), at: pos)
        try f.writeBytes(gd, at: pos + 512)
        header.gdOffset = (pos + 512) / 512
        pos += 512 + UInt64(gd.count)
        try f.writeBytes(VmdkMarker.metadata(.footer, sectors: 1), at: pos)
        try f.writeBytes(header.encode(), at: pos + 512)
        try f.writeBytes(VmdkMarker.metadata(.endOfStream, sectors: 0), at: pos + 1024)
        try f.sync(dataOnly: false)
    }
}

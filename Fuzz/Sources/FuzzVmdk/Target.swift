import BlockCore
import FuzzSupport

/// vmdk: 32 bytes of write program, then a VMDK: a monolithic sparse file (header, embedded
/// descriptor, grain directories, tables, compressed grains, footer when the directory is at
/// the end) or a descriptor whose extents name files in the sandbox. The pure parsers
/// (descriptor, sparse header, seSparse header) run on the bytes first; then the read side
/// (info, map, check, reads) and the write side as ``ImageTargets/write`` describes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBuffer(data, size)
    let image = bytes.dropFirst(WriteProgram.byteCount)
    // The descriptor parser reads up to the first NUL: only that part is copied (a sparse
    // file's first NUL is in its first bytes; copying a 200 KB image per input was page
    // faults and memset under ASan).
    let text = Array(image.prefix { $0 != 0 })
    let sector = Array(image.prefix(512))
    // As the format probe calls it: on a file's first 512 bytes (BlockCore's probeFormat).
    _ = VmdkDescriptor.looksLikeDescriptor(sector)
    if let d = try? VmdkDescriptor.parse(text, path: "fuzz") {
        // What blockscope writes back must parse to the same descriptor.
        guard let again = try? VmdkDescriptor.parse(Array(d.text().utf8), path: "fuzz") else { violation("descriptor text does not parse back") }
        if again.extents.map(\.text) != d.extents.map(\.text) || again.createType != d.createType || again.cid != d.cid
            || again.parentFileNameHint != d.parentFileNameHint {
            violation("descriptor text parses to another descriptor")
        }
    }
    if image.count >= 512 {
        if let h = try? VmdkSparseHeader.parse(sector, path: "fuzz") {
            if (try? VmdkSparseHeader.parse(h.encode(), path: "fuzz")) != h { violation("sparse header does not encode back") }
        }
        _ = try? VmdkSeSparseHeader.parse(sector, path: "fuzz")
    }
    ImageTargets.read(image, format: .vmdk)
    ImageTargets.write(bytes, format: .vmdk)
    return 0
}

import BlockIO

/// A second descriptor with `O_DIRECT` for data when asked; the buffered one when the
/// filesystem refuses `O_DIRECT` (tmpfs), with a warning.
package func openDataFile(_ file: SystemFile, direct: Bool, warnings: inout [String]) throws(BlockError) -> SystemFile {
    guard direct else { return file }
    do {
        return try SystemFile(path: file.path, writable: file.writable, direct: true)
    } catch let e where e.kind == .unsupportedFeature {
        warnings.append("\(file.path): O_DIRECT is not supported here; data goes through the page cache")
        return file
    }
}

/// Reads a guest range of `parent`; bytes past its end (or without a parent) are zeroes.
package func readFromParent(_ parent: (any DiskFile)?, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockError) {
    let avail = parent.map { offset < $0.logicalSize ? Int(min(UInt64(buffer.count), $0.logicalSize - offset)) : 0 } ?? 0
    if let parent, avail > 0 { try parent.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<avail]), at: offset) }
    if avail < buffer.count { UnsafeMutableRawBufferPointer(rebasing: buffer[avail...]).initializeMemory(as: UInt8.self, repeating: 0) }
}

/// 16 random bytes of a version 4 GUID in the mixed-endian order VHDX and VHD store
/// (the version nibble in byte 7, the variant bits in byte 8).
package func randomGuidBytes() -> [UInt8] {
    var b = (0..<16).map { _ in UInt8.random(in: 0...255) }
    b[7] = (b[7] & 0x0f) | 0x40
    b[8] = (b[8] & 0x3f) | 0x80
    return b
}

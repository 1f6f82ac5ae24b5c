import FuzzSupport

/// vhd: 32 bytes of write program, then a VHD image. Read side first (footer at the end
/// or its copy at 0, dynamic header, BAT, parent locators confined to the sandbox; info,
/// map, check, reads), then the write side as ``ImageTargets/write`` describes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBuffer(data, size)
    ImageTargets.read(bytes.dropFirst(WriteProgram.byteCount), format: .vpc)
    ImageTargets.write(bytes, format: .vpc)
    return 0
}

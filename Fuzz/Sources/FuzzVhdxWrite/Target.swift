import FuzzSupport

/// vhdx-write: 32 bytes of write program, then a VHDX image. A clean image is opened
/// writable (a dirty log is replayed on disk), written through the log, closed and
/// reopened; `check` must find no corruption and written sectors must read back.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ImageTargets.write(inputBuffer(data, size), format: .vhdx)
    return 0
}

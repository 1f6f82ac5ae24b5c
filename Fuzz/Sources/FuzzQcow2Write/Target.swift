import FuzzSupport

/// qcow2-write: 32 bytes of write program, then a QCOW2 image. A clean image is opened
/// writable, written, zeroed, discarded and flushed; afterwards `check` must find no
/// corruption and the written sectors must read back (see ``ImageTargets/write``).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ImageTargets.write(inputBuffer(data, size), format: .qcow2)
    return 0
}

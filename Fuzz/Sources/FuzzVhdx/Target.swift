import FuzzSupport

/// vhdx: the input is a VHDX image. Open read-only (file identifier, both headers, both
/// region tables, metadata region and items, BAT, in-memory log replay, parent locator
/// confined to the sandbox), info, map, check and reads.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ImageTargets.read(UnsafeBufferPointer(start: data, count: size), format: .vhdx)
    return 0
}

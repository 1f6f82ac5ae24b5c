import BlockCore
import FuzzSupport

/// explain: one byte that picks the format (its value modulo 3: QCOW2, VHDX, VHD), then the
/// image as the read targets take it (a QCOW2 file itself; VHDX and VHD as ``SparseImage``
/// encodings, checksums recomputed). `blockscope explain` runs on it whether or not it would
/// open: QCOW2's reference walk with its observer, the content classifier, the findings by
/// cause, header recovery when the header does not parse; VHDX's and VHD's reports; then
/// both renderings. Kept apart from the read targets: an explanation costs about three
/// times their whole input (docs/FUZZING.md).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBuffer(data, size)
    guard let selector = bytes.first else { return 0 }
    let formats: [ImageFormat] = [.qcow2, .vhdx, .vpc]
    ImageTargets.explain(bytes.dropFirst(), format: formats[Int(selector % 3)])
    return 0
}

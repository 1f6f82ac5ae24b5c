import BlockEngine
import FuzzSupport

/// jobfile: the input is an fio job file (any bytes, decoded as UTF-8 with replacement),
/// parsed by ``FioJobFile/parse(_:source:)``. Only `BlockError`s may come out.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = FioJobFile.looksLikeJobFile(text)
    if let f = try? FioJobFile.parse(text, source: "fuzz.fio") {
        for j in f.jobs { _ = j.alignment }
    }
    return 0
}

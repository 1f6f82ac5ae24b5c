import BlockEngine
import FuzzSupport

/// script: the input is a command script (any bytes, decoded as UTF-8 with replacement),
/// parsed whole by ``CommandScript/parse(_:source:)`` and line by line.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? CommandScript.parse(text, source: "fuzz.script")
    if let first = text.split(separator: "\n").first {
        _ = try? CommandScript.parseLine(String(first))
        _ = CommandScript.parseSize(String(first))
    }
    return 0
}

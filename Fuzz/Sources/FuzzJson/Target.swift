import BlockCore
import FuzzSupport

/// json: the input is JSON text (any bytes, decoded as UTF-8 with replacement), parsed by
/// ``JSONValue/parse(_:)`` (BlockCore/Util/JSONValue.swift: trace files, oracle output),
/// then rendered both ways and its members looked up. Only `BlockError`s may come out.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let v = try? JSONValue.parse(text) else { return 0 }
    _ = v.render(pretty: false)
    _ = v.render(pretty: true)
    for key in ["type", "t", "op", "off", "len", "seed"] {
        _ = v[key]?.stringValue
        _ = v[key]?.intValue
    }
    return 0
}

import BlockScopeUI
import FuzzSupport

/// theme: the input is a theme file (themes/*.theme; any bytes, decoded as UTF-8 with
/// replacement), parsed by ``Theme/parse(_:fallbackName:)``. Only `ThemeError`s may come out.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? Theme.parse(text, fallbackName: "fuzz")
    return 0
}

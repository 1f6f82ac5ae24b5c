import BlockScopeUI
import FuzzSupport

/// prompt: the input is a `tui --script` file (the prompt's commands, one a line; any
/// bytes, decoded as UTF-8 with replacement), parsed by ``PromptCommand/parseScript(_:source:)``,
/// which hands engine commands on to the script parser. Only `BlockError`s may come out.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? PromptCommand.parseScript(text, source: "fuzz.script")
    return 0
}

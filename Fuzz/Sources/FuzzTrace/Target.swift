#if canImport(Glibc)
import Glibc
#endif
import BlockEngine
import FuzzSupport

/// trace: the input is a trace file (`blockscope trace` / `replay`: one JSON object a
/// line), read by ``TraceFile/readRequests(_:)`` from one file in the sandbox directory
/// (rewritten per input: the function takes a path). Only `BlockError`s may come out.
private let path = Sandbox.shared.dir + "/trace.jsonl"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    if fd < 0 { violation("cannot create \(path)") }
    var done = 0
    while done < size {
        let n = write(fd, data! + done, size - done)
        if n <= 0 { break }
        done += n
    }
    close(fd)
    _ = try? TraceFile.readRequests(path)
    return 0
}

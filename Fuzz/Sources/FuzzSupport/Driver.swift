#if canImport(Glibc)
import Glibc
#endif

/// The libFuzzer callback type: the input bytes and their count; returns 0.
public typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

@_silgen_name("LLVMFuzzerRunDriver")
private func llvmFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                                 _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                                 _ callback: FuzzCallback) -> Int32

/// Runs libFuzzer's driver on `callback` with the process's command line and exits with
/// its status.
///
/// SwiftPM links an executable's `main` to the module's own entry point, which hides the
/// `main` of the libFuzzer runtime; each target's `main.swift` calls this instead
/// (`LLVMFuzzerRunDriver`, libFuzzer's documented entry for custom mains). Each target
/// must still export `LLVMFuzzerTestOneInput` with `@_cdecl`, because the runtime's own
/// `main` (linked but unused) refers to it.
public func runFuzzer(_ callback: FuzzCallback) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(llvmFuzzerRunDriver(&argc, &argv, callback))
}

/// The input in libFuzzer's own buffer, not copied (a null pointer, as libFuzzer passes for
/// the empty input, gives an empty buffer). A copy of each input was a fresh allocation per
/// input, and for inputs over 128 KiB a mapping of its own, under ASan.
public func inputBuffer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeBufferPointer<UInt8> {
    guard let data, size > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
    return UnsafeBufferPointer(start: data, count: size)
}

/// The input as a byte array (libFuzzer passes a null pointer for the empty input).
public func inputBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// Reports a violated property as a crash libFuzzer records (it catches SIGABRT): prints
/// `message` to stderr, then aborts.
public func violation(_ message: String) -> Never {
    let line = Array("fuzz property violated: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    abort()
}

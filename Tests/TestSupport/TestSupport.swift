import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The output of a finished process.
public struct ProcessResult: Sendable {
    /// Exit status (or 128+signal).
    public var status: Int32
    /// Standard output bytes.
    public var stdout: Data
    /// Standard error as text.
    public var stderr: String
    /// Standard output as text.
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// Helpers shared by the test targets: run programs, find the built binary, make temp dirs.
public enum TestSupport {
    /// The package root (two levels above this file's folder).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The built `blockscope` executable (`BLOCKSCOPE_BIN` overrides; else .build/debug).
    public static var blockscopeBinary: String {
        if let p = ProcessInfo.processInfo.environment["BLOCKSCOPE_BIN"] { return p }
        for dir in [".build/debug", ".build/release", ".build/x86_64-unknown-linux-gnu/debug"] {
            let p = packageRoot.appendingPathComponent(dir).appendingPathComponent("blockscope").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return packageRoot.appendingPathComponent(".build/debug/blockscope").path
    }

    /// Runs `executable` (a path, or a name looked up in PATH) with `arguments`.
    /// `stdin` is fed to the process when given. Output goes through temp files, so large
    /// outputs never deadlock a pipe.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil,
                           environment: [String: String]? = nil, cwd: String? = nil) throws -> ProcessResult {
        let p = Process()
        if executable.contains("/") {
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [executable] + arguments
        }
        if let environment { p.environment = environment }
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let dir = FileManager.default.temporaryDirectory
        let outURL = dir.appendingPathComponent("bs-out-\(UUID().uuidString)")
        let errURL = dir.appendingPathComponent("bs-err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let outH = try FileHandle(forWritingTo: outURL)
        let errH = try FileHandle(forWritingTo: errURL)
        p.standardOutput = outH
        p.standardError = errH
        if let stdin {
            let inURL = dir.appendingPathComponent("bs-in-\(UUID().uuidString)")
            try stdin.write(to: inURL)
            p.standardInput = try FileHandle(forReadingFrom: inURL)
        } else {
            p.standardInput = FileHandle.nullDevice
        }
        try p.run()
        p.waitUntilExit()
        try outH.close()
        try errH.close()
        let out = try Data(contentsOf: outURL)
        let err = String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return ProcessResult(status: status, stdout: out, stderr: err)
    }

    /// Runs the built `blockscope` binary.
    @discardableResult
    public static func blockscope(_ arguments: [String], stdin: Data? = nil) throws -> ProcessResult {
        try run(blockscopeBinary, arguments, stdin: stdin)
    }

    /// Runs qemu-img and throws when it fails.
    @discardableResult
    public static func qemuImg(_ arguments: [String]) throws -> ProcessResult {
        let r = try run("qemu-img", arguments)
        if r.status != 0 && arguments.first != "compare" && arguments.first != "check" {
            throw TestFailure("qemu-img \(arguments.joined(separator: " ")) failed (\(r.status)): \(r.stderr)")
        }
        return r
    }

    /// Runs qemu-io with `-c` commands on an image and throws when it fails.
    @discardableResult
    public static func qemuIo(_ image: String, format: String, _ commands: [String]) throws -> ProcessResult {
        var args = ["-f", format]
        for c in commands { args += ["-c", c] }
        args.append(image)
        let r = try run("qemu-io", args)
        if r.status != 0 || r.stdoutText.contains("failed") {
            throw TestFailure("qemu-io \(commands) failed: \(r.stdoutText) \(r.stderr)")
        }
        return r
    }

    /// A fresh temporary directory; remove it with ``removeTempDir(_:)``.
    public static func makeTempDir(_ label: String = "test") throws -> String {
        let base = ProcessInfo.processInfo.environment["BLOCKSCOPE_TEST_TMP"] ?? NSTemporaryDirectory()
        let path = (base as NSString).appendingPathComponent("blockscope-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Removes a temporary directory.
    public static func removeTempDir(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes `bytes` to a new file.
    public static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Reads a whole file.
    public static func readFile(_ path: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// Guest content of an image per qemu-img (`convert -O raw`).
    public static func qemuRaw(_ image: String, format: String? = nil) throws -> Data {
        let out = image + ".oracle-\(UUID().uuidString.prefix(6)).raw"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var args = ["convert"]
        if let format { args += ["-f", format] }
        args += ["-O", "raw", image, out]
        try qemuImg(args)
        return try readFile(out)
    }

    /// Deterministic pseudo-random bytes (xorshift64*), for test data.
    public static func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
        var x = seed == 0 ? 0x9E3779B97F4A7C15 : seed
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27
            var v = x &* 2685821657736338717
            for _ in 0..<8 where i < count { out[i] = UInt8(truncatingIfNeeded: v); v >>= 8; i += 1 }
        }
        return out
    }
}

/// An error a test helper throws with a message.
public struct TestFailure: Error, CustomStringConvertible {
    /// What failed.
    public var description: String
    /// Creates a failure.
    public init(_ d: String) { description = d }
}

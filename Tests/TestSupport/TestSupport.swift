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

    /// Runs `executable` (a path, or a name looked up in PATH) with `arguments` and waits.
    /// `stdin` is fed to the process when given. Output goes through temp files, so large
    /// outputs never deadlock a pipe. Uses `posix_spawn` and `waitpid` directly: Foundation's
    /// `Process` on Linux can miss a child's exit when tests spawn in parallel (seen as a
    /// zombie `tmux` client and a hung test).
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil,
                           environment: [String: String]? = nil, cwd: String? = nil) throws -> ProcessResult {
        let dir = NSTemporaryDirectory()
        let tag = UUID().uuidString
        let outPath = dir + "/bs-out-\(tag)", errPath = dir + "/bs-err-\(tag)"
        var inPath = "/dev/null"
        if let stdin {
            inPath = dir + "/bs-in-\(tag)"
            try stdin.write(to: URL(fileURLWithPath: inPath))
        }
        defer {
            unlink(outPath); unlink(errPath)
            if stdin != nil { unlink(inPath) }
        }
        let child = try BackgroundProcess(executable, arguments, stdinPath: inPath, stdoutPath: outPath,
                                          stderrPath: errPath, environment: environment, cwd: cwd)
        let status = child.wait()
        let out = try Data(contentsOf: URL(fileURLWithPath: outPath))
        let err = String(decoding: try Data(contentsOf: URL(fileURLWithPath: errPath)), as: UTF8.self)
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

    /// Deterministic pseudo-random bytes for test data: ``SeededRandom``'s sequence started
    /// at `seed` itself (not mixed), eight little-endian bytes per step.
    public static func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededRandom(state: seed)
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var v = rng.next()
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

/// A child process started with `posix_spawnp`, reaped with `waitpid`.
public final class BackgroundProcess: @unchecked Sendable {
    /// The child's pid.
    public let pid: pid_t
    private var status: Int32?

    /// Starts `executable` (a path or a name in PATH); stdio go to the given paths.
    public init(_ executable: String, _ arguments: [String], stdinPath: String = "/dev/null",
                stdoutPath: String = "/dev/null", stderrPath: String = "/dev/null",
                environment: [String: String]? = nil, cwd: String? = nil) throws {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, stdinPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&fa, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Children start with default signal handling (the test runner may ignore some).
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        // A working directory is set through the shell (glibc's addchdir_np does not import).
        let command = cwd.map { ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0, executable] + arguments } ?? ([executable] + arguments)
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var envStrings: [String]
        if let environment {
            envStrings = environment.map { "\($0.key)=\($0.value)" }
        } else {
            envStrings = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        }
        let envp: [UnsafeMutablePointer<CChar>?] = envStrings.map { strdup($0) } + [nil]
        defer { for e in envp { free(e) } }
        var pid: pid_t = 0
        let r = posix_spawnp(&pid, command[0], &fa, &attr, argv, envp)
        if r != 0 { throw TestFailure("cannot start \(executable): \(String(cString: strerror(r)))") }
        self.pid = pid
    }

    /// Sends `signal` to the child.
    public func kill(_ signal: Int32 = SIGKILL) {
        if status == nil { _ = Glibc.kill(pid, signal) }
    }

    /// Waits for the child; returns its exit status, or 128 + signal.
    @discardableResult
    public func wait() -> Int32 {
        if let status { return status }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        let code: Int32
        if st & 0x7f == 0 { code = (st >> 8) & 0xff } else { code = 128 + (st & 0x7f) }
        status = code
        return code
    }

    /// Whether the child has exited (reaps it if so).
    public var hasExited: Bool {
        if status != nil { return true }
        var st: Int32 = 0
        let r = waitpid(pid, &st, WNOHANG)
        if r == pid {
            status = st & 0x7f == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
            return true
        }
        return false
    }

    deinit {
        if status == nil { kill(); wait() }
    }
}

/// Waiting for progress instead of a fixed time: a busy CI machine (two cores shared with a
/// release build) can be ten times slower than an idle one, so a test waits for the thing
/// itself (a file that grows, a line printed, a counter) with a generous upper bound.
public enum Progress {
    /// The upper bound every progress wait uses unless told otherwise: long enough for a debug
    /// binary on a machine whose cores are busy elsewhere, short enough to fail a hung test.
    public static let defaultTimeout: Double = 180

    /// Polls `condition` every `interval` seconds until it holds or `timeout` seconds pass;
    /// returns whether it held. Polling stops early when `child` (if given) has exited and the
    /// condition still does not hold, since nothing will change any more.
    @discardableResult
    public static func wait(timeout: Double = defaultTimeout, interval: Double = 0.005,
                            child: BackgroundProcess? = nil, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            if let child, child.hasExited { return condition() }
            usleep(useconds_t(interval * 1_000_000))
        }
        return condition()
    }

    /// The size of the file at `path` in bytes, 0 when it does not exist.
    public static func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    /// The number of complete lines (newline bytes) in the file at `path`, 0 when it does not exist.
    public static func lineCount(_ path: String) -> Int {
        guard let d = try? Data(contentsOf: URL(fileURLWithPath: path)) else { return 0 }
        return d.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
    }
}

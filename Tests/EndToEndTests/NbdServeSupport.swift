import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A running NBD server (blockscope serve or qemu-nbd) on a Unix socket in a temp dir.
/// Waits for the socket to appear (never a fixed sleep); ``stop()`` sends SIGTERM and waits.
final class NbdServerProcess {
    let socket: String
    let logPath: String
    let process: BackgroundProcess

    /// The libnbd/qemu URI of the export.
    var uri: String { "nbd+unix:///?socket=\(socket)" }

    init(_ executable: String, _ arguments: [String], socket: String, logPath: String) throws {
        self.socket = socket
        self.logPath = logPath
        unlink(socket)
        process = try BackgroundProcess(executable, arguments, stdoutPath: logPath + ".out", stderrPath: logPath)
        let listening = Progress.wait(interval: 0.02, child: process) { FileManager.default.fileExists(atPath: socket) }
        if !listening { throw TestFailure("\(executable) did not start listening on \(socket): \(log)") }
    }

    /// blockscope serve IMAGE --socket DIR/bs.sock EXTRA...
    static func blockscope(_ image: String, dir: String, _ extra: [String] = [], name: String = "bs") throws -> NbdServerProcess {
        let sock = dir + "/\(name).sock"
        return try NbdServerProcess(TestSupport.blockscopeBinary, ["serve", image, "--socket", sock] + extra, socket: sock, logPath: dir + "/\(name).log")
    }

    /// qemu-nbd -t (read-only unless `writable`) on the same kind of socket.
    static func qemuNbd(_ image: String, format: String, dir: String, writable: Bool = false) throws -> NbdServerProcess {
        let sock = dir + "/qemu.sock"
        var args = ["-f", format, "-t", "-k", sock, "--aio=io_uring"]
        if !writable { args.append("-r") }
        return try NbdServerProcess("qemu-nbd", args + [image], socket: sock, logPath: dir + "/qemu.log")
    }

    /// What the server has logged so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the log has a line containing `text` (or the timeout passes).
    @discardableResult
    func waitForLog(_ text: String, timeout: Double = Progress.defaultTimeout) -> Bool {
        Progress.wait(timeout: timeout, interval: 0.02, child: process) { log.contains(text) }
    }

    /// Sends SIGTERM and waits; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        process.kill(SIGTERM)
        return process.wait()
    }

    deinit {
        if !process.hasExited { process.kill(SIGKILL); process.wait() }
    }
}

/// nbdinfo's negotiated facts, without the lines that name the server or guess content.
func nbdinfoFacts(_ uri: String) throws -> [String] {
    let r = try TestSupport.run("nbdinfo", [uri])
    guard r.status == 0 else { throw TestFailure("nbdinfo failed: \(r.stderr)") }
    return r.stdoutText.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { $0.hasPrefix("export-size") || $0.hasPrefix("is_") || $0.hasPrefix("can_") || $0.hasPrefix("block_size") || $0.hasPrefix("base:") || $0.hasPrefix("protocol") }
}

/// `nbdinfo --map` output.
func nbdinfoMap(_ uri: String) throws -> String {
    let r = try TestSupport.run("nbdinfo", ["--map", uri])
    guard r.status == 0 else { throw TestFailure("nbdinfo --map failed: \(r.stderr)") }
    return r.stdoutText
}

/// A minimal blocking NBD client for fault tests: raw bytes in and out of a Unix socket.
final class RawNbdClient {
    let fd: Int32

    init(socket path: String) throws {
        fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in path.utf8.enumerated() { p[i] = b }
        }
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        if r != 0 { throw TestFailure("connect \(path): errno \(errno)") }
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    private var open = true
    /// The transmission flags NBD_INFO_EXPORT carried in ``handshake()``.
    var transmissionFlags: UInt16 = 0

    /// Closes the socket now (the peer sees EOF).
    func close() {
        if open { open = false; Glibc.close(fd) }
    }

    deinit { close() }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// Reads exactly `n` bytes, or nil when the server closes (or 20 s pass).
    func receive(_ n: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: n)
        var got = 0
        while got < n {
            let r = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, n - got, 0) }
            // SO_RCVTIMEO makes recv return EINTR after any signal handler (signal(7)), as the
            // SIGCHLD of another test's qemu-img: that is no answer from the server.
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { return nil }
            got += r
        }
        return out
    }

    /// Whether the server closed the connection (reads until EOF or a reset, at most 20 s;
    /// a server that closes with our garbage unread resets a Unix socket).
    func serverClosed() -> Bool {
        var b = [UInt8](repeating: 0, count: 4096)
        while true {
            let r = b.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 4096, 0) }
            if r == 0 { return true }
            if r < 0 && errno == EINTR { continue }
            if r < 0 { return errno == ECONNRESET }
        }
    }

    static func be(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64(n - 1 - $0))) } }
    static func value(_ b: ArraySlice<UInt8>) -> UInt64 { b.reduce(0) { $0 << 8 | UInt64($1) } }

    /// Fixed-newstyle handshake with NBD_OPT_GO on the default export (no structured
    /// replies, so every reply is a 16-byte simple reply). Returns the export size.
    func handshake() throws -> UInt64 {
        guard let greet = receive(18), Self.value(greet[0..<8]) == 0x4e42444d41474943 else { throw TestFailure("no greeting") }
        send(Self.be(3, 4))
        send(Self.be(0x49484156454F5054, 8) + Self.be(7, 4) + Self.be(6, 4) + Self.be(0, 4) + Self.be(0, 2))
        var size: UInt64 = 0
        while true {
            guard let h = receive(20) else { throw TestFailure("handshake reply missing") }
            let type = Self.value(h[12..<16]), len = Int(Self.value(h[16..<20]))
            let data = len > 0 ? (receive(len) ?? []) : []
            if type == 3 && data.count >= 12 && Self.value(data[0..<2]) == 0 {
                size = Self.value(data[2..<10])
                transmissionFlags = UInt16(Self.value(data[10..<12]))
            }
            if type == 1 { return size }
            if type & 0x8000_0000 != 0 { throw TestFailure("option error \(type)") }
        }
    }

    /// Sends a request header (and payload); returns the simple reply's error, or nil when
    /// the server closed instead.
    func request(type: UInt16, flags: UInt16 = 0, handle: UInt64, offset: UInt64, length: UInt32, payload: [UInt8] = [], readsData: Bool = false) -> UInt32? {
        send(Self.be(0x25609513, 4) + Self.be(UInt64(flags), 2) + Self.be(UInt64(type), 2) + Self.be(handle, 8) + Self.be(offset, 8) + Self.be(UInt64(length), 4) + payload)
        guard let r = receive(16), Self.value(r[0..<4]) == 0x67446698, Self.value(r[8..<16]) == handle else { return nil }
        let err = UInt32(Self.value(r[4..<8]))
        if err == 0 && readsData && length > 0 { _ = receive(Int(length)) }
        return err
    }
}

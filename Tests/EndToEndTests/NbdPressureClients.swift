import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Real clients for the pressure tests: libnbd through Debian's python3-libnbd (the system
/// python, where the `nbd` module is installed) and plain Unix sockets, each a small script
/// that prints one JSON object.
enum NbdPressureClients {
    /// The interpreter that has libnbd's `nbd` module (python3-libnbd).
    static let python = "/usr/bin/python3"

    /// argv: URI, COUNT, SIZE, REFERENCE. Queues COUNT reads of SIZE bytes at once (libnbd
    /// pipelines them on one connection), then waits for every reply; each read is compared
    /// with the same bytes of the raw REFERENCE file.
    static let pipelinedReads = """
    import nbd, sys, json
    uri, n, size, ref = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    h = nbd.NBD(); h.connect_uri(uri)
    span = h.get_size() - size
    offs = [(i * 7919 * size) % span // 4096 * 4096 for i in range(n)]
    bufs = [nbd.Buffer(size) for _ in range(n)]
    cookies = [h.aio_pread(bufs[i], offs[i]) for i in range(n)]
    while h.aio_in_flight() > 0:
        h.poll(-1)
    bad = 0
    with open(ref, 'rb') as f:
        for i in range(n):
            f.seek(offs[i])
            if bufs[i].to_bytearray() != f.read(size): bad += 1
    print(json.dumps({"answered": sum(1 for c in cookies if h.aio_command_completed(c)), "mismatched": bad}))
    """

    /// argv: URI. Keeps 256 reads of 1 MiB in flight for ever; prints "running" once the
    /// first 256 have been answered.
    static let endlessDeepReads = """
    import nbd, sys
    h = nbd.NBD(); h.connect_uri(sys.argv[1])
    span = h.get_size() - (1 << 20)
    bufs = [nbd.Buffer(1 << 20) for _ in range(256)]
    done, i, told = 0, 0, False
    def cb(*args):
        global done
        done += 1
        return 1
    for b in bufs:
        h.aio_pread(b, (i * 104729 << 12) % span, completion=cb); i += 1
    while True:
        h.poll(-1)
        while h.aio_in_flight() < 256:
            h.aio_pread(bufs[i % 256], (i * 104729 << 12) % span, completion=cb); i += 1
        if done >= 256 and not told:
            print("running", flush=True); told = True
    """

    /// argv: URI, COUNT, REFERENCE. Opens COUNT connections one after another (keeping
    /// them), then reads 4 KiB on each and compares with REFERENCE. A connection that fails
    /// counts as refused; a read that fails or differs after a successful connect counts as
    /// failed.
    static let manyConnections = """
    import nbd, sys, json
    uri, n, ref = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    hs, refused, failed, errors = [], 0, 0, []
    for i in range(n):
        h = nbd.NBD()
        try:
            h.connect_uri(uri); hs.append(h)
        except nbd.Error as e:
            refused += 1
    want = open(ref, 'rb').read(4096)
    for h in hs:
        try:
            if h.pread(4096, 0) != want: failed += 1; errors.append("mismatch")
        except nbd.Error as e:
            failed += 1; errors.append(str(e))
    print(json.dumps({"connected": len(hs), "refused": refused, "failed": failed, "errors": errors[:3]}))
    """

    /// argv: SOCKET, COUNT. Starts COUNT non-blocking connects at once (a burst before the
    /// server can accept any), counts those the kernel refused (the listen backlog was
    /// full), then waits up to 120 s for the 18-byte greeting on every accepted one.
    static let connectBurst = """
    import socket, sys, json, select, time
    path, n = sys.argv[1], int(sys.argv[2])
    socks, lost = [], 0
    for i in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.setblocking(False)
        try:
            s.connect(path); socks.append(s)
        except (BlockingIOError, ConnectionRefusedError, FileNotFoundError):
            lost += 1; s.close()
    got = {s: b"" for s in socks}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(len(v) < 18 for v in got.values()):
        r, _, _ = select.select([s for s in socks if len(got[s]) < 18], [], [], 1)
        for s in r:
            d = s.recv(18 - len(got[s]))
            if not d: got[s] = b"x" * 99
            else: got[s] += d
    greeted = sum(1 for v in got.values() if len(v) == 18 and v.startswith(b"NBDMAGIC"))
    print(json.dumps({"lost": lost, "greeted": greeted}))
    """

    /// argv: URI, COUNT. Connects COUNT times one after another, reads 1 MiB and
    /// disconnects each time.
    static let shortClients = """
    import nbd, sys, json
    for i in range(int(sys.argv[2])):
        h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pread(1 << 20, 0); h.shutdown(); del h
    print(json.dumps({"clients": int(sys.argv[2])}))
    """

    /// Resident memory of process `pid` in KiB (VmRSS), or -1.
    static func rssKiB(_ pid: pid_t) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return -1 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
    }

    /// Runs a script with `arguments` and parses the JSON object on its last output line;
    /// fails when it does not finish within `timeout` seconds (a stalled connection).
    static func run(_ script: String, _ arguments: [String], dir: String, timeout: Double = Progress.defaultTimeout,
                    environment: [String: String]? = nil) throws -> [String: Any] {
        let tag = UUID().uuidString.prefix(8)
        let out = dir + "/py-\(tag).out", err = dir + "/py-\(tag).err"
        let p = try BackgroundProcess(python, ["-c", script] + arguments, stdoutPath: out, stderrPath: err, environment: environment)
        let finished = Progress.wait(timeout: timeout, interval: 0.02) { p.hasExited }
        if !finished { p.kill(SIGKILL); p.wait() }
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let errText = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        guard finished else { throw TestFailure("client did not finish within \(Int(timeout)) s (stalled): \(errText)") }
        guard p.wait() == 0, let line = text.split(separator: "\n").last,
              let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestFailure("client failed: \(text) \(errText)")
        }
        return obj
    }

    /// Runs fio with `arguments` plus JSON output; returns the first job's report. Fails when
    /// fio does not finish within `timeout` seconds (the deep-queue stall) or reports an error.
    static func fio(_ arguments: [String], dir: String, timeout: Double = Progress.defaultTimeout) throws -> [String: Any] {
        let tag = UUID().uuidString.prefix(8)
        let json = dir + "/fio-\(tag).json", err = dir + "/fio-\(tag).err"
        let p = try BackgroundProcess("fio", arguments + ["--output-format=json", "--output=\(json)"], stderrPath: err)
        let finished = Progress.wait(timeout: timeout, interval: 0.02) { p.hasExited }
        if !finished { p.kill(SIGKILL); p.wait() }
        let errText = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        guard finished else { throw TestFailure("fio \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s (stalled)") }
        guard p.wait() == 0, let report = try JSONSerialization.jsonObject(with: TestSupport.readFile(json)) as? [String: Any],
              let job = (report["jobs"] as? [[String: Any]])?.first else {
            throw TestFailure("fio failed: \(errText)")
        }
        return job
    }

    /// Threads of process `pid` (entries of /proc/PID/task).
    static func threads(_ pid: pid_t) -> Int { entries("/proc/\(pid)/task") }
    /// Open descriptors of process `pid` (entries of /proc/PID/fd).
    static func descriptors(_ pid: pid_t) -> Int { entries("/proc/\(pid)/fd") }

    private static func entries(_ path: String) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: path).count) ?? -1
    }
}

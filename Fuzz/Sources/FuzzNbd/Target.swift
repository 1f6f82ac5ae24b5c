import BlockCore
import BlockServe
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif

/// nbd: the input is everything a client sends: the handshake (flags, options) and the
/// requests, fed over a socketpair to one server session on a writable 4 MiB RAW image in
/// /dev/shm (made once). One long-lived thread drains the replies. The property: the session ends by
/// itself (EOF, a protocol error or NBD_CMD_DISC) without a trap, and the image is still open
/// and readable afterwards. Request parsing is also run directly on every 28-byte window.
private let export: NbdExport = {
    let path = "/dev/shm/blockscope-fuzz-nbd-\(getpid()).raw"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
    if fd < 0 { violation("cannot create \(path)") }
    _ = ftruncate(fd, 4 << 20)
    close(fd)
    var o = OpenOptions(writable: true)
    o.ignoreLocks = true
    guard let disk = try? openDisk(path, options: o) else { violation("cannot open \(path)") }
    unlink(path)   // the open descriptor keeps it
    return NbdExport(disk: disk, maximumPayload: 1 << 20)
}()

/// Discards everything the server writes to a session's socket until EOF, on one thread
/// that lives as long as the process and serves every input in turn (a thread per input
/// was most of this target's system time under ASan: stacks mapped and unmapped each time).
private final class Drain: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var fd: Int32 = -1
    private var busy = false

    static let shared: Drain = {
        let d = Drain()
        var th = pthread_t()
        let r = pthread_create(&th, nil, { p in
            Unmanaged<Drain>.fromOpaque(p!).takeUnretainedValue().loop()
            return nil
        }, Unmanaged.passRetained(d).toOpaque())
        if r != 0 { violation("cannot start the drain thread: \(r)") }
        return d
    }()

    private init() {
        pthread_mutex_init(lock, nil)
        pthread_cond_init(changed, nil)
    }

    private func loop() {
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
        while true {
            pthread_mutex_lock(lock)
            while !busy { pthread_cond_wait(changed, lock) }
            let f = fd
            pthread_mutex_unlock(lock)
            while read(f, buf, 1 << 16) > 0 {}
            pthread_mutex_lock(lock)
            busy = false
            pthread_cond_broadcast(changed)
            pthread_mutex_unlock(lock)
        }
    }

    /// Starts draining `f` (until EOF).
    func start(_ f: Int32) {
        pthread_mutex_lock(lock)
        fd = f
        busy = true
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(lock)
    }

    /// Waits until the socket given to ``start(_:)`` reached EOF.
    func wait() {
        pthread_mutex_lock(lock)
        while busy { pthread_cond_wait(changed, lock) }
        pthread_mutex_unlock(lock)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBytes(data, size)
    if bytes.count > 1 << 16 { return 0 }
    // The pure parsers, on every request-sized window.
    var i = 0
    while i + 28 <= bytes.count {
        _ = NbdParser.request(Array(bytes[i..<(i + 28)]))
        i += 28
    }
    _ = NbdParser.optionHeader(bytes)
    _ = NbdParser.infoRequest(bytes)
    _ = NbdParser.metaContextRequest(bytes)
    // A whole session.
    var sv: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &sv) == 0 else { violation("socketpair failed") }
    var big: Int32 = 1 << 20
    _ = setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, socklen_t(MemoryLayout<Int32>.size))
    // The client's bytes, then end of stream; the replies are drained meanwhile.
    Drain.shared.start(sv[1])
    _ = bytes.withUnsafeBytes { send(sv[1], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    shutdown(sv[1], Int32(SHUT_WR))
    NbdServer.serveOne(fd: sv[0], export: export)
    Drain.shared.wait()
    close(sv[1])
    // The export still serves reads.
    var probe = [UInt8](repeating: 0, count: 512)
    let ok = probe.withUnsafeMutableBytes { (try? export.disk.read(into: $0, at: 0)) != nil }
    if !ok { violation("the image is not readable after a session") }
    return 0
}

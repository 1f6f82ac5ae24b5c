import BlockCore
import BlockServe
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif

/// nbd: the input is everything a client sends: the handshake (flags, options) and the
/// requests, fed over a socketpair to one server session on a writable 4 MiB RAW image in
/// /dev/shm (made once). A thread drains the replies. The property: the session ends by
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

/// Discards everything the server writes to `fd` until EOF, on its own thread.
private final class Drain: @unchecked Sendable {
    let fd: Int32
    let done = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init(fd: Int32) {
        self.fd = fd
        pthread_mutex_init(done, nil)
        pthread_mutex_lock(done)
    }
    func run() {
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while buf.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
        pthread_mutex_unlock(done)
    }
    func wait() { pthread_mutex_lock(done); pthread_mutex_unlock(done) }
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
    let drain = Drain(fd: sv[1])
    var th = pthread_t()
    let box = Unmanaged.passRetained(drain)
    pthread_create(&th, nil, { p in
        let d = Unmanaged<Drain>.fromOpaque(p!).takeRetainedValue()
        d.run()
        return nil
    }, box.toOpaque())
    // The client's bytes, then end of stream.
    _ = bytes.withUnsafeBytes { send(sv[1], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    shutdown(sv[1], Int32(SHUT_WR))
    NbdServer.serveOne(fd: sv[0], export: export)
    pthread_join(th, nil)
    drain.wait()
    close(sv[1])
    // The export still serves reads.
    var probe = [UInt8](repeating: 0, count: 512)
    let ok = probe.withUnsafeMutableBytes { (try? export.disk.read(into: $0, at: 0)) != nil }
    if !ok { violation("the image is not readable after a session") }
    return 0
}

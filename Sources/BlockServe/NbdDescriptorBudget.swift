#if canImport(Glibc)
import Glibc
#endif

/// Decides whether the process has file descriptors left for one more client, and keeps a
/// spare descriptor to turn away a client when `accept` itself fails with EMFILE.
///
/// A client holds its socket, its queue's io_uring and eventfd, and for a moment a flush's
/// own ring (the QCOW2 and VHDX flush paths make one): ``perClient`` descriptors. A new
/// client is taken only while the descriptors in use, or the baseline measured at
/// ``prepare()`` plus ``perClient`` for each live client (whose queue may not exist yet),
/// leave room for it and ``reserve`` more. Without this check, at `ulimit -n 128` the
/// clients past the thirtieth or so finished their handshake and then were dropped or saw
/// their requests fail (EIO, ENOTCONN).
/// Used by the accept thread only.
struct NbdDescriptorBudget {
    /// Descriptors one client may hold at once.
    static let perClient = 4
    /// Descriptors kept free for the server's own needs (logs, a flush ring, the spare).
    static let reserve = 8
    /// The soft RLIMIT_NOFILE (Int.max when unlimited).
    private(set) var limit = Int.max
    /// Descriptors open when the server started listening.
    private(set) var baseline = 0
    /// An open descriptor of /dev/null, closed to make room for one `accept`; -1 if none.
    private var spare: Int32 = -1

    /// Reads the limit, counts the descriptors in use and opens the spare.
    mutating func prepare() {
        var rl = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 && rl.rlim_cur < rlim_t(Int32.max) {
            limit = Int(rl.rlim_cur)
        }
        openSpare()
        baseline = Self.openDescriptors() ?? 0
    }

    private mutating func openSpare() {
        if spare < 0 { spare = open("/dev/null", O_RDONLY | O_CLOEXEC) }
    }

    /// Whether one more client fits beside `live` connected ones.
    func hasRoom(live: Int) -> Bool {
        if limit == Int.max { return true }
        let inUse = max(Self.openDescriptors() ?? 0, baseline + live * Self.perClient)
        return inUse + Self.perClient + Self.reserve <= limit
    }

    /// After `accept` failed with EMFILE/ENFILE: frees the spare, accepts and closes one
    /// pending connection, and opens the spare again. Returns whether a client was turned away.
    mutating func acceptWithSpare(_ listenFD: Int32) -> Bool {
        guard spare >= 0 else { return false }
        close(spare)
        spare = -1
        let fd = accept(listenFD, nil, nil)
        if fd >= 0 { close(fd) }
        openSpare()
        return fd >= 0
    }

    /// "N of LIMIT descriptors in use, L clients" for a log line.
    func describe(live: Int) -> String {
        let inUse = Self.openDescriptors().map(String.init) ?? "?"
        let lim = limit == Int.max ? "unlimited" : String(limit)
        return "\(inUse) of \(lim) descriptors in use, \(live) client\(live == 1 ? "" : "s") connected; raise ulimit -n to serve more"
    }

    /// Descriptors open in this process (entries of /proc/self/fd), or nil without /proc.
    static func openDescriptors() -> Int? {
        guard let dir = opendir("/proc/self/fd") else { return nil }
        defer { closedir(dir) }
        var n = 0
        while let e = readdir(dir) {
            let name = e.pointee.d_name.0
            if name != 0x2e { n += 1 } // skip "." and ".."
        }
        return n - 1 // the directory stream's own descriptor
    }
}

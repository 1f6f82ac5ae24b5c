import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// Opens listening sockets and names peers (the C calls `socket`, `bind`, `listen`,
/// `getaddrinfo`, `inet_ntop`).
enum NbdListener {
    /// Pending connections the kernel queues before `accept`: SOMAXCONN (the kernel caps it
    /// at net.core.somaxconn, 4096 on current kernels). With 64, a burst of 200 non-blocking
    /// connects lost 77-81 (refused with EAGAIN); qemu-nbd loses none.
    static let backlog = SOMAXCONN

    static func open(_ address: NbdListenAddress) throws(BlockError) -> Int32 {
        switch address {
        case let .unix(path): return try unix(path)
        case let .tcp(host, port): return try tcp(host, port)
        }
    }

    private static func unix(_ path: String) throws(BlockError) -> Int32 {
        var probe = sockaddr_un()
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: probe.sun_path) else {
            throw BlockError(.invalidArgument, "socket path is too long (\(bytes.count) bytes; at most 107)", path: path, operation: "bind")
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw BlockError(.invalidArgument, "exists and is not a socket; refusing to replace it", path: path, operation: "bind")
            }
            unlink(path)
        }
        // Bound under a temporary name and renamed once listening, so a client that waits
        // for the path to appear never finds a socket that refuses connections (bind makes
        // the file, listen makes it accept). A path too long for the suffix binds directly.
        let staging = path + ".binding-\(getpid())"
        let bindPath = staging.utf8.count < MemoryLayout.size(ofValue: probe.sun_path) ? staging : path
        withUnsafeMutableBytes(of: &probe.sun_path) { p in
            for (i, b) in bindPath.utf8.enumerated() { p[i] = b }
            p[bindPath.utf8.count] = 0
        }
        probe.sun_family = sa_family_t(AF_UNIX)
        if bindPath != path { unlink(bindPath) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw BlockError.system(errno, "socket", path: path) }
        let r = withUnsafePointer(to: &probe) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if r != 0 { let e = errno; close(fd); throw BlockError.system(e, "bind", path: path) }
        if Glibc.listen(fd, backlog) != 0 {
            let e = errno; close(fd); unlink(bindPath); throw BlockError.system(e, "listen", path: path)
        }
        if bindPath != path && rename(bindPath, path) != 0 {
            let e = errno; close(fd); unlink(bindPath); throw BlockError.system(e, "rename the listening socket into place", path: path)
        }
        return fd
    }

    private static func tcp(_ host: String, _ port: Int) throws(BlockError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var res: UnsafeMutablePointer<addrinfo>? = nil
        let g = getaddrinfo(host, String(port), &hints, &res)
        guard g == 0, let first = res else {
            throw BlockError(.invalidArgument, "cannot resolve bind address \(host): \(String(cString: gai_strerror(g)))", operation: "bind")
        }
        defer { freeaddrinfo(res) }
        var lastErr: Int32 = 0
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), a.pointee.ai_protocol)
            if fd < 0 { lastErr = errno; continue }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if bind(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 && Glibc.listen(fd, backlog) == 0 { return fd }
            lastErr = errno
            close(fd)
        }
        throw BlockError.system(lastErr, "bind \(host):\(port)")
    }

    private static func cstr(_ b: [CChar]) -> String {
        String(decoding: b.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// "unix" or "ADDR:PORT" for a log line.
    static func describePeer(_ storage: sockaddr_storage, _ address: NbdListenAddress) -> String {
        if case .unix = address { return "unix socket" }
        var s = storage
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(s.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &s) { p in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a -> String in
                    var addr = a.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count))
                    return cstr(buf) + ":\(UInt16(bigEndian: a.pointee.sin_port))"
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &s) { p in
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a -> String in
                    var addr = a.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count))
                    return "[" + cstr(buf) + "]:\(UInt16(bigEndian: a.pointee.sin6_port))"
                }
            }
        default:
            return "peer"
        }
    }
}

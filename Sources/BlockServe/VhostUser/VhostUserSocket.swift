#if canImport(Glibc)
import Glibc
#endif

/// The connected vhost-user socket of one front end: messages with the file descriptors
/// that come with them (SCM_RIGHTS), replies with `send`. Blocking, with a 10 s limit on
/// each receive and send once a message has begun, so a front end that stops mid-message
/// ends its connection rather than holding the thread. The corresponding C calls are
/// `recvmsg` and `send`.
final class VhostUserSocket {
    let fd: Int32

    init(fd: Int32) {
        self.fd = fd
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Reads one message header (12 bytes) and the descriptors sent with it. Returns nil on a
    /// clean end of the connection before any byte; throws a sentence on a partial header,
    /// a timeout or an error. At most ``VhostUser/maxFds`` descriptors are kept; the rest
    /// are closed. Descriptors come marked close-on-exec.
    func receiveHeader(into header: UnsafeMutableRawBufferPointer) throws(VhostUserParseError) -> [Int32]? {
        var fds: [Int32] = []
        let controlSize = 256
        let control = UnsafeMutableRawPointer.allocate(byteCount: controlSize, alignment: 8)
        defer { control.deallocate() }
        var iov = iovec(iov_base: header.baseAddress, iov_len: header.count)
        var msg = msghdr()
        let n: Int = withUnsafeMutablePointer(to: &iov) { iovp in
            msg.msg_iov = iovp
            msg.msg_iovlen = 1
            msg.msg_control = control
            msg.msg_controllen = controlSize
            while true {
                let r = recvmsg(fd, &msg, Int32(MSG_CMSG_CLOEXEC))
                if r < 0 && errno == EINTR { continue }
                return r
            }
        }
        if n < 0 { throw VhostUserParseError("recvmsg: \(String(cString: strerror(errno)))") }
        // Descriptors: walk the control messages (CMSG_FIRSTHDR/NXTHDR by hand).
        var off = 0
        let hdrSize = MemoryLayout<cmsghdr>.size
        while off + hdrSize <= Int(msg.msg_controllen) {
            let c = control.load(fromByteOffset: off, as: cmsghdr.self)
            if c.cmsg_len < hdrSize || off + Int(c.cmsg_len) > Int(msg.msg_controllen) { break }
            if c.cmsg_level == SOL_SOCKET && c.cmsg_type == SCM_RIGHTS {
                let count = (Int(c.cmsg_len) - hdrSize) / 4
                for i in 0..<count {
                    let f = control.loadUnaligned(fromByteOffset: off + hdrSize + 4 * i, as: Int32.self)
                    if fds.count < VhostUser.maxFds { fds.append(f) } else { Glibc.close(f) }
                }
            }
            off += (Int(c.cmsg_len) + 7) & ~7
        }
        if n == 0 {
            for f in fds { Glibc.close(f) }
            return nil
        }
        if msg.msg_flags & Int32(MSG_CTRUNC) != 0 {
            for f in fds { Glibc.close(f) }
            throw VhostUserParseError("a message carried more descriptors than fit (control data truncated)")
        }
        if n < header.count {
            do throws(VhostUserParseError) { try receiveExact(into: UnsafeMutableRawBufferPointer(rebasing: header[n...])) } catch {
                for f in fds { Glibc.close(f) }
                throw error
            }
        }
        return fds
    }

    /// Reads exactly `buffer.count` bytes (a payload).
    func receiveExact(into buffer: UnsafeMutableRawBufferPointer) throws(VhostUserParseError) {
        var got = 0
        while got < buffer.count {
            let r = recv(fd, buffer.baseAddress! + got, buffer.count - got, 0)
            if r > 0 { got += r; continue }
            if r == 0 { throw VhostUserParseError("the front end closed the connection mid-message") }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw VhostUserParseError("the front end sent half a message and then nothing for 10 s") }
            throw VhostUserParseError("recv: \(String(cString: strerror(errno)))")
        }
    }

    /// Sends `bytes` (a reply, at most a few dozen bytes) with descriptor `fd` attached
    /// (SCM_RIGHTS, the corresponding C call is `sendmsg`); the rest, if the kernel takes
    /// only part, follows without it. The descriptor stays the caller's.
    func send(_ bytes: [UInt8], fd attached: Int32) throws(VhostUserParseError) {
        let hdr = MemoryLayout<cmsghdr>.size
        let space = hdr + 8
        let control = UnsafeMutableRawPointer.allocate(byteCount: space, alignment: 8)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: space)
        var c = cmsghdr()
        c.cmsg_len = hdr + 4
        c.cmsg_level = SOL_SOCKET
        c.cmsg_type = Int32(SCM_RIGHTS)
        control.storeBytes(of: c, as: cmsghdr.self)
        control.storeBytes(of: attached, toByteOffset: hdr, as: Int32.self)
        var copy = bytes
        let n: Int = copy.withUnsafeMutableBytes { b in
            var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
            return withUnsafeMutablePointer(to: &iov) { iovp in
                var msg = msghdr()
                msg.msg_iov = iovp
                msg.msg_iovlen = 1
                msg.msg_control = control
                msg.msg_controllen = space
                while true {
                    let r = sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
                    if r < 0 && errno == EINTR { continue }
                    return r
                }
            }
        }
        if n <= 0 { throw VhostUserParseError("sendmsg: \(n < 0 ? String(cString: strerror(errno)) : "nothing sent")") }
        if n < bytes.count { try send(Array(bytes[n...])) }
    }

    /// Sends `bytes` entirely.
    func send(_ bytes: [UInt8]) throws(VhostUserParseError) {
        var sent = 0
        while sent < bytes.count {
            let r = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if r > 0 { sent += r; continue }
            if r < 0 && errno == EINTR { continue }
            throw VhostUserParseError("send: \(r < 0 ? String(cString: strerror(errno)) : "nothing sent")")
        }
    }
}

import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// Why a connection ended early: a sentence for the server's log line.
package struct NbdConnectionError: Error, Sendable, CustomStringConvertible {
    /// What happened, e.g. "peer closed the connection mid-request".
    package var description: String
    /// Creates an error with a log sentence.
    package init(_ description: String) { self.description = description }
}

/// One connected client socket (Unix or TCP). All calls come from the connection's own thread.
///
/// The descriptor is non-blocking; the blocking helpers wait with `poll` and also return when
/// `stopFD` (the server's shutdown pipe) becomes readable. Writes use `MSG_NOSIGNAL`, so a
/// vanished client is an error, never a SIGPIPE. The corresponding C calls are `recv`,
/// `send`, `sendmsg` and `poll`.
package final class NbdSocket {
    /// The connected descriptor; closed by ``close()``.
    package let fd: Int32
    /// The server's shutdown pipe (read end); -1 for none.
    package let stopFD: Int32
    /// How long the whole handshake may take from accept, in milliseconds: 10 s, as
    /// qemu-nbd's default handshake limit, so a client trickling a byte now and then cannot
    /// hold a thread and a descriptor for ever.
    package var handshakeLimitMs: Int = 10_000
    /// When the socket was wrapped (monotonic nanoseconds): the handshake limit counts from here.
    private let openedAt = monotonicNanos()
    private var closed = false

    /// Wraps an accepted descriptor and makes it non-blocking.
    package init(fd: Int32, stopFD: Int32) {
        self.fd = fd
        self.stopFD = stopFD
        let fl = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, fl | O_NONBLOCK)
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Whether the server asked every connection to stop.
    package var stopRequested: Bool {
        if stopFD < 0 { return false }
        var p = pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) > 0
    }

    /// Reads exactly `count` bytes (handshake): fails when the peer closes, the server stops
    /// or the handshake limit (counted from accept, not per read) passes.
    package func readExact(_ count: Int) throws(NbdConnectionError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { b in Syscall.retrying { recv(fd, b.baseAddress! + got, count - got, 0) } }
            if n > 0 { got += n; continue }
            if n == 0 { throw NbdConnectionError(got == 0 ? "peer closed the connection" : "peer closed the connection mid-message") }
            let e = errno
            if e != EAGAIN && e != EWOULDBLOCK { throw NbdConnectionError("recv: \(String(cString: strerror(e)))") }
            let elapsedMs = Int((monotonicNanos() &- openedAt) / 1_000_000)
            if elapsedMs >= handshakeLimitMs {
                throw NbdConnectionError("handshake not finished within \(handshakeLimitMs / 1000) s")
            }
            try waitReadable(timeoutMs: Int32(handshakeLimitMs - elapsedMs))
        }
        return out
    }

    /// Waits until the socket is readable, `timeoutMs` passes or a signal arrives; throws on
    /// a poll failure or server stop.
    func waitReadable(timeoutMs: Int32) throws(NbdConnectionError) {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
        let r = Syscall.poll(&fds, stopFD >= 0 ? 2 : 1, timeoutMs)
        // Timed out or interrupted: readExact's loop measures the handshake limit and says so.
        if r == 0 { return }
        if r < 0 { throw NbdConnectionError("poll: \(String(cString: strerror(errno)))") }
        if stopFD >= 0 && fds[1].revents != 0 && fds[0].revents == 0 { throw NbdConnectionError("server shutting down") }
    }

    /// Reads what is available (never blocks): bytes read, 0 when the peer closed, -1 when
    /// nothing is ready. Throws on a socket error.
    package func readAvailable(into p: UnsafeMutableRawPointer, count: Int) throws(NbdConnectionError) -> Int {
        while true {
            let n = Syscall.retrying { recv(fd, p, count, 0) }
            if n >= 0 { return n }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK { return -1 }
            throw NbdConnectionError("recv: \(String(cString: strerror(e)))")
        }
    }

    /// Sends all of `bytes`, waiting for room when the socket buffer is full.
    package func writeAll(_ bytes: [UInt8]) throws(NbdConnectionError) {
        var copy = bytes
        let n = copy.count
        var failure: NbdConnectionError? = nil
        copy.withUnsafeMutableBytes { b in
            var iov = iovec(iov_base: b.baseAddress, iov_len: n)
            do throws(NbdConnectionError) { try writeAll(&iov, count: 1) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Sends every byte described by `iov[0..<count]` (the array is consumed as it goes),
    /// waiting for room when the socket buffer is full.
    package func writeAll(_ iov: UnsafeMutablePointer<iovec>, count: Int) throws(NbdConnectionError) {
        var first = 0
        while first < count {
            if iov[first].iov_len == 0 { first += 1; continue }
            var msg = msghdr()
            msg.msg_iov = iov + first
            msg.msg_iovlen = min(count - first, 1024)
            let n = Syscall.retrying { sendmsg(fd, &msg, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK {
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    let r = Syscall.poll(&p, 1, 60_000)
                    if r == 0 { throw NbdConnectionError("peer stopped reading replies for 60 s") }
                    continue
                }
                throw NbdConnectionError("send: \(String(cString: strerror(e)))")
            }
            var left = n
            while left > 0 && first < count {
                let l = iov[first].iov_len
                if left >= l { left -= l; iov[first].iov_len = 0; first += 1 } else {
                    iov[first].iov_base = iov[first].iov_base! + left
                    iov[first].iov_len = l - left
                    left = 0
                }
            }
        }
    }

    /// Closes the descriptor (once).
    package func close() {
        if closed { return }
        closed = true
        _ = Glibc.close(fd)
    }

    deinit { close() }
}

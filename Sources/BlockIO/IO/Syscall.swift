#if canImport(Glibc)
import Glibc
#endif

/// The one place blockscope decides what a signal interrupting a system call (EINTR) means,
/// as swift-system's `valueOrErrno(retryOnInterrupt:)` does: a call that failed only because
/// a signal arrived is made again; `poll` reports an interruption as "no event", so the loop
/// around it looks at its stop flags and polls again. Every C call that may block goes
/// through here (`SystemFile`, `ImageLock`, the NBD sockets, the CLI's stdout writers).
package enum Syscall {
    /// Calls `body`, a C function that returns -1 and sets `errno` on failure, again while it
    /// fails with EINTR; returns its last result, with `errno` as that call left it.
    @inline(__always)
    package static func retrying<T: BinaryInteger>(_ body: () -> T) -> T {
        while true {
            let r = body()
            if r != -1 || errno != EINTR { return r }
        }
    }

    /// Calls `body`, a liburing function that returns `-errno` on failure, again while it
    /// returns `-EINTR` or `alsoRetry` says so (`-EAGAIN`, `-EBUSY` for a submit); returns its
    /// last result.
    @inline(__always)
    package static func retryingNegated(alsoRetry: (Int32) -> Bool = { _ in false }, _ body: () -> Int32) -> Int32 {
        while true {
            let r = body()
            if r != -EINTR && !alsoRetry(r) { return r }
        }
    }

    /// `poll(2)` over `count` descriptors: the number ready, 0 on timeout or when a signal
    /// interrupted the wait (the caller's loop polls again after looking at its flags), -1
    /// with `errno` set on any other failure.
    @inline(__always)
    package static func poll(_ fds: UnsafeMutablePointer<pollfd>, _ count: Int, _ timeoutMs: Int32) -> Int32 {
        let r = Glibc.poll(fds, nfds_t(count), timeoutMs)
        return r < 0 && errno == EINTR ? 0 : r
    }
}

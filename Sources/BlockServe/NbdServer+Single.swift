import BlockIO
#if canImport(Glibc)
import Glibc
#endif

extension NbdServer {
    /// Serves one client on an already connected stream socket `fd`, on the calling thread,
    /// until the client disconnects or breaks the protocol: the handshake, then the
    /// transmission loop with a queue of its own, exactly as a client accepted by a running
    /// server. `log` receives the connect and disconnect lines. The socket is closed on return.
    ///
    /// For the NBD fuzz target and tests that drive a session over a `socketpair`; nothing
    /// here stops it early (there is no server shutdown pipe).
    public static func serveOne(fd: Int32, export: NbdExport, queueID: Int = 0, peer: String = "socketpair",
                                log: @escaping @Sendable (String) -> Void = { _ in }) {
        NbdConnection(id: 0, queueID: queueID, peer: peer, fd: fd, stopFD: -1, export: export, log: log, onEnd: {}).run()
    }
}

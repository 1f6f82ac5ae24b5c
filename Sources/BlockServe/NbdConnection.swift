import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// One client from accept to close, run on its own thread: the handshake, then the
/// transmission loop with the connection's own queue, and one log line at each end.
final class NbdConnection: @unchecked Sendable {
    let id: Int
    let queueID: Int
    let peer: String
    let onEnd: @Sendable () -> Void
    let socket: NbdSocket
    let export: NbdExport
    let log: @Sendable (String) -> Void

    init(id: Int, queueID: Int, peer: String, fd: Int32, stopFD: Int32, export: NbdExport,
         log: @escaping @Sendable (String) -> Void, onEnd: @escaping @Sendable () -> Void) {
        self.id = id
        self.queueID = queueID
        self.onEnd = onEnd
        self.peer = peer
        self.socket = NbdSocket(fd: fd, stopFD: stopFD)
        self.export = export
        self.log = log
    }

    /// The client's name in log lines.
    var name: String { "client \(id) (\(peer))" }

    /// Runs the connection to its end and closes the socket.
    func run() {
        export.stats.clients.add(1, ordering: .relaxed)
        defer {
            socket.close()
            export.stats.clients.subtract(1, ordering: .relaxed)
            onEnd()
        }
        log("\(name) connected (queue \(queueID))")
        let negotiated: NbdNegotiated
        do {
            switch try NbdHandshake(socket: socket, export: export).run() {
            case .aborted:
                log("\(name) disconnected: ended the handshake with NBD_OPT_ABORT")
                return
            case let .transmission(n):
                negotiated = n
            }
        } catch {
            log("\(name) disconnected: handshake failed: \(error.description)")
            return
        }
        let t = NbdTransmission(socket: socket, export: export, negotiated: negotiated, queueID: queueID)
        t.client = "nbd \(id) \(peer == "unix socket" ? "unix" : peer)"
        do {
            let reason = try t.run()
            log("\(name) disconnected: \(reason) (\(t.answered) requests)")
        } catch {
            log("\(name) disconnected: its queue failed: \(error.description)")
        }
    }
}

import ArgumentParser
import BlockCore
import BlockScopeUI
import BlockServe
import Foundation
import Synchronization

/// `tui --serve unix:PATH|tcp:PORT|vhost-user:PATH[,queues=N]`: an NBD or vhost-user-blk
/// server on the TUI's open disk, run on a background thread, each client (NBD) or
/// virtqueue (vhost-user, `vhost vqN`, tagged by descriptor head) a queue in the In-flight
/// and Completions views.
final class TuiServer: @unchecked Sendable {
    /// Queue IDs for NBD clients and virtqueues: above the TUI's own command and job queues,
    /// inside the app's event stream (queue IDs 0..<16).
    static let queueIDs = 8..<16

    /// The NBD server, or nil when serving vhost-user.
    let server: NbdServer?
    /// The vhost-user-blk server, or nil when serving NBD.
    let vhost: VhostUserServer?
    /// Where clients connect, for the log.
    let addressText: String
    /// Signalled when the accept thread has returned (``acceptEnded``).
    private let done = ConditionLock()
    private var acceptEnded = false
    private let lines: LineBox
    private let stopped = Mutex<[String]?>(nil)

    /// Parses `unix:PATH` or `tcp:PORT` (`tcp:ADDR:PORT` to bind elsewhere than 127.0.0.1).
    static func address(_ spec: String) throws(BlockError) -> NbdListenAddress {
        if spec.hasPrefix("unix:"), spec.count > 5 { return .unix(path: String(spec.dropFirst(5))) }
        if spec.hasPrefix("tcp:") {
            let rest = String(spec.dropFirst(4))
            if let port = Int(rest), (1...65535).contains(port) { return .tcp(host: "127.0.0.1", port: port) }
            if let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) {
                return .tcp(host: String(rest[..<colon]), port: port)
            }
        }
        throw BlockError(.invalidArgument, "--serve wants unix:PATH, tcp:PORT (tcp:ADDR:PORT to bind another address) or vhost-user:PATH[,queues=N], not \(spec)")
    }

    /// Listens on `spec` for `disk`; client events go to `sink` (the step gate) and each
    /// client's queue joins `registry` (as `nbd ID PEER`, requests tagged with their cookie).
    /// Log lines are kept (the terminal belongs to the TUI) and returned by ``stop()``.
    init(spec: String, disk: any DiskFile, sink: any IoEventSink, registry: InFlightRegistry) throws(BlockError) {
        let box = LineBox()
        lines = box
        if spec.hasPrefix("vhost-user:") {
            let (path, queues) = try Self.vhostSpec(String(spec.dropFirst(11)))
            let export = VhostUserBlkExport(disk: disk, queues: queues, eventSink: sink, inFlightRegistry: registry, queueIDBase: Self.queueIDs.lowerBound)
            let v = try VhostUserServer(export: export, path: path, log: { box.append($0) })
            try v.listen()
            vhost = v
            server = nil
            addressText = "vhost-user-blk (\(queues) queue\(queues == 1 ? "" : "s")) at \(path)"
            return
        }
        let export = NbdExport(disk: disk, eventSink: sink, inFlightRegistry: registry)
        let s = try NbdServer(export: export, address: try Self.address(spec), log: { box.append($0) })
        s.queueIDs = Self.queueIDs
        try s.listen()
        server = s
        vhost = nil
        addressText = s.address.description
    }

    /// Parses `PATH[,queues=N]` of `vhost-user:` (N from 1 to 8: the TUI's queue IDs).
    static func vhostSpec(_ rest: String) throws(BlockError) -> (String, Int) {
        var path = rest, queues = 1
        if let comma = rest.range(of: ",queues=", options: .backwards) {
            guard let n = Int(rest[comma.upperBound...]), (1...queueIDs.count).contains(n) else {
                throw BlockError(.invalidArgument, "--serve vhost-user:PATH,queues=N wants N from 1 to \(queueIDs.count), not \(rest[comma.upperBound...])")
            }
            path = String(rest[..<comma.lowerBound])
            queues = n
        }
        guard !path.isEmpty else { throw BlockError(.invalidArgument, "--serve vhost-user:PATH needs a socket path") }
        return (path, queues)
    }

    private func log(_ line: String) { lines.append(line) }

    /// Log lines from any thread, kept for later (at most 10,000).
    final class LineBox: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ l: String) { lines.withLock { if $0.count < 10_000 { $0.append(l) } } }
    }

    /// The server for `tui --serve SPEC`, started; a bad spec or an image without I/O is one
    /// line on stderr and exit status 1.
    static func start(spec: String, app: TUIApp) throws -> TuiServer {
        guard let disk = app.state.image.disk else {
            printError("blockscope: --serve needs an image blockscope can open for I/O")
            throw ExitCode(1)
        }
        let s = try reportingErrors { () throws(BlockError) in try TuiServer(spec: spec, disk: disk, sink: app.eventSink, registry: app.inFlightRegistry) }
        s.start()
        return s
    }

    /// Starts accepting on a background thread.
    func start() {
        let t = Thread { [self] in
            do throws(BlockError) {
                if let vhost { try vhost.run(handleSignals: false) } else { try server?.run(handleSignals: false) }
            } catch { log("serve: \(error.description)") }
            done.withLock { acceptEnded = true; done.broadcast() }
        }
        t.start()
        log("serving \(addressText)")
    }

    /// Stops accepting, drains the clients, waits for the accept thread and returns the
    /// log lines. Later calls (the TUI's close stops the server, the command asks again for
    /// the lines) return the same lines at once.
    func stop() -> [String] {
        stopped.withLock { (s: inout [String]?) -> [String] in
            if let s { return s }
            server?.stop()
            vhost?.stop()
            done.lock()
            while !acceptEnded { done.wait() }
            done.unlock()
            let l = lines.lines.withLock { $0 }
            s = l
            return l
        }
    }
}

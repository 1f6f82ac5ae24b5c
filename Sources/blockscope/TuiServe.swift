import ArgumentParser
import BlockCore
import BlockScopeUI
import BlockServe
import Foundation
import Synchronization

/// `tui --serve unix:PATH|tcp:PORT`: an NBD server on the TUI's open disk, run on a
/// background thread, each client a queue in the In-flight and Completions views.
final class TuiServer: @unchecked Sendable {
    /// Queue IDs for NBD clients: above the TUI's own command and job queues, inside the
    /// app's event stream (queue IDs 0..<16).
    static let queueIDs = 8..<16

    let server: NbdServer
    private let done = DispatchSemaphore(value: 0)
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
        throw BlockError(.invalidArgument, "--serve wants unix:PATH or tcp:PORT (tcp:ADDR:PORT to bind another address), not \(spec)")
    }

    /// Listens on `spec` for `disk`; client events go to `sink` (the step gate) and each
    /// client's queue joins `registry` (as `nbd ID PEER`, requests tagged with their cookie).
    /// Log lines are kept (the terminal belongs to the TUI) and returned by ``stop()``.
    init(spec: String, disk: any DiskFile, sink: any IoEventSink, registry: InFlightRegistry) throws(BlockError) {
        let export = NbdExport(disk: disk, eventSink: sink, inFlightRegistry: registry)
        let box = LineBox()
        lines = box
        server = try NbdServer(export: export, address: try Self.address(spec), log: { box.append($0) })
        server.queueIDs = Self.queueIDs
        try server.listen()
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
            do throws(BlockError) { try server.run(handleSignals: false) } catch { log("serve: \(error.description)") }
            done.signal()
        }
        t.start()
        log("serving \(server.address)")
    }

    /// Stops accepting, drains the clients, waits for the accept thread and returns the
    /// log lines. Later calls (the TUI's close stops the server, the command asks again for
    /// the lines) return the same lines at once.
    func stop() -> [String] {
        stopped.withLock { (s: inout [String]?) -> [String] in
            if let s { return s }
            server.stop()
            done.wait()
            let l = lines.lines.withLock { $0 }
            s = l
            return l
        }
    }
}

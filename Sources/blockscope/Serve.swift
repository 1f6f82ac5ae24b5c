import ArgumentParser
import BlockCore
import BlockServe
#if canImport(Glibc)
import Glibc
#endif

/// `blockscope serve IMAGE`: the image over NBD, each client a queue of the io_uring engine.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve",
        abstract: "Serve an image over NBD (Unix socket or TCP) through the io_uring engine.",
        discussion: """
        Any format blockscope opens (raw, qcow2 with backing chains, vhdx, vpc) is served read-only \
        unless --write is given; QEMU's image locks are honoured as by every other command. Give \
        exactly one of --socket PATH or --port N. TCP listens on 127.0.0.1 (this machine only) \
        unless --bind ADDR names another address: NBD has no authentication, so anyone who can \
        reach the port can read (and with --write, change) the image. Each client gets its own \
        io_uring queue on its own thread; replies may come out of order. SIGINT/SIGTERM stop \
        accepting, let in-flight requests finish, flush, close the image and exit 0.
        Clients: qemu-img/qemu-io nbd+unix:///?socket=PATH, qemu -drive file=nbd:unix:PATH, \
        nbdinfo, nbdcopy, fio --ioengine=nbd --uri=nbd+unix:///?socket=PATH.
        --vhost-user PATH serves a vhost-user-blk device to one VMM at a time instead (qemu \
        -device vhost-user-blk-pci with shared memory, cloud-hypervisor --disk vhost_user=true): \
        guest data moves by io_uring straight into and out of the guest's memory, one engine \
        queue per virtqueue (--queues N); the server stays up for the next VM when one exits.
        """)

    @Argument(help: "The image file.") var image: String
    @Option(name: [.customShort("f"), .long], help: "Image format; probed from the magic when omitted.")
    var format: ImageFormat?
    @Flag(help: "Accept writes, trims and write-zeroes (the image opens read-write).") var write = false
    @Option(help: "Listen on a Unix socket at this path.") var socket: String?
    @Option(help: "Listen on this TCP port (on 127.0.0.1 unless --bind is given).") var port: Int?
    @Option(name: .customLong("vhost-user"), help: "Serve a vhost-user-blk device on this Unix socket instead of NBD (one VMM at a time; guest memory must be shared).")
    var vhostUser: String?
    @Option(help: "Virtqueues offered with --vhost-user (1-64).") var queues: Int = 1
    @Option(help: "Address TCP listens on (default 127.0.0.1; 0.0.0.0 or :: exposes the image to the network).") var bind: String?
    @Option(name: .customLong("export-name"), help: "The export's name (\"\" also works, as the default export).") var exportName: String = ""
    @Option(help: "Page-cache use: writeback (buffered, qemu-nbd's default) or none (O_DIRECT; clients are told to align to 4 KiB).")
    var cache: ServeCacheMode = .writeback
    @Flag(help: "Print a line of IOPS, throughput and mean latency periodically.") var stats = false
    @Option(name: .customLong("stats-interval"), help: "Seconds between --stats lines.") var statsInterval: Double = 1

    func validate() throws {
        if vhostUser != nil {
            if socket != nil || port != nil || bind != nil { throw ValidationError("--vhost-user serves one socket; leave out --socket, --port and --bind") }
            if !(1...64).contains(queues) { throw ValidationError("--queues must be 1-64") }
            if cache == .none { throw ValidationError("--cache none is not supported with --vhost-user") }
            if stats || !exportName.isEmpty { throw ValidationError("--stats and --export-name are NBD options; --vhost-user logs a summary per VM instead") }
            return
        }
        if (socket == nil) == (port == nil) { throw ValidationError("give exactly one of --socket PATH, --port N or --vhost-user PATH") }
        if bind != nil && port == nil { throw ValidationError("--bind needs --port") }
        if let port, !(1...65535).contains(port) { throw ValidationError("--port must be 1-65535") }
    }

    func run() throws {
        try refuseDirectories(images: [image])
        try reportingErrors { () throws(BlockError) in
            var o = OpenOptions(writable: write, format: format, engine: .uring)
            o.engine = .uring
            o.direct = cache == .none
            let disk = try openImage(image, o)
            if let vhostUser { try serveVhostUser(disk, vhostUser); return }
            let export = NbdExport(disk: disk, name: exportName, direct: cache == .none)
            let address: NbdListenAddress = socket.map { .unix(path: $0) } ?? .tcp(host: bind ?? "127.0.0.1", port: port ?? 10809)
            let server = try NbdServer(export: export, address: address, log: { serveLog($0) })
            if stats { server.statsInterval = statsInterval }
            try server.listen()
            serveLog("serving \(image) (\(disk.format.rawValue), \(disk.logicalSize) bytes, \(write ? "read-write" : "read-only")) at \(address)")
            try server.run(handleSignals: true)
            try disk.flush()
            try disk.close()   // releases QEMU's image locks with the file
            serveLog("stopped: image flushed and closed")
        }
    }

    /// `--vhost-user PATH`: one VMM at a time on the socket, each virtqueue a queue.
    private func serveVhostUser(_ disk: any DiskFile, _ path: String) throws(BlockError) {
        let export = VhostUserBlkExport(disk: disk, queues: queues)
        let server = try VhostUserServer(export: export, path: path, log: { serveLog($0) })
        try server.listen()
        serveLog("serving \(image) (\(disk.format.rawValue), \(disk.logicalSize) bytes, \(write ? "read-write" : "read-only")) as vhost-user-blk with \(queues) queue\(queues == 1 ? "" : "s") at \(path)")
        try server.run(handleSignals: true)
        try disk.flush()
        try disk.close()   // releases QEMU's image locks with the file
        serveLog("stopped: image flushed and closed")
    }
}

/// `serve --cache`: the page-cache modes qemu-nbd calls writeback and none.
enum ServeCacheMode: String, ExpressibleByArgument, CaseIterable {
    case writeback, none
}

/// One line on stderr, prefixed so it can be told from a client's output.
func serveLog(_ line: String) {
    printError("blockscope serve: " + line)
}

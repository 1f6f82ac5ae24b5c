import ArgumentParser
import BlockCore
import BlockScopeUI
#if canImport(Glibc)
import Glibc
#endif

/// `blockscope tui IMAGE`: the terminal UI (also what `blockscope IMAGE` opens).
struct Tui: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tui",
        abstract: "Open the terminal UI: image layout views and live io_uring activity.",
        discussion: "Keys: 1-8/Tab switch views, Enter open, Esc back, : command prompt (Tab completes), space pause, s step, / search, n/N next/previous, g goto, ? help, q quit. Writes need --write. NO_COLOR selects the monochrome theme."
    )

    @Argument(help: "The image file.") var image: String
    @Flag(help: "Open the image for writing (needed by write, zero, discard and jobs from the prompt or a script).") var write = false
    @Option(help: "Theme name (default, light, high-contrast, okabe-ito, monochrome) or a .theme file.") var theme = "default"
    @Option(help: "A command-language script to run at start.") var script: String?
    @Flag(name: .customLong("no-mouse"), help: "Do not capture the mouse.") var noMouse = false
    @Option(help: "I/O engine for commands: auto, uring or sync.") var engine: EngineKind = .auto
    @Flag(help: "Open the image's data with O_DIRECT (bypass the page cache), as jobs with direct=1 expect.") var direct = false
    @Option(help: "Also serve the image over NBD (unix:PATH or tcp:PORT on 127.0.0.1) or vhost-user-blk (vhost-user:PATH[,queues=N]); each NBD client or virtqueue shows as a queue in In-flight/Completions.")
    var serve: String?
    @Option(help: .hidden) var statsFile: String?

    func run() throws {
        try refuseDirectories(images: [image], files: [(script, "a script"), (statsFile, "a statistics file")])
        var o = TUIOptions(imagePath: image)
        o.writable = write
        o.themeName = theme
        o.scriptPath = script
        o.mouse = !noMouse
        o.engine = engine
        o.statsPath = statsFile
        o.direct = direct
        o.virtqueueView = serve?.hasPrefix("vhost-user:") ?? false
        guard isatty(1) != 0 else {
            printError("blockscope: the TUI needs a terminal; for text output use `blockscope info \(image)`")
            throw ExitCode(1)
        }
        do {
            let app = try TUIApp(options: o)
            let server = try serve.map { try TuiServer.start(spec: $0, app: app) }
            if let server { app.stopOutsideIO = { _ = server.stop() } }
            let status = try app.run(mouse: o.mouse)
            if let sig = app.quitSignal { printError("blockscope: \(TUIApp.signalName(sig)): quit as on q (drained, flushed, closed)") }
            // The connect/disconnect lines, kept while the screen was the terminal's.
            for line in server?.stop() ?? [] { printError("blockscope serve: " + line) }
            // After the terminal is restored: what closing did, on the shell's screen.
            if let line = app.closingLine { print(line) }
            if status != 0 { throw ExitCode(status) }
        } catch let e as BlockScopeUIError {
            printError("blockscope: \(e.description)")
            throw ExitCode(1)
        }
    }
}

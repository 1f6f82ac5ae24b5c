import ArgumentParser
import BlockCore
import BlockEngine

/// `blockscope replay TRACE IMAGE`: reissue a recorded trace's guest requests on an image.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "replay",
        abstract: "Replay the guest requests of a `run --trace` file onto an image (same timing, or --fast).")

    @Argument(help: "The trace file (JSON Lines from `run --trace`).") var trace: String
    @Argument(help: "The image to replay onto.") var image: String
    @OptionGroup var imageOptions: ImageOptions
    @Flag(help: "Open the image for writing (needed when the trace writes).") var write = false
    @Flag(help: "Issue requests as fast as possible instead of with the recorded timing.") var fast = false
    @Option(help: "Requests in flight at most.") var depth: Int = 32

    func run() throws {
        try refuseDirectories(images: [image], files: [(trace, "a trace file")])
        try reportingErrors { () throws(BlockError) in
            let requests = try TraceFile.readRequests(trace)
            let disk = try openImage(image, imageOptions.openOptions(writable: write))
            let r = Replayer(disk: disk, timed: !fast, depth: depth, engine: imageOptions.engine)
            let s = try r.replay(requests)
            try disk.flush()
            print("replayed \(s.requests) requests (\(s.bytesWritten) bytes written, \(s.bytesRead) bytes read) in \(s.elapsedNs / 1_000_000) ms")
            try disk.close()
        }
    }
}

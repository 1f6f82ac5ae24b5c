import ArgumentParser
import BlockCore
import BlockEngine
#if canImport(Glibc)
import Glibc
#endif

/// `blockscope cat IMAGE`: guest-visible bytes to stdout, read through the async engine.
struct Cat: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cat", abstract: "Write an image's guest-visible bytes to stdout (like qemu-img convert -O raw).")

    @Argument(help: "The image file.") var image: String
    @OptionGroup var imageOptions: ImageOptions
    @Option(help: "Guest offset to start at (k/M/G suffixes).") var offset: SizeArgument?
    @Option(help: "Bytes to write (default: to the end of the disk).") var length: SizeArgument?
    @Option(help: "Read an internal snapshot's view (QCOW2).") var snapshot: String?

    func run() throws {
        try refuseDirectories(images: [image])
        try reportingErrors { () throws(BlockError) in
            var o = imageOptions.openOptions(writable: false)
            o.snapshot = snapshot
            let disk = try openImage(image, o)
            let start = offset?.value ?? 0
            if start > disk.logicalSize {
                throw BlockError(.outOfBounds, "offset \(start) is past the end of the disk (size \(disk.logicalSize))", path: image)
            }
            let len = length?.value ?? (disk.logicalSize - start)
            if len > disk.logicalSize - start {
                throw BlockError(.outOfBounds, "offset \(start) + length \(len) is past the end of the disk (size \(disk.logicalSize))", path: image)
            }
            try GuestStreamer.stream(disk: disk, engine: imageOptions.engine, offset: start, length: len) { (bytes) throws(BlockError) in
                var done = 0
                while done < bytes.count {
                    let n = Syscall.retrying { Glibc.write(1, bytes.baseAddress! + done, bytes.count - done) }
                    if n < 0 {
                        throw BlockError.system(errno, "write to stdout")
                    }
                    done += n
                }
            }
            try disk.close()
        }
    }
}

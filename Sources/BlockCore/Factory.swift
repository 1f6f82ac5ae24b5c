import BlockIO
import BlockInspect
import Raw
import Qcow2
import Vhdx
import Vhd
import Vmdk

#if canImport(Glibc)
import Glibc
#endif

/// The formats blockscope knows, in probe order: one line per format (docs/adr/0017). RAW is
/// last, since it takes any file no magic claims. Commands, the inspector registry and the
/// CLI's `--format` values all come from here.
public let imageFormatModules: [any ImageFormatModule] = [Qcow2Module(), VhdxModule(), VhdModule(), VmdkModule(), RawModule()]

/// The registered module of `format`; nil for a name blockscope does not know.
public func imageFormatModule(for format: ImageFormat) -> (any ImageFormatModule)? {
    imageFormatModules.first { $0.format == format }
}

/// The module whose magic the first bytes carry (qemu-img's probe order: QCOW2 `QFI\xfb`,
/// VHDX `vhdxfile`, VHD `conectix`, VMDK's sparse header or descriptor), the last one (RAW)
/// when none matches.
func probeModule(_ head: [UInt8]) -> any ImageFormatModule {
    imageFormatModules.first { $0.probe(head) } ?? imageFormatModules[imageFormatModules.count - 1]
}

/// Probes an image's format from its first bytes (up to 512); RAW when no magic matches.
///
/// A fixed VHD has its footer only at the end and probes as RAW, as qemu-img does.
public func probeFormat(_ head: [UInt8]) -> ImageFormat { probeModule(head).format }

/// The format `explain` reads a file as: the probed one; a file no magic claims is taken as
/// the format that claims it by name (a QCOW2 file whose header was wiped), else RAW.
public func explainFormat(head: [UInt8], path: String) -> ImageFormat {
    let probed = probeModule(head)
    if probed.format == imageFormatModules[imageFormatModules.count - 1].format,
       let named = imageFormatModules.first(where: { $0.explainsHeaderless(path: path) }) {
        return named.format
    }
    return probed.format
}

/// Refuses a path that names a directory with the one message every command gives
/// ("PATH: is a directory, not a disk image", errno EISDIR; `what` names the file expected
/// there for other arguments: "a script"). Any other path passes, a missing one too: the
/// open that follows names what is wrong with it. ``openDisk(_:options:)`` checks this
/// itself; commands call it first for every path argument, so a directory gets this line
/// before any other check (a script's read-only refusal, the TUI's need for a terminal).
public func refuseDirectory(_ path: String, what: String = "a disk image") throws(BlockError) {
    var st = stat()
    if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { throw directoryRefusal(path, what: what) }
}

/// The error for a directory given where a file belongs.
func directoryRefusal(_ path: String, what: String = "a disk image") -> BlockError {
    BlockError(.invalidArgument, "is a directory, not \(what)", errno: EISDIR, path: path, operation: "open")
}

/// ``openDisk(_:options:)`` as an ``ImageOpener``: what a format uses to open the images an
/// image refers to. `openDisk` hands it down by itself; the create options of the differencing
/// formats (`VhdxCreateOptions`, `VhdCreateOptions`) take it for their parent.
public let diskOpener: ImageOpener = { path, options throws(BlockError) in try openDisk(path, options: options) }

/// Opens a disk image: takes QEMU's image locks (unless `options.ignoreLocks`), probes the format (or uses
/// `options.format`), and returns the format's ``DiskFile``.
///
/// The lock check comes before any parsing, so it guards every format. Images open
/// read-only unless `options.writable`. Each format's queues use io_uring when the kernel
/// supports the needed opcodes (``IoUringContext/isSupported``) and sync I/O otherwise or
/// when `options.engine` is `.sync`. Errors name the file and what is wrong.
public func openDisk(_ path: String, options: OpenOptions = OpenOptions()) throws(BlockError) -> any DiskFile {
    var options = options
    if options.referenceOpener == nil { options.referenceOpener = diskOpener }
    var st = stat()
    if stat(path, &st) != 0 {
        let e = errno
        if e == ENOENT { throw BlockError(.notFound, "no such file", errno: e, path: path, operation: "open") }
        throw BlockError.system(e, "stat", path: path)
    }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw directoryRefusal(path) }
    let isBlockDevice = (st.st_mode & S_IFMT) == S_IFBLK
    if !isBlockDevice && st.st_size == 0 && options.format == nil {
        throw BlockError(.invalidFormat, "file is empty (0 bytes): not a disk image", path: path, operation: "open")
    }
    if options.chain.contains(path) {
        throw BlockError(.corruptImage, "backing chain loop: \(path) is its own ancestor (\((options.chain + [path]).joined(separator: " -> ")))", path: path, operation: "open")
    }
    if options.chain.count > options.maxBackingDepth {
        throw BlockError(.overflow, "backing chain deeper than \(options.maxBackingDepth) images", path: path, operation: "open")
    }

    if !options.chain.isEmpty { try options.confine(path) }

    // Probe the format from the first bytes (no lock needed to read a few bytes).
    let probeFile = try SystemFile(path: path, writable: false)
    let head = try probeFile.readBytes(at: 0, count: 512)
    let size = try probeFile.size()
    probeFile.close()
    let module: any ImageFormatModule
    if let f = options.format {
        guard let m = imageFormatModule(for: f) else {
            throw BlockError(.unsupportedFeature, "image format '\(f.rawValue)' is not supported (known: \(imageFormatModules.map(\.format.rawValue).joined(separator: ", ")))", path: path, operation: "open")
        }
        module = m
    } else {
        module = probeModule(Array(head.prefix(Int(min(size, 512)))))
    }

    // QEMU shares writes on raw images and refuses to share them on the others. With
    // `ignoreLocks` (tests, the fuzz sandbox) no lock is taken or tested.
    let lock = options.ignoreLocks ? nil : try ImageLock(path: path, writable: options.writable, shareWrites: module.sharesWrites)
    var warnings: [String] = []
    if let w = lock?.warning { warnings.append(w) }

    let file = try SystemFile(path: path, writable: options.writable, direct: options.direct && module.supportsDirect)
    // The lock lives exactly as long as the image's descriptor: the disk's close() (or the
    // last reference going away) releases it; nobody releases it by hand.
    if let lock { file.holdLock(lock) }
    return try module.open(file: file, options: options, warnings: warnings)
}

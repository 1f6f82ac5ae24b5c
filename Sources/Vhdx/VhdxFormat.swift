import BlockIO
import BlockMap
import BlockInspect

/// Entry point of the vhdx format for the factory.
public enum VhdxFormat {
    /// Opens a VHDX image from an open host file (see ``VhdxDisk``).
    public static func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        try VhdxDisk(file: file, options: options, warnings: warnings)
    }
}

/// The VHDX io_uring queue.
package typealias VhdxAsync = MappedAsync

import BlockIO
import BlockMap
import BlockInspect

/// Entry point of the vpc format for the factory.
public enum VhdFormat {
    /// Opens a VHD image (fixed, dynamic or differencing) from an open host file (see ``VhdDisk``).
    public static func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        try VhdDisk(file: file, options: options, warnings: warnings)
    }
}

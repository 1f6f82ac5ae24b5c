import BlockIO
import BlockInspect

/// Opens the inspector for the image at `path`: the open `disk` when there is one (its
/// live metadata, so allocations show at once), else the file read-only (QCOW2's tables can
/// be inspected when the disk cannot be opened for I/O). `format` is the probed format.
///
/// The format's module (``imageFormatModules``) answers first; a format without an inspector
/// of its own, or an image its inspector declines (a fixed VHD has no BAT), is drawn from its
/// map extents (``ExtentInspection``). Throws when the format's inspector cannot read the file
/// at all; nil when no inspector fits (an image that could not be opened and has no file-only
/// inspector).
public func openInspector(path: String, disk: (any DiskFile)?, format: ImageFormat) throws(BlockError) -> InspectorHandle? {
    if let h = try imageFormatModule(for: format)?.inspector(path: path, disk: disk) { return h }
    return ExtentInspection.make(path: path, disk: disk)
}

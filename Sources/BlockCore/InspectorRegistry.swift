import BlockIO
import BlockInspect
import Qcow2
import Vmdk

/// Opens the inspector for the image at `path`: the open `disk` when there is one (its
/// live metadata, so allocations show at once), else the file read-only (QCOW2's tables can
/// be inspected when the disk cannot be opened for I/O). `format` is the probed format.
///
/// This is the inspector registry: one factory per format, tried in order, the first that
/// answers for the image wins. A new format adds one line here (its factory returns nil for
/// images that are not its own). Throws when the format's inspector cannot read the file at
/// all; nil when no inspector fits (an image that could not be opened and has no file-only
/// inspector).
public func openInspector(path: String, disk: (any DiskFile)?, format: ImageFormat) throws(BlockError) -> InspectorHandle? {
    if let h = try Qcow2Inspection.make(path: path, disk: disk, format: format) { return h }
    if let h = try BatInspection.make(path: path, disk: disk, format: format) { return h }
    if let h = try VmdkInspection.make(path: path, disk: disk, format: format) { return h }
    if let h = try ExtentInspection.make(path: path, disk: disk, format: format) { return h }
    return nil
}

import BlockIO
import BlockInspect

/// Explains the image at `path` (`blockscope explain`, the TUI's Diagnosis view): the one
/// place that picks the format's explainer, so every front end renders the same report.
///
/// `format` nil probes it from the magic (``explainFormat(head:path:)``: a file no magic
/// claims goes to the module that explains such files by name, as a `.qcow2` whose header was
/// overwritten); the format's module explains it (``ImageFormatModule/explain(path:open:progress:warn:)``:
/// QCOW2 from the file under a read-only QEMU lock, VHDX and VHD through their open disks).
/// `progress` gets the walk's fraction done (QCOW2) and stops it by returning false (the
/// call then throws). `warn` gets each warning a user should see (a writer beside this
/// read-only reader, the disk's open warnings). Read-only; memory is the explainer's
/// (about four bytes per host cluster for QCOW2). Throws for an empty file, an unreadable
/// one, and a format that has no explainer.
public func explainImage(path: String, format: ImageFormat? = nil, progress: ((Double) -> Bool)? = nil,
                         warn: (String) -> Void = { _ in }) throws(BlockError) -> ExplainReport {
    let probe = try SystemFile(path: path, writable: false)
    let size = try probe.size()
    if size == 0 {
        probe.close()
        throw BlockError(.invalidFormat, "file is empty (0 bytes): not a disk image", path: path, operation: "explain")
    }
    let head: [UInt8]
    do { head = try probe.readBytes(at: 0, count: Int(min(size, 512))) } catch let e { probe.close(); throw e }
    probe.close()
    let fmt = format ?? explainFormat(head: head, path: path)
    guard let module = imageFormatModule(for: fmt) else {
        throw BlockError(.invalidArgument, "unknown image format '\(fmt.rawValue)'", path: path, operation: "explain")
    }
    return try module.explain(path: path, open: { o throws(BlockError) in
        let disk = try openDisk(path, options: o)
        for w in disk.warnings { warn(w) }
        return disk
    }, progress: progress, warn: warn)
}

import BlockIO
import BlockInspect
import Qcow2

/// Explains the image at `path` (`blockscope explain`, the TUI's Diagnosis view): the one
/// place that picks the format's explainer, so every front end renders the same report.
///
/// `format` nil probes it from the magic; a `.qcow2` file whose magic is gone (its header
/// overwritten) is explained as QCOW2, whose explainer locates the tables by content. QCOW2
/// is explained from the file (it needs no open disk, so a damaged header still gives a
/// report) under a read-only QEMU lock, and a backing chain is opened only to measure what a
/// convert would write; VHDX and VHD through their open disks (``ExplainableDisk``).
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
    var fmt = format ?? probeFormat(head)
    if format == nil && fmt == .raw && path.lowercased().hasSuffix(".qcow2") { fmt = .qcow2 }
    switch fmt {
    case .qcow2:
        // A read-only user beside a writer gets a warning, as QEMU's locks allow.
        let lock = try ImageLock(path: path, writable: false, shareWrites: false)
        defer { lock.release() }
        if let w = lock.warning { warn(w) }
        let structure = try Qcow2Structure(path: path)
        var report = try structure.explain(progress: progress)
        if structure.backingFile != nil {
            // A convert flattens the chain: count the data through the backing files.
            let disk = try openDisk(path, options: OpenOptions(writable: false, format: .qcow2))
            defer { try? disk.close() }
            for w in disk.warnings { warn(w) }
            if let inspectable = disk as? any InspectableDisk { try report.measureConvert(through: inspectable) }
        }
        return report
    default:
        let disk = try openDisk(path, options: OpenOptions(writable: false, format: fmt))
        defer { try? disk.close() }
        for w in disk.warnings { warn(w) }
        guard let explainable = disk as? any ExplainableDisk else {
            throw BlockError(.unsupportedFeature, "explain is not supported for \(disk.format.rawValue) images", path: path)
        }
        return try explainable.explain()
    }
}

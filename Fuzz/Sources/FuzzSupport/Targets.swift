import BlockCore

/// The bodies of the image fuzz targets, shared by their executables.
public enum ImageTargets {
    /// Read side: writes `bytes` as the image, opens it read-only as `format`, runs
    /// ``Exercise/inspectAndRead(_:maxExtents:sequentialBytes:info:check:)``; `extra` runs on the open
    /// disk before it is closed (the QCOW2 target opens snapshot views from it).
    public static func read<C: Collection>(_ bytes: C, format: ImageFormat,
                                           extra: (any DiskFile) -> Void = { _ in }) where C.Element == UInt8 {
        let sandbox = Sandbox.shared
        let path = PhaseTimer.measure("read: load input") { writeImage(bytes, format) }
        var o = sandbox.options(writable: false)
        o.format = format
        guard let disk = PhaseTimer.measure("read: open", { try? openDisk(path, options: o) }) else { return }
        Exercise.inspectAndRead(disk)
        PhaseTimer.measure("read: extra") { extra(disk) }
        PhaseTimer.measure("read: close") { Exercise.close(disk) }
    }

    /// Explain side: writes `bytes` as the image (as ``read(_:format:extra:)`` does) and runs
    /// ``Exercise/explain(_:format:)`` on the file, whether or not it would open: damaged
    /// images are what explain is for.
    public static func explain<C: Collection>(_ bytes: C, format: ImageFormat) where C.Element == UInt8 {
        let path = PhaseTimer.measure("explain: load input") { writeImage(bytes, format) }
        PhaseTimer.measure("explain") { Exercise.explain(path, format: format) }
    }

    /// Writes the sandbox image: QCOW2 inputs are the file itself; VHDX and VHD inputs are
    /// ``SparseImage`` encodings whose checksums ``Checksums`` then recomputes.
    static func writeImage<C: Collection>(_ bytes: C, _ format: ImageFormat) -> String where C.Element == UInt8 {
        let path = Sandbox.shared.imagePath, image = Sandbox.shared.image
        switch format {
        case .vhdx:
            SparseImage.write(bytes, to: image)
            Checksums.fixVhdx(image)
        case .vpc:
            SparseImage.write(bytes, to: image)
            Checksums.fixVhd(image)
        default:
            _ = Sandbox.shared.writeImage(bytes)
        }
        return path
    }

    /// Write side: the first ``WriteProgram/byteCount`` bytes are a ``WriteProgram``, the
    /// rest the image. An image that `check` finds clean is opened writable, the program
    /// runs, the image is closed and reopened read-only: `check` must then report no
    /// corruption (leaks are allowed) and every sector the program wrote or zeroed must
    /// read back as written. A violation aborts, which libFuzzer records as a crash.
    ///
    /// `writable` is asked of the clean image before the writes: false skips them, for images
    /// that QEMU's own writes leave with a corruption (the property would not hold for QEMU).
    public static func write<C: Collection>(_ bytes: C, format: ImageFormat,
                                            writable: (any DiskFile) -> Bool = { _ in true }) where C.Element == UInt8 {
        guard bytes.count > WriteProgram.byteCount else { return }
        let sandbox = Sandbox.shared
        defer { sandbox.restoreBases() }
        let path = PhaseTimer.measure("write: load input") { writeImage(bytes.dropFirst(WriteProgram.byteCount), format) }
        var o = sandbox.options(writable: false)
        o.format = format
        guard let before = PhaseTimer.measure("write: open before", { try? openDisk(path, options: o) }) else { return }
        let report = PhaseTimer.measure("write: check before") { try? (before as? any InspectableDisk)?.check(repair: nil) }
        let accepted = report != nil && writable(before)
        Exercise.close(before)
        guard accepted, let report, report.corruptions == 0, report.checkErrors == 0 else { return }

        o.writable = true
        guard let disk = PhaseTimer.measure("write: open writable", { try? openDisk(path, options: o) }) else { return }
        var program = WriteProgram(bytes.prefix(WriteProgram.byteCount), diskSize: disk.logicalSize)
        PhaseTimer.measure("write: program") { program.run(on: disk) }
        let closed = PhaseTimer.measure("write: close") { (try? disk.close()) != nil }
        guard closed else { return }

        o.writable = false
        let after: any DiskFile
        do throws(BlockError) { after = try PhaseTimer.measure("write: reopen") { () throws(BlockError) in try openDisk(path, options: o) } } catch {
            violation("the image no longer opens after writes: \(error)")
        }
        defer { Exercise.close(after) }
        if let d = after as? any InspectableDisk {
            do {
                let r = try PhaseTimer.measure("write: check after") { () throws(BlockError) in try d.check(repair: nil) }
                if r.corruptions > 0 || r.checkErrors > 0 {
                    violation("check after writes: \(r.corruptions) corruptions, \(r.checkErrors) errors: \(r.messages.prefix(5).joined(separator: "; "))")
                }
            } catch {
                violation("check after writes failed: \(error)")
            }
        }
        PhaseTimer.measure("write: verify") { program.verify(after, what: "after reopen") }
    }
}

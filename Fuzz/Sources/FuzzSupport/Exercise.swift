import BlockCore

/// What the read-side targets do with an image that opened: every inspection a user can
/// run (info, map, check) and reads of every extent map reports.
///
/// Errors are expected (the input is malformed); crashes, traps, hangs and huge
/// allocations are what the fuzzer looks for. Reads are bounded: at most `maxExtents`
/// extents, each read at its start and end in chunks of at most 64 KiB, plus the first
/// `sequentialBytes` of the disk in order, so one input costs a bounded time.
public enum Exercise {
    /// Runs info (unless `info` is false), map, check (unless `check` is false) and the reads
    /// on `disk`, ignoring `BlockError`s.
    public static func inspectAndRead(_ disk: any DiskFile, maxExtents: Int = 32, sequentialBytes: UInt64 = 256 << 10,
                                      info: Bool = true, check: Bool = true) {
        if info {
            PhaseTimer.measure("inspect: info") {
                _ = try? disk.info()
                _ = try? disk.physicalSize()
            }
        }
        var extents: [MapExtent] = []
        if let d = disk as? any InspectableDisk {
            extents = PhaseTimer.measure("inspect: map") { (try? d.mapExtents()) ?? [] }
            if check { PhaseTimer.measure("inspect: check") { _ = try? d.check(repair: nil) } }
        }
        PhaseTimer.measure("inspect: reads") { reads(disk, extents, maxExtents, sequentialBytes) }
    }

    /// `blockscope explain` of the file at `path` as `format` (the format's explainer: QCOW2's
    /// reference walk, content classifier and header recovery; VHDX's and VHD's reports) and
    /// both renderings of the report, ignoring `BlockError`s. The report's space table must
    /// add up to the file's size, as ``ExplainReport/space`` promises.
    public static func explain(_ path: String, format: ImageFormat) {
        guard let report = try? explainImage(path: path, format: format) else { return }
        let total = report.space.reduce(UInt64(0)) { $0 &+ $1.bytes }
        if total != report.fileSize {
            violation("explain: the space table adds up to \(total) bytes, the file has \(report.fileSize): \(report.space.filter { $0.bytes > 0 }.map { "\($0.kind)=\($0.bytes)" }.joined(separator: " "))")
        }
        _ = report.json().render(pretty: false)
        _ = report.text { String($0) }
    }

    static func reads(_ disk: any DiskFile, _ extents: [MapExtent], _ maxExtents: Int, _ sequentialBytes: UInt64) {
        let size = disk.logicalSize
        do {
            let b = Exercise.buffer
            for e in extents.prefix(maxExtents) where e.start < size {
                let n = min(e.length, UInt64(b.count), size - e.start)
                if n == 0 { continue }
                _ = try? disk.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<Int(n)]), at: e.start)
                let end = min(e.start &+ e.length, size)
                if end > e.start + n {
                    let m = min(UInt64(4096), end - e.start)
                    _ = try? disk.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<Int(m)]), at: end - m)
                }
            }
            var off: UInt64 = 0
            let limit = min(size, sequentialBytes)
            while off < limit {
                let n = Int(min(UInt64(b.count), limit - off))
                // Unaligned and odd-sized reads too: half a sector in, a sector less.
                let start = off + (off & 0x10000 != 0 ? 256 : 0)
                let len = start == off ? n : max(0, n - 512)
                if len > 0 && start < size {
                    _ = try? disk.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<len]), at: start)
                }
                off += UInt64(n)
            }
            // Past the end must fail cleanly, not trap.
            _ = try? disk.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<512]), at: size)
            _ = try? disk.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<512]), at: UInt64.max - 100)
        }
    }

    /// The reads' buffer, allocated once: a 64 KiB allocation and its zeroing per input
    /// were a measurable part of an input's cost under ASan.
    nonisolated(unsafe) static let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 4096)

    /// Closes `disk` (which releases its lock), ignoring errors.
    public static func close(_ disk: any DiskFile) {
        _ = try? disk.close()
    }
}

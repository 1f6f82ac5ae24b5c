import BlockCore
import FuzzSupport

/// qcow2-read: the input is a QCOW2 image. Open (header, extensions, snapshot table, L1,
/// refcount table, backing chain confined to the sandbox), info, map, check, reads of every
/// extent (data, compressed zlib/zstd, zero, backing, extended-L2 subclusters), then map and
/// the reads through up to three internal snapshots' views (and info through the first).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    ImageTargets.read(bytes, format: .qcow2) { disk in
        guard let q = disk as? Qcow2Disk else { return }
        var o = Sandbox.shared.options(writable: false)
        o.format = .qcow2
        for (i, s) in q.metadata.snapshots.prefix(3).enumerated() {
            o.snapshot = s.name
            guard let view = PhaseTimer.measure("views: open", { try? openDisk(Sandbox.shared.imagePath, options: o) }) else { continue }
            // No check: a view's check walks the same file as the image's did (the header's
            // L1 and every snapshot's), so it repeated that work, up to 3 times an input.
            // Info on the first view only: a view's info differs from the image's in the
            // virtual size alone and lists every snapshot again (docs/FUZZING.md, "Throughput").
            Exercise.inspectAndRead(view, maxExtents: 16, sequentialBytes: 256 << 10, info: i == 0, check: false)
            PhaseTimer.measure("views: close") { Exercise.close(view) }
        }
    }
    return 0
}

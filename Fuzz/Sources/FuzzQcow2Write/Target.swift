import BlockCore
import FuzzSupport

/// qcow2-write: 32 bytes of write program, then a QCOW2 image. A clean image is opened
/// writable, written, zeroed, discarded and flushed; afterwards `check` must find no
/// corruption and the written sectors must read back (see ``ImageTargets/write``).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ImageTargets.write(inputBuffer(data, size), format: .qcow2) { disk in
        guard let q = disk as? Qcow2Disk else { return true }
        return !metadataClusterIsAlsoData(q)
    }
    return 0
}

/// Whether an active L2 entry's data cluster is also the L1 table, an L2 table, the refcount
/// table or a refcount block. qemu-img check calls such an image clean when the refcounts
/// count both uses, yet QEMU's own first write through a shared L2 table copies it and leaves
/// the data entry without OFLAG_COPIED at refcount 1 (`ERROR OFLAG_COPIED data cluster:
/// l2_entry=9000 refcount=1`, qemu-io on a copy of the campaign input of 2026-12-05,
/// Fuzz/regressions/qcow2-write/crash-6452…); blockscope writes it the same way, so the
/// write target's property does not hold there and such images are not written.
func metadataClusterIsAlsoData(_ q: Qcow2Disk) -> Bool {
    let m = q.metadata
    let cs = m.header.clusterSize, mask = Qcow2Entry.offsetMask
    var meta = Set<UInt64>()
    func add(_ offset: UInt64, _ bytes: UInt64) {
        guard bytes > 0, offset < (1 << 56), bytes < (1 << 32) else { return }
        for c in (offset / cs)...((offset + bytes - 1) / cs) where meta.count < 65536 { meta.insert(c) }
    }
    let l1 = m.l1Table
    add(m.l1Offset, UInt64(l1.count) * 8)
    add(m.header.refcountTableOffset, m.header.refcountTableBytes)
    for e in m.refcountTable where e & mask != 0 { add(e & mask, cs) }
    for e in l1 where e & mask != 0 { add(e & mask, cs) }
    let step = m.header.extendedL2 ? 2 : 1
    for e in l1 where e & mask != 0 {
        guard let t = try? m.l2TableWords(at: e & mask) else { continue }
        for i in stride(from: 0, to: t.count, by: step) where t[i] & Qcow2Entry.compressed == 0 && t[i] & mask != 0 {
            if meta.contains((t[i] & mask) / cs) { return true }
        }
    }
    return false
}

import BlockIO
import BlockInspect

/// One internal snapshot from the snapshot table.
public struct Qcow2Snapshot: Sendable, Equatable {
    /// Host offset of the snapshot's L1 table.
    public var l1TableOffset: UInt64
    /// Entries in the snapshot's L1 table.
    public var l1Size: UInt32
    /// The snapshot ID ("1", "2", ...).
    public var id: String
    /// The snapshot name (tag).
    public var name: String
    /// Seconds since the epoch when it was taken.
    public var dateSeconds: UInt32
    /// Nanoseconds part of the date.
    public var dateNanoseconds: UInt32
    /// Guest clock in nanoseconds.
    public var vmClockNanoseconds: UInt64
    /// Size of the saved VM state in bytes.
    public var vmStateSize: UInt64
    /// Guest size when the snapshot was taken (nil when the entry has no such extra data).
    public var diskSize: UInt64?
    /// Instruction count (nil when unknown).
    public var icount: UInt64?

    /// Most extra data bytes QEMU accepts in an entry.
    static let maxExtraData: UInt32 = 1024

    /// Reads `count` entries from the snapshot table at `offset` of `file`.
    ///
    /// Each entry is read on its own with its lengths checked against the file size, so a
    /// corrupt count costs at most one failed read, not an allocation of the count's size.
    static func readTable(file: SystemFile, offset: UInt64, count: UInt32, header: Qcow2Header) throws(BlockError) -> (snapshots: [Qcow2Snapshot], bytes: UInt64) {
        let fileSize = try file.size()
        var pos = offset
        var out: [Qcow2Snapshot] = []
        // At most QEMU's 65,536 entries (Qcow2Header.parse), each of at least 40 bytes in the file.
        out.reserveCapacity(Int(min(UInt64(count), fileSize / 40)))
        for i in 0..<Int(count) {
            func bad(_ m: String) -> BlockError {
                BlockError(.corruptImage, "qcow2: snapshot \(i): \(m)", path: file.path, hostOffset: pos, operation: "open")
            }
            if pos + 40 > fileSize { throw bad("entry at \(hex(pos)) lies beyond the end of the file (size \(hex(fileSize)))") }
            // The fields are read straight from the arrays (every offset below lies inside what
            // was read): a ByteReader per entry built two description strings per snapshot for
            // errors that cannot happen, a measurable part of opening a many-snapshot image.
            let h = try file.readBytes(at: pos, count: 40)
            let idSize = bigEndian(h, 12, 2), nameSize = bigEndian(h, 14, 2)
            let extraSize = UInt32(bigEndian(h, 36, 4))
            if extraSize > maxExtraData { throw bad("extra data of \(extraSize) bytes is too large (QEMU's limit is \(maxExtraData))") }
            let rest = UInt64(extraSize) + idSize + nameSize
            if pos + 40 + rest > fileSize { throw bad("entry runs past the end of the file") }
            let tail = try file.readBytes(at: pos + 40, count: Int(rest))
            var snap = Qcow2Snapshot(l1TableOffset: bigEndian(h, 0, 8), l1Size: UInt32(bigEndian(h, 8, 4)),
                                     id: String(decoding: tail[Int(extraSize)..<Int(UInt64(extraSize) + idSize)], as: UTF8.self),
                                     name: String(decoding: tail[Int(UInt64(extraSize) + idSize)..<Int(rest)], as: UTF8.self),
                                     dateSeconds: UInt32(bigEndian(h, 16, 4)), dateNanoseconds: UInt32(bigEndian(h, 20, 4)),
                                     vmClockNanoseconds: bigEndian(h, 24, 8),
                                     vmStateSize: bigEndian(h, 32, 4), diskSize: nil, icount: nil)
            if extraSize >= 8 { snap.vmStateSize = bigEndian(tail, 0, 8) }
            if extraSize >= 16 { snap.diskSize = bigEndian(tail, 8, 8) }
            if extraSize >= 24 { let ic = bigEndian(tail, 16, 8); snap.icount = ic == UInt64.max ? nil : ic }
            if let ds = snap.diskSize, ds > UInt64(1) << 62 {
                throw bad("disk size \(ds) is implausibly large")
            }
            if UInt64(snap.l1Size) * 8 > Qcow2Header.maxL1Bytes {
                throw bad("L1 table of \(snap.l1Size) entries is too large")
            }
            try header.checkTable("snapshot \(i) L1 table", offset: snap.l1TableOffset, bytes: UInt64(snap.l1Size) * 8, fileSize: fileSize, path: file.path)
            out.append(snap)
            pos = (pos + 40 + rest + 7) & ~7
        }
        return (out, pos - offset)
    }

    /// The big-endian unsigned integer of `width` bytes at `at` in `b` (the caller has checked
    /// that they lie inside it).
    private static func bigEndian(_ b: [UInt8], _ at: Int, _ width: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in at..<(at + width) { v = v << 8 | UInt64(b[i]) }
        return v
    }

    /// The entry as qemu-img info's JSON object (same keys, same order).
    public var json: JSONValue {
        // Appended one by one into a list of the final size: one allocation per entry, not a
        // temporary array and a grown copy (info lists every snapshot, on every open view).
        var kv: [(String, JSONValue)] = []
        kv.reserveCapacity(8)
        if let icount { kv.append(("icount", .size(icount))) }
        kv.append(("vm-clock-nsec", .size(vmClockNanoseconds % 1_000_000_000)))
        kv.append(("name", .string(name)))
        kv.append(("date-sec", .size(UInt64(dateSeconds))))
        kv.append(("date-nsec", .size(UInt64(dateNanoseconds))))
        kv.append(("vm-clock-sec", .size(vmClockNanoseconds / 1_000_000_000)))
        kv.append(("id", .string(id)))
        kv.append(("vm-state-size", .size(vmStateSize)))
        return .object(kv)
    }
}

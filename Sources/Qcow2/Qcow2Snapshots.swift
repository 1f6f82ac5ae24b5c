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
    /// Each entry's lengths are checked against the file size before it is read, so a corrupt
    /// count costs at most one failed read, not an allocation of the count's size. The table
    /// is read through a window of up to 64 KiB (an entry larger than that gets a window of its
    /// own size): one read for dozens of entries, where two reads and two arrays per entry were
    /// most of opening an image with many snapshots.
    static func readTable(file: SystemFile, offset: UInt64, count: UInt32, header: Qcow2Header) throws(BlockError) -> (snapshots: [Qcow2Snapshot], bytes: UInt64) {
        let fileSize = try file.size()
        var pos = offset
        var out: [Qcow2Snapshot] = []
        // At most QEMU's 65,536 entries (Qcow2Header.parse), each of at least 40 bytes in the file.
        out.reserveCapacity(Int(min(UInt64(count), fileSize / 40)))
        var window: [UInt8] = [], windowStart: UInt64 = 0
        /// `n` bytes at `at`, which the caller has checked lie inside the file.
        func bytes(_ at: UInt64, _ n: Int) throws(BlockError) -> ArraySlice<UInt8> {
            if at < windowStart || at - windowStart + UInt64(n) > UInt64(window.count) {
                windowStart = at
                window = try file.readBytes(at: at, count: Int(max(UInt64(n), min(64 << 10, fileSize - at))))
            }
            let start = Int(at - windowStart)
            return window[start..<(start + n)]
        }
        for i in 0..<Int(count) {
            func bad(_ m: String) -> BlockError {
                BlockError(.corruptImage, "qcow2: snapshot \(i): \(m)", path: file.path, hostOffset: pos, operation: "open")
            }
            if pos + 40 > fileSize { throw bad("entry at \(hex(pos)) lies beyond the end of the file (size \(hex(fileSize)))") }
            // The fields are read straight from the bytes (every offset below lies inside what
            // was read): a ByteReader per entry built two description strings per snapshot for
            // errors that cannot happen.
            let h = try bytes(pos, 40)
            let idSize = bigEndian(h, 12, 2), nameSize = bigEndian(h, 14, 2)
            let extraSize = UInt32(bigEndian(h, 36, 4))
            if extraSize > maxExtraData { throw bad("extra data of \(extraSize) bytes is too large (QEMU's limit is \(maxExtraData))") }
            let rest = UInt64(extraSize) + idSize + nameSize
            if pos + 40 + rest > fileSize { throw bad("entry runs past the end of the file") }
            var snap = Qcow2Snapshot(l1TableOffset: bigEndian(h, 0, 8), l1Size: UInt32(bigEndian(h, 8, 4)),
                                     id: "", name: "",
                                     dateSeconds: UInt32(bigEndian(h, 16, 4)), dateNanoseconds: UInt32(bigEndian(h, 20, 4)),
                                     vmClockNanoseconds: bigEndian(h, 24, 8),
                                     vmStateSize: bigEndian(h, 32, 4), diskSize: nil, icount: nil)
            let tail = try bytes(pos + 40, Int(rest))
            let idStart = tail.startIndex + Int(extraSize), nameStart = idStart + Int(idSize)
            snap.id = String(decoding: tail[idStart..<nameStart], as: UTF8.self)
            snap.name = String(decoding: tail[nameStart..<tail.endIndex], as: UTF8.self)
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

    /// The big-endian unsigned integer of `width` bytes at `at` (counted from the slice's start)
    /// in `b`; the caller has checked that they lie inside it.
    private static func bigEndian(_ b: ArraySlice<UInt8>, _ at: Int, _ width: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in (b.startIndex + at)..<(b.startIndex + at + width) { v = v << 8 | UInt64(b[i]) }
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

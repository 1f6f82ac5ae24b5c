import BlockIO
import BlockInspect

extension Qcow2ExplainContext {
    /// Whether a leaked cluster that reads as L2 entries cannot be a table of the active image:
    /// in an image without internal snapshots QEMU sets COPIED on every standard L2 entry it
    /// writes (each cluster has one referrer), so a table of offsets none of which carries
    /// COPIED is something else: a persistent bitmap's table has exactly that shape (offsets,
    /// no flags). Calling it an orphaned L2 table would tell the user to link a bitmap table
    /// into the L1 table, mapping bitmap bits into the guest's disk.
    func isFlaglessTable(_ words: [UInt64]) -> Bool {
        guard (structure.snapshots ?? []).isEmpty else { return false }
        let step = h.extendedL2 ? 2 : 1
        var standard = 0
        for i in stride(from: 0, to: min(words.count, Int(h.l2Entries) * step), by: step) {
            let e = words[i]
            guard e & Qcow2Entry.compressed == 0, e & Qcow2Entry.offsetMask != 0 else { continue }
            if e & Qcow2Entry.copied != 0 { return false }
            standard += 1
        }
        return standard > 0
    }

    /// One finding per persistent bitmap whose directory entry puts its table where no table
    /// can be (not cluster-aligned, or past the end of the file): QEMU refuses such an image
    /// ("doesn't satisfy the constraints"), so `qemu-img check` cannot run. When exactly one
    /// bitmap is bad, the leaked clusters that hold flagless offsets (``isFlaglessTable(_:)``)
    /// are named as its likely old table, with the leaked clusters they point to.
    mutating func bitmapFindings() -> [ExplainFinding] {
        guard let ext = structure.extensions?.bitmaps, ext.count > 0 else { return [] }
        let bad = structure.bitmaps().filter { b in
            b.tableOffset & (cs - 1) != 0 || b.tableOffset >= fileSize || UInt64(b.tableSize) * 8 > fileSize - b.tableOffset
        }
        guard !bad.isEmpty else { return [] }
        var tables: [Int] = [], bits: [Int] = []
        if bad.count == 1 {
            for c in leakedLooks.keys.sorted() where leakedLooks[c] == .l2Table && !isExplained(c) {
                guard let bytes = read(c) else { break }
                let words = Qcow2ContentClassifier.words(bytes)
                guard isFlaglessTable(words) else { continue }
                tables.append(c)
                explain(c)
                for w in words where w & Qcow2Entry.offsetMask != 0 {
                    let t = Int((w & Qcow2Entry.offsetMask) / cs)
                    if isLeaked(t) && !isExplained(t) { bits.append(t); explain(t) }
                }
            }
        }
        return bad.map { b in
            let end = b.tableOffset.addingReportingOverflow(UInt64(b.tableSize) * 8)
            var why: [String] = []
            if b.tableOffset & (cs - 1) != 0 { why.append("not cluster-aligned") }
            if b.tableOffset >= fileSize || end.overflow || end.partialValue > fileSize {
                why.append("past the end of the file (\(fileSize) bytes)")
            }
            let misaligned = b.tableOffset & (cs - 1) != 0
            var text = "Bitmap '\(b.name)' puts its table (\(b.tableSize) entr\(b.tableSize == 1 ? "y" : "ies")) at \(hex(b.tableOffset)), \(why.joined(separator: " and ")): "
            text += misaligned
                ? "QEMU refuses to open the image (\"Bitmap '\(b.name)' doesn't satisfy the constraints\"), so neither `qemu-img check` nor a VM can use it. "
                : "QEMU still opens the image (it checks the table's alignment, not where it lies), `qemu-img check` counts the reference past the end as an error, and the changes the bitmap recorded cannot be read. "
            text += "Guest data is not affected: a persistent bitmap only records which clusters changed, for incremental backups. "
            if !tables.isEmpty {
                text += "The leaked cluster\(tables.count == 1 ? "" : "s") " + hostRanges(tables).map(\.text).joined(separator: ", ")
                text += " hold\(tables.count == 1 ? "s" : "") cluster offsets without flags, the shape of a bitmap table (every L2 entry of an image without snapshots has COPIED): most likely its old table, with \(bits.count) leaked cluster\(bits.count == 1 ? "" : "s") of bitmap bits it points to. Do not link \(tables.count == 1 ? "it" : "them") into the L1 table. "
            }
            text += misaligned
                ? "To reopen the image: on a copy, clear bit 0 of autoclear_features (header byte 95); QEMU then drops every bitmap as inconsistent, and `qemu-img check -r leaks` frees their clusters. "
                : "`qemu-img bitmap --remove` drops the bitmap; `qemu-img check -r leaks` then frees its old clusters. "
            text += "The bitmap is lost: the next backup must be a full one."
            return ExplainFinding(.badBitmap, host: [ExplainRange(ext.directoryOffset, ext.directorySize)] + hostRanges(tables) + hostRanges(bits),
                                  clusters: UInt64(tables.count + bits.count), text: text)
        }
    }
}

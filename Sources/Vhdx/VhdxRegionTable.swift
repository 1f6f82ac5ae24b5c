import BlockIO
import BlockMap
import BlockInspect

/// One region table entry: a GUID-named, 1 MiB-aligned span of the file.
public struct VhdxRegionEntry: Sendable, Equatable {
    /// The region's GUID (BAT, metadata, or unknown).
    public var guid: VhdxGuid
    /// File offset in bytes (multiple of 1 MiB).
    public var fileOffset: UInt64
    /// Length in bytes (multiple of 1 MiB).
    public var length: UInt32
    /// Whether an implementation must understand the region to open the file.
    public var required: Bool
}

/// The VHDX region table (`regi`, 64 KiB, CRC-32C over the 64 KiB).
public struct VhdxRegionTable: Sendable, Equatable {
    /// The entries in file order.
    public var entries: [VhdxRegionEntry]

    /// Parses a 64 KiB region table; nil on a bad signature, checksum or entry count.
    public static func parse(_ b: [UInt8]) -> VhdxRegionTable? {
        do {
            guard b.count >= VhdxLayout.regionTableSize, ByteField.hasTag(b, 0, "regi") else { return nil }
            let r = ByteReader(b, what: "vhdx region table")
            guard Crc32c.checksum(Array(b[0..<VhdxLayout.regionTableSize]), zeroingFieldAt: 4) == (try r.le32(4)) else { return nil }
            let count = Int(try r.le32(8))
            guard count <= 2047 else { return nil }
            var entries: [VhdxRegionEntry] = []
            for i in 0..<count {
                let o = 16 + i * 32
                entries.append(VhdxRegionEntry(guid: VhdxGuid(b, at: o), fileOffset: try r.le64(o + 16),
                                               length: try r.le32(o + 24), required: try r.le32(o + 28) & 1 != 0))
            }
            return VhdxRegionTable(entries: entries)
        } catch {
            return nil   // a field past the end: not a valid structure
        }
    }

    /// The 64 KiB on-disk form with its checksum.
    public func encode() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: VhdxLayout.regionTableSize)
        b[0..<4] = ArraySlice("regi".utf8)
        ByteField.putLE(&b, 8, UInt64(entries.count), width: 4)
        for (i, e) in entries.enumerated() {
            let o = 16 + i * 32
            b[o..<(o + 16)] = ArraySlice(e.guid.bytes)
            ByteField.putLE(&b, o + 16, e.fileOffset, width: 8)
            ByteField.putLE(&b, o + 24, UInt64(e.length), width: 4)
            ByteField.putLE(&b, o + 28, e.required ? 1 : 0, width: 4)
        }
        Crc32c.seal(&b, fieldOffset: 4)
        return b
    }

    /// Reads the first valid region table copy and checks its regions against the file.
    ///
    /// Returns the BAT and metadata entries. Throws with the offending offset when no copy
    /// is valid, a required region is unknown, a region is missing, misaligned or past EOF.
    public static func read(_ file: SystemFile, fileSize: UInt64) throws(BlockError) -> (bat: VhdxRegionEntry, metadata: VhdxRegionEntry) {
        var table: VhdxRegionTable?
        for off in VhdxLayout.regionTableOffsets {
            if let t = parse(try file.readBytes(at: off, count: VhdxLayout.regionTableSize)) { table = t; break }
        }
        guard let table else {
            throw BlockError(.invalidFormat, "vhdx: neither region table (at 0x30000 and 0x40000) has a valid signature and CRC-32C checksum", path: file.path, hostOffset: VhdxLayout.regionTableOffsets[0], operation: "open")
        }
        var bat: VhdxRegionEntry?
        var meta: VhdxRegionEntry?
        for e in table.entries {
            if e.guid == VhdxLayout.batGuid { bat = e } else if e.guid == VhdxLayout.metadataGuid { meta = e } else if e.required {
                throw BlockError(.unsupportedFeature, "vhdx: required region \(e.guid) is unknown", path: file.path, hostOffset: e.fileOffset, operation: "open")
            }
            let (end, o) = e.fileOffset.addingReportingOverflow(UInt64(e.length))
            if o || end > fileSize {
                throw BlockError(.corruptImage, "vhdx: region \(e.guid) at \(hex(e.fileOffset)) (length \(hex(UInt64(e.length)))) lies beyond the end of the file (size \(hex(fileSize)))", path: file.path, hostOffset: e.fileOffset, operation: "open")
            }
            if e.fileOffset % VhdxLayout.mb != 0 || e.fileOffset < VhdxLayout.mb {
                throw BlockError(.corruptImage, "vhdx: region \(e.guid) at \(hex(e.fileOffset)) is not 1 MiB aligned after the header section", path: file.path, hostOffset: e.fileOffset, operation: "open")
            }
        }
        guard let bat else { throw BlockError(.invalidFormat, "vhdx: region table has no BAT region", path: file.path, operation: "open") }
        guard let meta else { throw BlockError(.invalidFormat, "vhdx: region table has no metadata region", path: file.path, operation: "open") }
        return (bat, meta)
    }
}

import Foundation
import BlockCore

/// The VHD inspector: footer, dynamic header and the BAT of a dynamic or differencing VHD
/// (qemu's `vpc`), from BlockCore's ``VhdDisk``/``VhdMetadata``. A fixed VHD has no BAT and
/// is inspected through its extents instead.
///
/// Map roles: H footer copy, dynamic header and footer; 1 the BAT; R a block's sector
/// bitmap; █ block data.
public final class VhdInspector: BatInspector {
    let vhd: VhdDisk
    let meta: VhdMetadata
    private var bat: [UInt32] = []
    private var hostMap: HostRegionMap

    /// Creates the inspector; nil for a fixed VHD.
    public init?(disk: VhdDisk) {
        guard let m = disk.metadata else { return nil }
        vhd = disk
        meta = m
        hostMap = HostRegionMap(disk: disk)
        reload()
    }

    /// "vpc".
    public var formatName: String { "vpc" }
    /// Guest size.
    public var guestSize: UInt64 { vhd.logicalSize }
    /// Host file size.
    public var hostSize: UInt64 { hostMap.hostSize }
    private var blockSize: UInt64 { UInt64(meta.dynamic.blockSize) }

    /// Rereads the BAT and the regions.
    public func reload() {
        bat = meta.batSnapshot()
        hostMap.reload()
    }

    /// Footer, dynamic header and BAT summary.
    public func batSections() -> [InfoSection] {
        let f = vhd.footer, d = meta.dynamic
        let allocated = bat.filter { $0 != VhdMetadata.unallocated }.count
        var dyn: [(String, String, Role)] = [
            ("block size", formatBytes(Double(d.blockSize)), .normal),
            ("BAT", "\(d.maxTableEntries) entries at \(hex(d.tableOffset)), \(allocated) allocated", .l1),
            ("sector bitmap", "\(d.bitmapSize) bytes before each block", .dim),
        ]
        if !d.parentName.isEmpty { dyn.append(("parent", d.parentName, .backing)) }
        return [
            InfoSection("Footer", [
                ("disk type", f.diskType.name, .normal),
                ("creator", "\(f.creator.trimmingCharacters(in: .whitespaces)) v\(f.creatorVersion >> 16).\(f.creatorVersion & 0xffff)", .normal),
                ("size", "current \(f.currentSize), CHS \(f.cylinders)/\(f.heads)/\(f.sectorsPerTrack), guest \(f.virtualSize)", .normal),
                ("checksum", "valid (checked on open)", .ok),
            ]),
            InfoSection("Dynamic header", dyn),
        ]
    }

    /// BAT entries.
    public var batCount: Int { bat.count }

    /// One BAT entry: block, guest offset, sector of its bitmap.
    public func batRow(_ index: Int) -> (String, Role) {
        let e = bat[index]
        let head = "BAT[\(index)]".padded(10) + "block \(index) guest \(hex(UInt64(index) * blockSize))".padded(36)
        if e == VhdMetadata.unallocated {
            return (head + (vhd.parent != nil ? "unallocated (parent)" : "unallocated (zeroes)"), vhd.parent != nil ? .backing : .free)
        }
        return (head + "allocated".padded(20) + "bitmap at \(hex(UInt64(e) * 512)), data at \(hex(UInt64(e) * 512 + meta.dynamic.bitmapSize))", .data)
    }

    /// Footer and dynamic header, plus the BAT summary.
    public func overviewSections() -> [InfoSection] { batSections() }

    /// The state of a guest block.
    public func guestCell(_ start: UInt64, _ length: UInt64) -> (Role, String) {
        let b = Int(start / blockSize)
        guard b < bat.count else { return (.free, "beyond the BAT") }
        if bat[b] == VhdMetadata.unallocated {
            return vhd.parent != nil ? (.backing, "unallocated: read from the parent") : (.free, "unallocated (reads zeroes)")
        }
        return (.data, "block \(b) at host \(hex(UInt64(bat[b]) * 512 + meta.dynamic.bitmapSize))")
    }

    /// What the host range holds.
    public func hostCell(_ start: UInt64, _ length: UInt64) -> (Role, String) { hostMap.hostRegionCell(start, length) }

    /// Guest offset → BAT entry → host offset (the sector bitmap decides for differencing disks).
    public func mapGuest(_ offset: UInt64) -> (host: UInt64?, text: String) {
        let b = Int(offset / blockSize)
        guard b < bat.count else { return (nil, "beyond the BAT") }
        if bat[b] == VhdMetadata.unallocated { return (nil, "block \(b) → BAT[\(b)] unallocated") }
        let h = UInt64(bat[b]) * 512 + meta.dynamic.bitmapSize + offset % blockSize
        return (h, "block \(b) → BAT[\(b)] = sector \(bat[b]) → host \(hex(h))")
    }

    /// Decodes the BAT entry or names the region at a host offset.
    public func describeHost(_ offset: UInt64) -> String {
        let d = meta.dynamic
        if offset >= d.tableOffset && offset < d.tableOffset + UInt64(d.maxTableEntries) * 4 {
            return batRow(Int((offset - d.tableOffset) / 4)).0
        }
        return hostMap.hostRegionCell(offset, 1).1
    }

    /// Reads host bytes.
    public func readHost(at offset: UInt64, count: Int) -> [UInt8] { hostMap.readHostBytes(at: offset, count: count) }
}

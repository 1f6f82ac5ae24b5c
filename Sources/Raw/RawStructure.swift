import BlockIO
import BlockInspect

extension RawDisk: StructuredDisk {
    /// 64 KiB.
    public var structureUnit: UInt64 { 64 << 10 }

    /// No metadata: the whole file as one data region.
    public func hostRegions() -> [HostRegion] {
        [HostRegion(kind: .rawData, offset: 0, length: logicalSize, label: "raw data")]
    }

    /// Data and holes of the file (SEEK_DATA/SEEK_HOLE).
    public func walkStructure(progress: ((Double) -> Bool)?) throws(BlockError) -> HostUseMap {
        let regions = allocationExtents().map { e in HostRegion(kind: e.data ? .rawData : .rawHole, offset: e.offset, length: e.length) }
        _ = progress?(1)
        return HostUseMap(unit: 64 << 10, fileSize: logicalSize, regions: regions)
    }
}

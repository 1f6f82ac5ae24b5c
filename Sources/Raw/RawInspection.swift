import BlockIO

extension RawDisk: InspectableDisk {
    /// RAW extents from SEEK_DATA/SEEK_HOLE, as qemu-img map reports them (holes as zero).
    public func mapExtents() throws(BlockError) -> [MapExtent] {
        allocationExtents().map { e in
            MapExtent(start: e.offset, length: e.length, depth: 0, present: true, zero: !e.data, data: e.data, offset: e.offset)
        }
    }

    /// A raw image has no metadata: always clean.
    public func check(repair: RepairMode?) throws(BlockError) -> CheckReport {
        CheckReport()
    }
}

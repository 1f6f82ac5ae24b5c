import BlockIO
import BlockInspect
import Synchronization

extension Qcow2Disk {
    /// Where this image's backing chain holds data (nil without a backing file, or when its
    /// map cannot be read); built on first use and kept (the backing chain is never written).
    public var backingAllocation: BackingAllocation? {
        guard let backing else { return nil }
        return backingAllocationCache.withLock { (c: inout BackingAllocationSlot) -> BackingAllocation? in
            if !c.built { c.value = try? BackingAllocation(backing: backing); c.built = true }
            return c.value
        }
    }
}

/// The lazily built ``BackingAllocation`` a ``Qcow2Disk`` keeps.
struct BackingAllocationSlot {
    var built = false
    var value: BackingAllocation?
}

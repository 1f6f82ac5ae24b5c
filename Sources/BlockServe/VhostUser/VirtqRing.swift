import Synchronization

/// The device side of one split virtqueue in mapped guest memory: which available entries
/// were taken, the used ring it fills, and whether the driver wants an interrupt.
///
/// Owned by the thread that serves the queue. Loads of the driver's indexes are followed by
/// an acquire fence, used entries are published with a release fence before the index, and
/// the EVENT_IDX checks are preceded by a full fence, as the virtio memory model asks.
struct VirtqRing {
    let desc: UnsafeMutableRawPointer
    let avail: UnsafeMutableRawPointer
    let used: UnsafeMutableRawPointer
    /// Entries in the ring (a power of two up to 32768).
    let size: Int
    /// VIRTIO_RING_F_EVENT_IDX was negotiated.
    let eventIdx: Bool
    /// The next available entry to take (sent by SET_VRING_BASE, returned by GET_VRING_BASE).
    var lastAvail: UInt16
    /// The used index as last written.
    var usedIdx: UInt16
    /// The used index when the driver was last considered for an interrupt.
    var signalledUsed: UInt16
    /// Calls made and calls the driver's used_event (or NO_INTERRUPT) made unnecessary.
    var calls: UInt64 = 0
    var suppressed: UInt64 = 0
    /// With EVENT_IDX, entries taken at an index other than the avail_event this device
    /// published: the driver's kick rule asked no kick for them.
    var pastAvailEvent: UInt64 = 0

    /// Bytes each part needs for `size` entries (with EVENT_IDX's trailing fields).
    static func bytes(size: Int) -> (desc: Int, avail: Int, used: Int) {
        (16 * size, 6 + 2 * size, 6 + 8 * size)
    }

    init(desc: UnsafeMutableRawPointer, avail: UnsafeMutableRawPointer, used: UnsafeMutableRawPointer, size: Int, eventIdx: Bool, base: UInt16) {
        self.desc = desc
        self.avail = avail
        self.used = used
        self.size = size
        self.eventIdx = eventIdx
        self.lastAvail = base
        // The used index continues from what the driver sees (after a restart both agree).
        let u = UInt16(littleEndian: used.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        self.usedIdx = u
        self.signalledUsed = u
    }

    /// The driver's available index (acquire: entries up to it are visible afterwards).
    func availIndex() -> UInt16 {
        let v = UInt16(littleEndian: avail.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        atomicMemoryFence(ordering: .acquiring)
        return v
    }

    /// Entries the driver has made available and the device has not taken.
    func pendingCount() -> Int { Int(availIndex() &- lastAvail) }

    /// Takes the next available head, or nil when there is none. A driver that claims more
    /// than `size` pending entries is reported through `overrun`.
    mutating func nextHead(overrun: inout Bool) -> UInt16? {
        let n = availIndex() &- lastAvail
        if n == 0 { return nil }
        if Int(n) > size { overrun = true; return nil }
        let slot = Int(lastAvail) % size
        if eventIdx && UInt16(littleEndian: used.loadUnaligned(fromByteOffset: 4 + 8 * size, as: UInt16.self)) != lastAvail { pastAvailEvent += 1 }
        let head = UInt16(littleEndian: avail.loadUnaligned(fromByteOffset: 4 + 2 * slot, as: UInt16.self))
        lastAvail &+= 1
        return head
    }

    /// Writes a used entry (not yet visible to the driver: see ``publish()``).
    mutating func addUsed(head: UInt16, length: UInt32) {
        let slot = Int(usedIdx) % size
        used.storeBytes(of: UInt32(head).littleEndian, toByteOffset: 4 + 8 * slot, as: UInt32.self)
        used.storeBytes(of: length.littleEndian, toByteOffset: 8 + 8 * slot, as: UInt32.self)
        usedIdx &+= 1
    }

    /// Makes the used entries written so far visible (release, then the index).
    func publish() {
        atomicMemoryFence(ordering: .releasing)
        used.storeBytes(of: usedIdx.littleEndian, toByteOffset: 2, as: UInt16.self)
    }

    /// With EVENT_IDX, tells the driver to kick once it makes entry `lastAvail` available
    /// (the used ring's avail_event); returns whether entries arrived meanwhile, which the
    /// caller must then take (a kick for them may never come).
    func armKick() -> Bool {
        guard eventIdx else { return false }
        used.storeBytes(of: lastAvail.littleEndian, toByteOffset: 4 + 8 * size, as: UInt16.self)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        return availIndex() != lastAvail
    }

    /// Whether the driver wants an interrupt for the entries published since the last
    /// check: with EVENT_IDX when the used index passed its used_event, else unless it set
    /// VRING_AVAIL_F_NO_INTERRUPT. Counts the call or the suppression.
    mutating func needsCall() -> Bool {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        let old = signalledUsed, new = usedIdx
        if old == new { return false }
        signalledUsed = new
        let want: Bool
        if eventIdx {
            let event = UInt16(littleEndian: avail.loadUnaligned(fromByteOffset: 4 + 2 * size, as: UInt16.self))
            want = (new &- event &- 1) < (new &- old)
        } else {
            want = UInt16(littleEndian: avail.loadUnaligned(fromByteOffset: 0, as: UInt16.self)) & Virtq.availNoInterrupt == 0
        }
        if want { calls += 1 } else { suppressed += 1 }
        return want
    }
}

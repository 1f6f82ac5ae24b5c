/// The vhost fuzz target's way into a virtqueue: serve one ring laid out in memory the
/// caller owns, exactly as a connection serves a guest's (the chain walk, request framing,
/// bounds checks, engine operations on `export`'s disk, used ring and EVENT_IDX), then
/// stop it. Nothing in blockscope calls it.
@_spi(Fuzzing)
public enum VhostUserFuzzing {
    /// Serves the ring of `size` entries whose parts sit at the VMM addresses `desc`,
    /// `avail` and `used` of `memory` until no available entry is left, waits for every
    /// request and stops the ring. Returns the sentence a connection would have ended with,
    /// or nil. `features` are the negotiated virtio bits (INDIRECT_DESC, EVENT_IDX).
    public static func serveRing(memory: GuestMemory, export: VhostUserBlkExport, size: Int, desc: UInt64, avail: UInt64, used: UInt64,
                                 features: UInt64) -> String? {
        let q = VhostUserVirtqueue(index: 0, export: export)
        q.size = size
        q.address = VhostUserVringAddress(index: 0, flags: 0, descriptor: desc, used: used, available: avail)
        q.enabled = true
        if let e = q.start(memory: memory, eventIdx: features & VhostUser.Feature.eventIdx != 0) { return e }
        let e = q.process(memory: memory, indirect: features & VhostUser.Feature.indirectDesc != 0, log: { _ in })
        _ = q.stop()
        return e
    }

    /// Runs a restarted back end's recovery over one queue's inflight region held in
    /// `region` (the front end's memory, so any bytes): finishes the last batch against the
    /// ring's used index `ringUsed` and returns the heads to serve again, oldest first.
    /// `region` must hold at least 16 + 16 × `size` bytes.
    public static func recoverInflight(region: UnsafeMutableRawBufferPointer, size: Int, ringUsed: UInt16) -> [UInt16] {
        precondition(region.count >= VhostUserInflight.headerBytes + VhostUserInflight.entryBytes * size)
        var q = InflightQueue(base: region.baseAddress!, size: size)
        return q.recover(ringUsed: ringUsed)
    }
}

import BlockIO

/// What a watched virtqueue (the TUI's `--serve vhost-user:`) tells the views beyond the
/// engine's own events: each held request's descriptor chain, and the stages of a request
/// the engine does not see, published as events through the queue's sink (the step gate), so
/// step mode stops a guest's request at each of them.
///
/// Chains are kept only for a queue with a front-end record (an in-flight registry), stage
/// events only with an event sink (``VhostUserBlkExport/eventSink``); a plain `serve` pays a
/// nil check or two per request.
extension VhostUserVirtqueue {
    /// Publishes stage `s` of the request under head `h` (its id is the engine's `userData`).
    func stage(_ s: VirtqStage, _ h: Int, _ value: UInt32) {
        export.eventSink?.publish(IoEvent(queue: Int32(export.queueIDBase + index), request: tag(h),
                                          .virtqueue(stage: s, head: UInt16(truncatingIfNeeded: h), value: value)))
    }

    /// Request `h`'s chain was taken from the avail ring (a watched queue: with a front-end
    /// record): its descriptors are published with the ring first, so a step held here
    /// already shows the chain, then the stage (with an event sink).
    func popped(_ h: Int, _ chain: DescriptorChain) {
        slots[h].segments = chain.segments ?? []
        publishRing()
        stage(.popped, h, UInt32(chain.descriptors))
    }

    /// The chains of the requests held now (taken and not yet in the used ring), by head.
    func heldChains() -> [VirtqChain] {
        var out: [VirtqChain] = []
        for h in slots.indices { if let s = slots[h].segments { out.append(VirtqChain(head: UInt16(h), userData: tag(h), segments: s)) } }
        return out
    }
}

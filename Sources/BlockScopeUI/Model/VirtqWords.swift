import BlockCore

/// A virtqueue request's path in plain words, for step mode and the event log: the six
/// stages (chain popped from the avail ring → request decoded → SQEs submitted → CQEs → used
/// ring entry written → call, or none by EVENT_IDX), where an event puts the request and
/// what happens next. The stages outside the engine come as ``IoEventPayload/virtqueue(stage:head:value:)``
/// events from the vhost-user server; the engine's own events on a virtqueue's queue get
/// the stage they stand for (``engineStage(_:)``).
package enum VirtqWords {
    /// The virtio-blk request type's name (VIRTIO_BLK_T_*).
    package static func typeName(_ t: UInt32) -> String {
        switch t {
        case 0: return "IN (read)"
        case 1: return "OUT (write)"
        case 4: return "FLUSH"
        case 8: return "GET_ID"
        case 11: return "DISCARD"
        case 13: return "WRITE_ZEROES"
        default: return "type \(t)"
        }
    }

    /// A stage event of request head `head`, with what happens next.
    package static func stage(_ s: VirtqStage, head: UInt16, value: UInt32) -> String {
        switch s {
        case .popped:
            return "virtqueue stage 1/6: head \(head)'s chain of \(value) descriptor\(value == 1 ? "" : "s") popped from the avail ring; next: its request header is decoded"
        case .decoded where value == .max:
            return "virtqueue stage 2/6: head \(head)'s request refused (bad header, type or range: answered IOERR or UNSUPP, see the server log); next: its status byte and used ring entry are written"
        case .decoded:
            let next: String
            switch value {
            case 8: next = "the serial is copied into the guest's buffer, then the used ring entry is written"
            case 4: next = "the engine accepts it and submits the fsync SQE"
            default: next = "the engine accepts it and submits SQEs that move the data in guest memory in place"
            }
            return "virtqueue stage 2/6: head \(head) decoded as \(typeName(value)); next: \(next)"
        case .usedWritten:
            return "virtqueue stage 5/6: head \(head)'s status byte and used ring entry written (used length \(value)) and published; next: the guest is called unless EVENT_IDX's used_event says it needs no interrupt"
        case .called:
            return "virtqueue stage 6/6: call (interrupt) sent to the guest, used index now \(value); next: its driver reads the used ring and completes the request"
        case .callSuppressed:
            return "virtqueue stage 6/6: call suppressed, used index now \(value): the guest's used_event (EVENT_IDX) or NO_INTERRUPT asks no interrupt; its driver finds the entry when it next looks at the used ring"
        }
    }

    /// Where an engine event puts a virtqueue request among the six stages, and what happens
    /// next; nil for events that are not a request's step (a CQ drain).
    package static func engineStage(_ e: IoEvent) -> String? {
        switch e.payload {
        case .guestRequest:
            return "virtqueue stage 3/6 begins: the engine accepted the request; next: its mapping, then SQEs on guest memory"
        case .mappingResolved, .regionBefore, .allocated, .tableUpdate, .copyOnWrite, .pendingCreated, .fsyncPhase:
            return "virtqueue stage 3/6: the engine prepares the request; next: its SQEs"
        case .sqeSubmitted:
            return "virtqueue stage 3/6: SQE submitted, the kernel moves the data to or from guest memory; next: its CQE"
        case .cqeReaped, .pendingFinished:
            return "virtqueue stage 4/6: CQE reaped; next: once the request's last CQE is in, its used ring entry is written"
        case .guestCompleted:
            return "virtqueue stage 4/6: the engine completed the request; next: its status byte and used ring entry are written"
        case .cqDrain, .virtqueue:
            return nil
        }
    }
}

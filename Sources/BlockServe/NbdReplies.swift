import BlockIO
#if canImport(Glibc)
import Glibc
#endif

/// Completions and replies of ``NbdTransmission``: a request's sub-operations finish (a FUA
/// request's flush runs inside it, in the queue), the reply header is written into the slot's header space and
/// the reply joins the batch that ``flushOutput()`` sends with one `sendmsg`.
extension NbdTransmission {
    /// Collects every finished ring request without blocking.
    func reapCompletions() {
        while let c = queue.nextCompletion() {
            let s = Int(c.userData & 0xffff_ffff)
            guard s < slots.count, UInt32(truncatingIfNeeded: c.userData >> 32) == slots[s].generation, slots[s].pending > 0 else { continue }
            if let e = c.error, slots[s].error == 0 { slots[s].error = Nbd.ErrorCode(errno: e.errno).rawValue }
            slots[s].pending -= 1
            if slots[s].pending == 0 { finish(s) }
        }
    }

    /// Every sub-operation of slot `s` is done (a FUA request's flush included: the queue
    /// runs it inside the request, ``AsyncIo/forceUnitAccess(userData:)``): reply.
    func finish(_ s: Int) {
        queueReply(s)
    }

    /// Writes slot `s`'s reply header and adds the reply to the outgoing batch.
    func queueReply(_ s: Int) {
        if slots[s].mutation {
            slots[s].mutation = false
            export.allocation.endMutation()
        }
        let r = slots[s].request
        let st = export.stats
        let err = slots[s].error
        if err != 0 {
            st.errors.add(1, ordering: .relaxed)
        } else {
            switch r.command {
            case .read?:
                st.reads.add(1, ordering: .relaxed)
                st.readBytes.add(UInt64(r.length), ordering: .relaxed)
            case .write?:
                st.writes.add(1, ordering: .relaxed)
                st.writeBytes.add(UInt64(r.length), ordering: .relaxed)
            default:
                st.others.add(1, ordering: .relaxed)
            }
        }
        st.latencyNs.add(monotonicNanos() &- slots[s].start, ordering: .relaxed)
        answered += 1
        if socketDead { frontEnd?.forget(tag(s)); release(s); return }

        let h = headers + s * Self.headerSize
        let structured = negotiated.structuredReplies
        var headerBytes = 16
        var data = 0
        if structured && err != 0 && (r.command == .read || r.command == .blockStatus || r.command == nil) {
            // NBD_REPLY_TYPE_ERROR with an empty message.
            chunk(h, r.handle, .error, 6)
            NbdStore.u32(h, 20, err)
            NbdStore.u16(h, 24, 0)
            headerBytes = 26
        } else if structured && r.command == .read {
            if r.length == 0 {
                chunk(h, r.handle, .none, 0)
                headerBytes = 20
            } else {
                chunk(h, r.handle, .offsetData, 8 + r.length)
                NbdStore.u64(h, 20, r.offset)
                headerBytes = 28
                data = slots[s].replyBytes
            }
        } else if structured && r.command == .blockStatus {
            chunk(h, r.handle, .blockStatus, UInt32(slots[s].replyBytes))
            headerBytes = 20
            data = slots[s].replyBytes
        } else {
            NbdStore.u32(h, 0, Nbd.simpleReplyMagic)
            NbdStore.u32(h, 4, err)
            NbdStore.u64(h, 8, r.handle)
            if r.command == .read && err == 0 { data = slots[s].replyBytes }
        }
        outIov.append(iovec(iov_base: h, iov_len: headerBytes))
        if data > 0 { outIov.append(iovec(iov_base: slots[s].buffer.baseAddress!, iov_len: data)) }
        outSlots.append(s)
    }

    private func chunk(_ h: UnsafeMutableRawPointer, _ handle: UInt64, _ type: Nbd.ChunkType, _ length: UInt32) {
        NbdStore.u32(h, 0, Nbd.structuredReplyMagic)
        NbdStore.u16(h, 4, Nbd.replyFlagDone)
        NbdStore.u16(h, 6, type.rawValue)
        NbdStore.u64(h, 8, handle)
        NbdStore.u32(h, 16, length)
    }

    /// Sends the batch of replies, then frees their slots. A send failure marks the socket
    /// dead: the connection drains its in-flight requests and ends.
    func flushOutput() {
        if outSlots.isEmpty { return }
        if !socketDead {
            let n = outIov.count
            do {
                try outIov.withUnsafeMutableBufferPointer { (b) throws(NbdConnectionError) in try socket.writeAll(b.baseAddress!, count: n) }
                frontEnd?.replied(outSlots.lazy.map { (userData: self.tag($0), receivedNs: self.slots[$0].start) }, sentNs: monotonicNanos())
            } catch {
                socketDead = true
                closing = closing ?? "client vanished while replies were sent (\(error.description))"
            }
        }
        outIov.removeAll(keepingCapacity: true)
        if socketDead, let frontEnd { for s in outSlots { frontEnd.forget(tag(s)) } }
        for s in outSlots { release(s) }
        outSlots.removeAll(keepingCapacity: true)
    }

    /// Returns slot `s` to the free list, dropping a per-request buffer.
    func release(_ s: Int) {
        if let t = slots[s].transient {
            transientBytes -= t.count
            slots[s].transient = nil
        }
        slots[s].generation &+= 1
        freeSlots.append(s)
        releasedSinceParse = true
    }
}

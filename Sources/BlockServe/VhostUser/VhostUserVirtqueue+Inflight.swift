/// Serving again, after a back-end restart, the requests a previous back end had taken
/// (INFLIGHT_SHMFD; the region's layout and store order are in ``VhostUserInflight``).
extension VhostUserVirtqueue {
    /// Attaches queue `index`'s part of `region` to the ring just started, and serves again
    /// every head still marked in flight, oldest first. The next available entry becomes
    /// the used index plus the number of those heads: the front end, which saw the old back
    /// end die, sets the ring's base to its used index, and the entries between were taken.
    ///
    /// A region that does not fit the ring is one log line and the ring runs untracked. A
    /// marked head whose chain cannot be served is unmarked (so a reconnecting front end does
    /// not meet it again) and ends the connection as it would have the first time.
    func resume(region: VhostUserInflight, memory: GuestMemory, indirect: Bool, log: (String) -> Void) -> String? {
        guard ring != nil else { return nil }
        var t: InflightQueue
        switch region.queue(index, ringSize: size) {
        case let .failure(e):
            log("queue \(index): \(e.description): requests on it are not tracked")
            inflight = nil
            return nil
        case let .success(q):
            t = q
        }
        let heads = t.recover(ringUsed: ring!.usedIdx)
        inflight = t
        ring!.lastAvail = ring!.usedIdx &+ UInt16(truncatingIfNeeded: heads.count)
        guard !heads.isEmpty else { return nil }
        log("queue \(index): serving again \(heads.count) request\(heads.count == 1 ? "" : "s") a previous back end had taken (heads \(heads.map(String.init).joined(separator: " ")))")
        for head in heads {
            let h = Int(head)
            if slots[h].busy { return "queue \(index): the inflight region marks head \(head) twice" }
            requests += 1
            switch DescriptorChain.walk(memory: memory, table: ring!.desc, size: size, head: head, indirect: indirect) {
            case let .failure(e):
                t.unmark(h)
                return "queue \(index): in-flight head \(head): \(e.description)"
            case let .success(chain):
                if let e = begin(h, chain, log: log) { t.unmark(h); return e }
            }
        }
        if needSubmit, let q = queue {
            needSubmit = false
            do { _ = try q.submit() } catch { return "queue \(index): io_uring submit failed: \(error.description)" }
        }
        publishRing()
        return nil
    }
}

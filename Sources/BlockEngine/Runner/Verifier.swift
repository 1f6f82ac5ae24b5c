import BlockIO

/// Reads back blocks written with `verify` and checks their headers and checksums.
package enum Verifier {
    /// Checks every block in `blocks` (guest offset -> (length, seeds that wrote it)) through
    /// one queue of depth `depth`, in offset order. Returns how many blocks were checked;
    /// throws at the first bad block, naming its offset and the expected and found checksums.
    public static func verify(disk: any DiskFile, blocks: [UInt64: (UInt64, Set<UInt64>)], queueID: Int,
                              depth: Int = 32, engine: EngineKind = .auto) throws(BlockError) -> UInt64 {
        var reads = DirectionStats()
        return try verify(disk: disk, blocks: blocks, queueID: queueID, depth: depth, engine: engine, reads: &reads)
    }

    /// ``verify(disk:blocks:queueID:depth:engine:)`` for one job's blocks, recording each
    /// read-back (completion latency, bytes) in `reads`, as fio counts its verify phase as
    /// reads. `kind`, `interval` and `pattern` are the job's `verify`, `verify_interval` and
    /// `verify_pattern`.
    public static func verify(disk: any DiskFile, blocks: [UInt64: (UInt64, Set<UInt64>)], queueID: Int,
                              depth: Int = 32, engine: EngineKind = .auto, kind: VerifyKind = .crc32c,
                              interval: UInt64? = nil, pattern: [UInt8]? = nil,
                              reads: inout DirectionStats) throws(BlockError) -> UInt64 {
        if blocks.isEmpty { return 0 }
        let offsets = blocks.keys.sorted()
        let maxLen = Int(blocks.values.map { $0.0 }.max() ?? 4096)
        let queue = try disk.makeQueue(QueueOptions(depth: depth, queueID: queueID, engine: engine))
        defer { queue.close() }
        let buffers = (0..<depth).map { _ in AlignedBuffer(count: maxLen) }
        var free = Array(0..<depth)
        var slotOffset = [UInt64](repeating: 0, count: depth)
        var slotStart = [UInt64](repeating: 0, count: depth)
        var next = 0
        var inFlight = 0
        var checked: UInt64 = 0
        var failure: BlockError?
        while (next < offsets.count && failure == nil) || inFlight > 0 {
            while failure == nil && next < offsets.count, let s = free.popLast() {
                let off = offsets[next]
                let len = Int(blocks[off]!.0)
                slotOffset[s] = off
                slotStart[s] = monotonicNanos()
                try queue.read(at: off, into: UnsafeMutableRawBufferPointer(rebasing: buffers[s].bytes[0..<len]), userData: UInt64(s))
                next += 1
                inFlight += 1
            }
            try queue.submit()
            var got = false
            while let c = queue.nextCompletion() {
                got = true
                let s = Int(c.userData)
                inFlight -= 1
                free.append(s)
                if let e = c.error { if failure == nil { failure = e }; continue }
                let off = slotOffset[s]
                let (len, seeds) = blocks[off]!
                reads.record(latencyNs: monotonicNanos() &- slotStart[s], bytes: len)
                if failure == nil,
                   let e = BlockPattern.checkBlock(UnsafeRawBufferPointer(rebasing: buffers[s].bytes[0..<Int(len)]), offset: off, seeds: seeds,
                                                   kind: kind, interval: interval, pattern: pattern, path: disk.path) {
                    failure = e
                }
                checked += 1
            }
            if !got && inFlight > 0 { try queue.waitForCompletion() }
        }
        if let failure { throw failure }
        return checked
    }
}

import BlockIO

/// Streams a guest range in order through an async queue, keeping several reads in flight.
///
/// Used by `cat` and by verification: chunks are read concurrently (depth `depth`) and
/// handed to `sink` strictly in guest order.
package enum GuestStreamer {
    /// Reads `[offset, offset+length)` in `chunk`-byte requests, `depth` at a time, calling
    /// `sink` with each chunk's bytes in order.
    public static func stream(disk: any DiskFile, engine: EngineKind = .auto, offset: UInt64, length: UInt64,
                              chunk: Int = 1 << 20, depth: Int = 8,
                              sink: (UnsafeRawBufferPointer) throws(BlockError) -> Void) throws(BlockError) {
        let queue = try disk.makeQueue(QueueOptions(depth: depth, queueID: 0, engine: engine))
        defer { queue.close() }
        let buffers = (0..<depth).map { _ in AlignedBuffer(count: chunk) }
        var lengths = [Int](repeating: 0, count: depth)
        var done = [Bool](repeating: false, count: depth)
        var nextIssue: UInt64 = 0       // chunk index to issue next
        var nextEmit: UInt64 = 0        // chunk index to emit next
        let chunks = (length + UInt64(chunk) - 1) / UInt64(chunk)
        func issue() throws(BlockError) {
            while nextIssue < chunks && nextIssue < nextEmit + UInt64(depth) {
                let slot = Int(nextIssue % UInt64(depth))
                let off = offset + nextIssue * UInt64(chunk)
                let len = Int(min(UInt64(chunk), offset + length - off))
                lengths[slot] = len
                done[slot] = false
                try queue.read(at: off, into: UnsafeMutableRawBufferPointer(rebasing: buffers[slot].bytes[0..<len]), userData: nextIssue)
                nextIssue += 1
            }
            try queue.submit()
        }
        try issue()
        while nextEmit < chunks {
            while let c = queue.nextCompletion() {
                if let e = c.error { throw e }
                done[Int(c.userData % UInt64(depth))] = true
            }
            var progressed = false
            while nextEmit < chunks && done[Int(nextEmit % UInt64(depth))] {
                let slot = Int(nextEmit % UInt64(depth))
                done[slot] = false
                try sink(UnsafeRawBufferPointer(rebasing: buffers[slot].bytes[0..<lengths[slot]]))
                nextEmit += 1
                progressed = true
            }
            if progressed { try issue() } else { try queue.waitForCompletion() }
        }
    }
}

/// The exact completion figures of one queue, counted by its ``QueueCore`` as each
/// completion is handed back (under the queue's registry lock, which that step takes
/// anyway): unlike the event stream, nothing here is ever dropped.
public struct QueueFigures: Sendable, Equatable {
    /// Requests completed (handed back by ``AsyncIo/nextCompletion()``), failed ones included.
    public var completed: UInt64 = 0
    /// Requests that completed with an error.
    public var errors: UInt64 = 0
    /// Completed reads, writes, flushes, write-zeroes and discards.
    public var reads: UInt64 = 0, writes: UInt64 = 0, flushes: UInt64 = 0, zeroes: UInt64 = 0, discards: UInt64 = 0
    /// Bytes of successful reads and writes (zeroes and discards move no data and are not
    /// counted here, as fio counts trims apart).
    public var readBytes: UInt64 = 0, writeBytes: UInt64 = 0
    /// Engine time: from the queue's acceptance of a request to the hand-back of its
    /// completion (time held at a step gate included).
    package var engine = LatencyHistogram()
    /// End to end, for a front end's queue (``FrontEndQueue``): from the instant the request
    /// was read from the client to the instant its reply was sent. Empty for other queues.
    package var endToEnd = LatencyHistogram()

    /// No completions yet.
    public init() {}

    /// Requests of direction read (reads only).
    public var readOps: UInt64 { reads }
    /// Requests that change data: writes, write-zeroes and discards.
    public var writeOps: UInt64 { writes &+ zeroes &+ discards }

    /// Counts one completion of a request of kind `op` (nil when the queue did not know
    /// it), `bytes` long (0 when it failed), after `latencyNs` in the engine.
    @inline(__always)
    package mutating func record(_ op: GuestOp?, bytes: Int, failed: Bool, latencyNs: UInt64) {
        completed &+= 1
        if failed { errors &+= 1 }
        switch op {
        case .read?: reads &+= 1; readBytes &+= UInt64(bytes)
        case .write?: writes &+= 1; writeBytes &+= UInt64(bytes)
        case .fsync?: flushes &+= 1
        case .zero?: zeroes &+= 1
        case .discard?: discards &+= 1
        case nil: break
        }
        engine.record(latencyNs)
    }

    /// Adds another queue's figures (queues folded together once closed).
    public mutating func merge(_ o: QueueFigures) {
        completed &+= o.completed; errors &+= o.errors
        reads &+= o.reads; writes &+= o.writes; flushes &+= o.flushes; zeroes &+= o.zeroes; discards &+= o.discards
        readBytes &+= o.readBytes; writeBytes &+= o.writeBytes
        engine.merge(o.engine); endToEnd.merge(o.endToEnd)
    }
}

/// One queue of an ``InFlightRegistry`` and its figures, as ``InFlightRegistry/queues()``
/// returns them: the open queues and those closed since the registry was made.
public struct QueueStatus: Sendable, Equatable {
    /// The queue's ID (as in its events and ``OutstandingRequest/queue``); IDs are reused
    /// by later queues, ``serial`` is not.
    public var queue: Int
    /// A number unique to this queue in its registry, in the order queues joined it
    /// (-1 for the row that folds the oldest closed queues together).
    public var serial: Int
    /// What the queue is: `nbd 1 unix`, `job w #0`, `prompt` (see ``QueueOptions/label``).
    public var name: String
    /// The name of a front end's per-request tag (`cookie` for NBD), nil for other queues.
    public var clientTagName: String?
    /// Whether the queue is still open.
    public var open: Bool
    /// Its exact figures.
    public var figures: QueueFigures
    /// A virtqueue's ring as its front end last published it (vhost-user), else nil.
    public var ring: FrontEndQueue.Ring? = nil

    /// A row as the registry builds it (and tests of the views that draw it).
    package init(queue: Int, serial: Int, name: String, clientTagName: String? = nil, open: Bool, figures: QueueFigures, ring: FrontEndQueue.Ring? = nil) {
        self.queue = queue
        self.serial = serial
        self.name = name
        self.clientTagName = clientTagName
        self.open = open
        self.figures = figures
        self.ring = ring
    }
}

import Synchronization

/// A queue fed by a front end that serves clients (an NBD connection; later a vhost-user
/// virtqueue): who the client is and, per request, the client's own tag and the instant the
/// request was read, so the in-flight registry and the queue's figures show a served request
/// as the client sees it. Give it to the queue with ``QueueOptions/frontEnd``.
///
/// The front end calls ``origin(clientTag:receivedNs:)`` on the queue's thread before it
/// queues a request; the queue reads it at acceptance (two relaxed atomic loads, only when
/// it has a registry). After sending replies it calls ``replied(receivedNs:sentNs:)``.
public final class FrontEndQueue: Sendable {
    /// The client as the views name its queue: `nbd 1 unix`, `nbd 2 127.0.0.1:51234`.
    public let client: String
    /// What the client calls its per-request tag (`cookie` for NBD).
    public let tagName: String
    private let tag = Atomic<UInt64>(0)
    private let received = Atomic<UInt64>(0)
    private let latencies = Mutex(LatencyHistogram())

    /// Describes a front end's queue for `client`, whose requests carry a `tagName`.
    public init(client: String, tagName: String) {
        self.client = client
        self.tagName = tagName
    }

    /// Says where the requests queued next on this queue come from: the client's tag and
    /// when the request was read (monotonic ns). Call on the queue's thread.
    @inline(__always)
    public func origin(clientTag: UInt64, receivedNs: UInt64) {
        tag.store(clientTag, ordering: .relaxed)
        received.store(receivedNs, ordering: .relaxed)
    }

    /// The origin last set (read by the queue at acceptance, on the same thread).
    var current: (tag: UInt64, receivedNs: UInt64) {
        (tag.load(ordering: .relaxed), received.load(ordering: .relaxed))
    }

    /// Records the end-to-end latency of replies sent at `sentNs` to requests read at each
    /// of `receivedNs` (one lock for the batch).
    public func replied<S: Sequence<UInt64>>(receivedNs: S, sentNs: UInt64) {
        latencies.withLock { h in for r in receivedNs { h.record(sentNs > r ? sentNs - r : 0) } }
    }

    /// The end-to-end latencies recorded so far.
    public var endToEnd: LatencyHistogram { latencies.withLock { $0 } }
}

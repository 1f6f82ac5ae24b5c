import Synchronization

/// A queue fed by a front end that serves clients (an NBD connection; later a vhost-user
/// virtqueue): who the client is and, per request, the client's own tag and the instant the
/// request was read, so the in-flight registry and the queue's figures show a served request
/// as the client sees it. Give it to the queue with ``QueueOptions/frontEnd`` (with a registry).
///
/// The front end calls ``origin(clientTag:receivedNs:)`` on the queue's thread before it
/// queues a request; the queue reads it at acceptance (two relaxed atomic loads). A served
/// request stays in the registry after the queue hands its completion back (marked
/// ``OutstandingRequest/handedBackNs``) until the front end has sent its reply and says so
/// with ``replied(_:sentNs:)`` (one lock per batch of replies, which also records their
/// end-to-end latency) or gives up on it with ``forget(_:)``: what the client waits for.
public final class FrontEndQueue: Sendable {
    /// The client as the views name its queue: `nbd 1 unix`, `nbd 2 127.0.0.1:51234`.
    public let client: String
    /// What the client calls its per-request tag (`cookie` for NBD).
    public let tagName: String
    private let tag = Atomic<UInt64>(0)
    private let received = Atomic<UInt64>(0)
    private let table = Mutex<InFlightRegistry.Table?>(nil)
    private let ringState = Mutex<Ring?>(nil)

    /// A virtqueue's split ring as its front end (a vhost-user server) last published it:
    /// the views show ring occupancy and notifications beside the queue's figures.
    public struct Ring: Sendable, Equatable {
        /// Entries in the ring.
        public var size: Int
        /// The driver's available index as last read (wraps at 65536).
        public var availIndex: UInt16
        /// The used index as last published (wraps at 65536).
        public var usedIndex: UInt16
        /// Requests taken from the ring and not yet in the used ring.
        public var inFlight: Int
        /// Kicks (driver → device notifications) received, since the connection began.
        public var kicks: UInt64
        /// Calls (device → driver interrupts) sent.
        public var calls: UInt64
        /// Calls left out because the driver did not want them (EVENT_IDX's used_event,
        /// or VRING_AVAIL_F_NO_INTERRUPT).
        public var suppressed: UInt64
        /// Descriptor chains taken (requests).
        public var chains: UInt64
        /// The next avail entry the device will take (its last_avail_idx).
        public var lastAvail: UInt16 = 0
        /// Whether VIRTIO_RING_F_EVENT_IDX was negotiated.
        public var eventIdx = false
        /// Chains taken at an avail index past the avail_event the device had published:
        /// by EVENT_IDX's rule the driver needed no kick for them.
        public var pastAvailEvent: UInt64 = 0
        /// The chains of the requests in flight, by head (only while watched).
        public var held: [VirtqChain] = []

        /// A ring state from its parts.
        public init(size: Int, availIndex: UInt16, usedIndex: UInt16, inFlight: Int, kicks: UInt64, calls: UInt64, suppressed: UInt64, chains: UInt64) {
            self.size = size
            self.availIndex = availIndex
            self.usedIndex = usedIndex
            self.inFlight = inFlight
            self.kicks = kicks
            self.calls = calls
            self.suppressed = suppressed
            self.chains = chains
        }
    }

    /// Publishes the ring's state (one uncontended lock; the front end calls it once per
    /// batch of used entries, only when it has a registry).
    package func publish(_ ring: Ring) { ringState.withLock { $0 = ring } }

    /// The ring's state as last published, nil for a front end without rings (NBD).
    public var ring: Ring? { ringState.withLock { $0 } }

    /// Describes a front end's queue for `client`, whose requests carry a `tagName`.
    public init(client: String, tagName: String) {
        self.client = client
        self.tagName = tagName
    }

    /// Says where the requests queued next on this queue come from: the client's tag and
    /// when the request was read (monotonic ns). Call on the queue's thread.
    @inline(__always)
    package func origin(clientTag: UInt64, receivedNs: UInt64) {
        tag.store(clientTag, ordering: .relaxed)
        received.store(receivedNs, ordering: .relaxed)
    }

    /// The origin last set (read by the queue at acceptance, on the same thread).
    package var current: (tag: UInt64, receivedNs: UInt64) {
        (tag.load(ordering: .relaxed), received.load(ordering: .relaxed))
    }

    /// Binds the registry table of the queue this front end feeds (at the queue's creation).
    package func attach(_ t: InFlightRegistry.Table) { table.withLock { $0 = t } }

    /// Replies to the requests queued under each `userData` (read at `receivedNs`) were sent
    /// at `sentNs`: they leave the registry and their end-to-end latency is recorded.
    package func replied<S: Sequence<(userData: UInt64, receivedNs: UInt64)>>(_ replies: S, sentNs: UInt64) {
        guard let t = table.withLock({ $0 }) else { return }
        t.state.withLock { st in
            for r in replies {
                st.entries.removeValue(forKey: r.userData)
                st.figures.endToEnd.record(sentNs > r.receivedNs ? sentNs - r.receivedNs : 0)
            }
        }
    }

    /// The request queued under `userData` will get no reply (the client is gone): it
    /// leaves the registry.
    package func forget(_ userData: UInt64) {
        guard let t = table.withLock({ $0 }) else { return }
        _ = t.state.withLock { $0.entries.removeValue(forKey: userData) }
    }
}

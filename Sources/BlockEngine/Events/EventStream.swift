import BlockIO
import Synchronization

/// A bounded single-producer, single-consumer ring of ``IoEvent``s: the buffer of one queue.
///
/// The producer is the queue's own thread (the one that calls ``push(_:)``); the consumer
/// is whoever holds the stream's ``EventSubscription``. Pushing never blocks and never
/// allocates: when the ring is full the event is dropped and ``lost`` grows. Capacity is a
/// power of two. Slots hold trivially copyable values, so no deinitialisation is needed.
package final class EventRing: @unchecked Sendable {
    /// Number of slots (a power of two).
    public let capacity: Int
    private let mask: Int
    private let slots: UnsafeMutablePointer<IoEvent>
    // Producer side: the published head and private copies, so a push costs one acquire
    // load only when the ring looks full. Padding keeps the consumer's `tail` on another
    // cache line (stored properties of a final class are laid out in declaration order).
    private var producerHead = 0
    private var cachedTail = 0
    /// Next slot the producer writes (published with release ordering).
    private let head = Atomic<Int>(0)
    private let lostCount = Atomic<UInt64>(0)
    private let pad0: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    /// Next slot the consumer reads (published with release ordering).
    private let tail = Atomic<Int>(0)
    private let pad1: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)

    /// Creates a ring with at least `capacity` slots (rounded up to a power of two).
    public init(capacity: Int) {
        var c = 2
        while c < capacity { c <<= 1 }
        self.capacity = c
        self.mask = c - 1
        self.slots = UnsafeMutablePointer<IoEvent>.allocate(capacity: c)
    }

    deinit { slots.deallocate() }

    /// Appends `event`, or counts it as lost when the ring is full. Producer thread only.
    @inline(__always)
    public func push(_ event: IoEvent) {
        let h = producerHead
        if h &- cachedTail >= capacity {
            cachedTail = tail.load(ordering: .acquiring)
            if h &- cachedTail >= capacity {
                lostCount.wrappingAdd(1, ordering: .relaxed)
                return
            }
        }
        (slots + (h & mask)).initialize(to: event)
        producerHead = h &+ 1
        head.store(h &+ 1, ordering: .releasing)
    }

    /// Hands up to `max` buffered events to `body` in publication order. Consumer thread only.
    @discardableResult
    public func drain(max: Int = .max, _ body: (IoEvent) -> Void) -> Int {
        let t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        let n = Swift.min(h &- t, max)
        if n <= 0 { return 0 }
        for i in 0..<n { body(slots[(t &+ i) & mask]) }
        tail.store(t &+ n, ordering: .releasing)
        return n
    }

    /// Drops everything buffered (consumer side), e.g. when a new subscriber attaches.
    public func discardBuffered() {
        tail.store(head.load(ordering: .acquiring), ordering: .releasing)
    }

    /// Events dropped because the ring was full.
    public var lost: UInt64 { lostCount.load(ordering: .relaxed) }

    /// Events buffered and not yet drained (approximate while the producer runs).
    public var buffered: Int { head.load(ordering: .acquiring) &- tail.load(ordering: .acquiring) }
}

/// The engine's event stream: an ``IoEventSink`` with one bounded ``EventRing`` per queue.
///
/// Give the stream to a workload (``WorkloadOptions/eventSink``) or to a queue
/// (`QueueOptions.eventSink`). ``publish(_:)`` routes each event by its `queue` to that
/// queue's ring, so each ring has exactly one producer as long as every queue ID below
/// ``queueCount`` is used by one thread at a time (the engine's queues are). Events from
/// queue IDs outside `0..<queueCount` are counted in ``lostEvents``.
///
/// Publishing costs one relaxed load when nobody is subscribed, and a ring push (a few
/// stores, one release store) and one relaxed load when someone is. It never blocks and never
/// allocates. A slow subscriber loses events and sees how many in
/// ``EventSubscription/lostEvents``.
///
/// A subscriber that drains on its own thread sleeps in ``EventSubscription/wait(timeoutNs:)``
/// instead of polling: the producer whose push leaves a quarter of its ring filled wakes it
/// (through a ``ChangeSignal``: one wake-up per wait, never one per event, so events still
/// arrive in batches), and
/// ``wakeReader()`` wakes it at once (to stop it). The timeout bounds how long an event may
/// sit in a ring that never fills that far.
///
/// ```swift
/// let stream = EventStream(queues: 8)
/// let sub = stream.subscribe()
/// // on the UI thread, every frame:
/// sub.drain { event in model.apply(event) }
/// ```
public final class EventStream: IoEventSink, @unchecked Sendable {
    /// One ring per queue ID.
    package let rings: [EventRing]
    private let ringRefs: UnsafeMutablePointer<Unmanaged<EventRing>>
    private let ringCount: Int
    private let active = Atomic<Bool>(false)
    private let unrouted = Atomic<UInt64>(0)
    /// Set by a subscriber about to sleep in ``EventSubscription/wait(timeoutNs:)``; the
    /// producer that clears it bumps ``wake``.
    private let readerWaiting = Atomic<Bool>(false)
    /// Set by ``wakeReader()``: the next (or current) wait returns at once.
    private let wakeRequested = Atomic<Bool>(false)
    /// What a waiting subscriber sleeps on.
    private let wake = ChangeSignal()
    /// Buffered events in one ring that wake a waiting subscriber (a quarter of a ring).
    private let wakeThreshold: Int

    /// Creates a stream for queue IDs `0..<queues`, each with a ring of `capacityPerQueue` events.
    public init(queues: Int = 16, capacityPerQueue: Int = 1 << 13) {
        rings = (0..<max(1, queues)).map { _ in EventRing(capacity: capacityPerQueue) }
        ringCount = rings.count
        ringRefs = UnsafeMutablePointer<Unmanaged<EventRing>>.allocate(capacity: rings.count)
        for (i, r) in rings.enumerated() { (ringRefs + i).initialize(to: Unmanaged.passUnretained(r)) }
        wakeThreshold = max(1, rings[0].capacity / 4)
    }

    deinit { ringRefs.deallocate() }

    /// The number of queue IDs the stream routes (`0..<queueCount`).
    public var queueCount: Int { rings.count }

    /// Publishes one event into its queue's ring; dropped at once when nobody subscribes.
    @inline(__always)
    public func publish(_ event: IoEvent) {
        if !active.load(ordering: .relaxed) { return }
        let q = Int(event.queue)
        if q >= 0 && q < ringCount {
            // Unmanaged: no retain/release of the ring on the hot path (`rings` owns them).
            ringRefs[q]._withUnsafeGuaranteedRef { r in
                r.push(event)
                if readerWaiting.load(ordering: .relaxed) && r.buffered >= wakeThreshold { wakeWaitingReader() }
            }
        } else {
            unrouted.wrappingAdd(1, ordering: .relaxed)
        }
    }

    /// Attaches the (single) subscriber: events published from now on are buffered for it.
    ///
    /// The stream has one consumer at a time; subscribing again replaces the previous
    /// subscription (cancel it first when it lives on another thread).
    public func subscribe() -> EventSubscription {
        for r in rings { r.discardBuffered() }
        active.store(true, ordering: .releasing)
        return EventSubscription(stream: self)
    }

    /// Stops buffering events (publishing becomes a single load again).
    public func unsubscribe() {
        active.store(false, ordering: .releasing)
    }

    /// Whether a subscriber is attached.
    public var isSubscribed: Bool { active.load(ordering: .relaxed) }

    /// Wakes the subscriber from ``EventSubscription/wait(timeoutNs:)`` now, or makes its next
    /// wait return at once (whoever asks a draining thread to stop calls it after setting
    /// its flag).
    public func wakeReader() {
        wakeRequested.store(true, ordering: .sequentiallyConsistent)
        wake.bump()
    }

    /// The producer side: one bump for the wait that is pending, none when another producer
    /// already woke it.
    private func wakeWaitingReader() {
        if readerWaiting.exchange(false, ordering: .acquiringAndReleasing) { wake.bump() }
    }

    /// Sleeps until a producer or ``wakeReader()`` wakes the subscriber or `timeoutNs`
    /// passes; returns at once when a ring already holds ``wakeThreshold`` events.
    fileprivate func waitForEvents(timeoutNs: UInt64) {
        readerWaiting.store(true, ordering: .sequentiallyConsistent)
        let seen = wake.generation
        if !wakeRequested.exchange(false, ordering: .acquiringAndReleasing)
            && !rings.contains(where: { $0.buffered >= wakeThreshold }) {
            wake.wait(past: seen, timeoutNanos: timeoutNs)
        }
        readerWaiting.store(false, ordering: .relaxed)
    }

    /// Events lost in every ring plus events from unknown queue IDs.
    public var lostEvents: UInt64 {
        rings.reduce(unrouted.load(ordering: .relaxed)) { $0 &+ $1.lost }
    }
}

/// The consumer side of an ``EventStream``: drain from one thread (the UI's or a recorder's).
///
/// Events of one queue come out in publication order; events of different queues are
/// handed out queue by queue (sort by ``IoEvent/time`` when a global order matters).
public final class EventSubscription: @unchecked Sendable {
    /// The stream this subscription reads.
    public let stream: EventStream

    init(stream: EventStream) { self.stream = stream }

    /// Hands every buffered event (up to `max` per queue) to `body`; returns how many.
    @discardableResult
    public func drain(maxPerQueue max: Int = .max, _ body: (IoEvent) -> Void) -> Int {
        var n = 0
        for r in stream.rings { n += r.drain(max: max, body) }
        return n
    }

    /// The buffered events (up to `max` per queue) as an array, merged in time order.
    public func poll(maxPerQueue max: Int = 4096) -> [IoEvent] {
        var out: [IoEvent] = []
        drain(maxPerQueue: max) { out.append($0) }
        if stream.rings.count > 1 { out.sort { $0.time < $1.time } }
        return out
    }

    /// Events the subscriber lost because it drained too slowly (all queues, cumulative).
    public var lostEvents: UInt64 { stream.lostEvents }

    /// Sleeps until events are worth draining (a ring a quarter full), ``EventStream/wakeReader()``
    /// is called, or `timeoutNs` passes; a drainer thread calls it when ``drain(maxPerQueue:_:)``
    /// found nothing, instead of sleeping a fixed time.
    public func wait(timeoutNs: UInt64) { stream.waitForEvents(timeoutNs: timeoutNs) }

    /// Detaches: the stream stops buffering.
    public func cancel() { stream.unsubscribe() }
}

/// Publishes every event to several sinks in order (e.g. the UI's stream and a trace recorder).
package final class EventFanout: IoEventSink, @unchecked Sendable {
    /// The sinks, in delivery order.
    public let sinks: [any IoEventSink]

    /// Creates a fan-out over `sinks`.
    public init(_ sinks: [any IoEventSink]) { self.sinks = sinks }

    /// Publishes `event` to each sink.
    public func publish(_ event: IoEvent) {
        for s in sinks { s.publish(event) }
    }

    /// The time the sinks held queue `queue` together (they hold one after another).
    public func heldNanos(queue: Int32) -> UInt64 {
        sinks.reduce(0) { $0 &+ $1.heldNanos(queue: queue) }
    }

    /// A single sink for `sinks`: nil when empty, the sink itself when there is one.
    public static func combine(_ sinks: [(any IoEventSink)?]) -> (any IoEventSink)? {
        let s = sinks.compactMap { $0 }
        if s.isEmpty { return nil }
        if s.count == 1 { return s[0] }
        return EventFanout(s)
    }
}

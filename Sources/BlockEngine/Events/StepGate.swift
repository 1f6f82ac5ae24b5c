import BlockCore
import Foundation
import Synchronization

/// Step mode: a sink wrapper that, when enabled, lets one event through per ``step(_:)``.
///
/// Put the gate between the queues and the real sink (an ``EventStream``). While the gate
/// is enabled, ``publish(_:)`` blocks the publishing queue's thread until a step permit
/// is granted, so a teacher can walk one guest write through mapping, allocation, SQE and
/// CQE, one event per key press. Disabled, the gate costs one relaxed load per event.
/// The event currently held is visible as ``heldEvent``. ``disable()`` releases everyone.
public final class StepGate: IoEventSink, @unchecked Sendable {
    /// Where events go once they pass the gate.
    public let downstream: (any IoEventSink)?
    private let enabled = Atomic<Bool>(false)
    private let cond = NSCondition()
    private var permits = 0
    private var held: [IoEvent] = []
    private var releasedCount = 0

    /// Creates a gate in front of `downstream` (disabled: events pass straight through).
    public init(downstream: (any IoEventSink)?) {
        self.downstream = downstream
    }

    /// Whether step mode is on.
    public var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// Turns step mode on: the next event published blocks until ``step(_:)``.
    public func enable() {
        cond.lock()
        permits = 0
        enabled.store(true, ordering: .releasing)
        cond.unlock()
    }

    /// Turns step mode off and releases every held event.
    public func disable() {
        cond.lock()
        enabled.store(false, ordering: .releasing)
        cond.broadcast()
        cond.unlock()
    }

    /// Lets up to `count` of the events held now through. Presses are not banked: a step
    /// while nothing is held, or beyond what is held and not yet let through, is discarded,
    /// so a teacher who presses `s` ten times for a short request does not release the next
    /// request unseen.
    public func step(_ count: Int = 1) {
        cond.lock()
        permits = max(permits, min(max(0, count), held.count))
        cond.broadcast()
        cond.unlock()
    }

    /// How many events a ``step(_:)`` has let through since the gate was made: what a caller
    /// waits on to know a step took effect (the held event may look the same before and after).
    public var released: Int {
        cond.lock()
        defer { cond.unlock() }
        return releasedCount
    }

    /// The oldest event waiting at the gate, if any (what the next ``step(_:)`` releases).
    public var heldEvent: IoEvent? {
        cond.lock()
        defer { cond.unlock() }
        return held.first
    }

    /// How many events (threads) are waiting at the gate.
    public var waiting: Int {
        cond.lock()
        defer { cond.unlock() }
        return held.count
    }

    /// Passes `event` on; in step mode first waits for a permit (blocking the queue's thread).
    public func publish(_ event: IoEvent) {
        if enabled.load(ordering: .relaxed) {
            cond.lock()
            held.append(event)
            while enabled.load(ordering: .acquiring) && permits == 0 { cond.wait() }
            if enabled.load(ordering: .relaxed) { permits -= 1; releasedCount += 1 }
            if let i = held.firstIndex(of: event) { held.remove(at: i) }
            cond.unlock()
        }
        downstream?.publish(event)
    }
}

import BlockIO
import Foundation
import Synchronization

/// Step mode: a sink wrapper that, when enabled, lets one event through per ``step(_:)``.
///
/// Put the gate between the queues and the real sink (an ``EventStream``). While the gate
/// is enabled, ``publish(_:)`` blocks the publishing queue's thread until a step permit
/// is granted, so a teacher can walk one guest write through mapping, allocation, SQE and
/// CQE, one event per key press. Disabled, the gate costs one relaxed load per event.
/// The event currently held is visible as ``heldEvent``. ``disable()`` releases everyone.
///
/// Time a queue's thread spends held here is counted per queue (``heldNanos(queue:)``) and
/// taken out of the latencies the gate passes on (`guestCompleted`, `cqeReaped`): a request
/// that waited three seconds for a key press reports the microseconds the I/O took.
public final class StepGate: IoEventSink, @unchecked Sendable {
    /// Where events go once they pass the gate.
    public let downstream: (any IoEventSink)?
    /// How far ``run(to:)`` lets events through without key presses.
    public enum Goal: Sendable, Equatable {
        /// Up to the acceptance of a guest request other than request `request` of queue
        /// `queue` (held there; a virtqueue's request is held where its chain is popped from
        /// the avail ring), skipping the rest of that request and anything between.
        case nextRequest(after: Int32, request: UInt64)
        /// Until request `request` of queue `queue` has completed; the next event is held.
        case completion(queue: Int32, request: UInt64)
    }
    private let enabled = Atomic<Bool>(false)
    /// Set while requests that were held may still complete (the gate keeps correcting their
    /// latencies for 10 s after its last hold, also once disabled).
    private let accounting = Atomic<Bool>(false)
    /// Set at the first hold: until then ``heldNanos(queue:)`` is one load.
    private let anyHold = Atomic<Bool>(false)
    private let cond = ConditionLock()
    private var permits = 0
    private var held: [IoEvent] = []
    private var releasedCount = 0
    private var goal: Goal?
    private var goalDone = false
    private var reached: Goal?
    private var heldTotal: [Int32: UInt64] = [:]
    /// Recent holds per queue (start, end in monotonic ns; at most 4096 each), to take out of
    /// the latency windows that overlap them.
    private var holds: [Int32: [(start: UInt64, end: UInt64)]] = [:]
    private var lastHoldEnd: UInt64 = 0

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
        goal = nil
        enabled.store(true, ordering: .releasing)
        accounting.store(true, ordering: .releasing)
        cond.unlock()
    }

    /// Turns step mode off and releases every held event.
    public func disable() {
        cond.lock()
        enabled.store(false, ordering: .releasing)
        goal = nil
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

    /// Lets events through without presses until `goal` is reached; the event after it is
    /// held as usual (``reachedGoal`` then says so). Replaces an earlier goal.
    public func run(to goal: Goal) {
        cond.lock()
        self.goal = goal
        goalDone = false
        reached = nil
        cond.broadcast()
        cond.unlock()
    }

    /// The goal ``run(to:)`` last reached, once (reading it clears it).
    public func takeReachedGoal() -> Goal? {
        cond.lock()
        defer { reached = nil; cond.unlock() }
        return reached
    }

    /// Whether a ``run(to:)`` goal is still being run to.
    public var isRunning: Bool {
        cond.lock()
        defer { cond.unlock() }
        return goal != nil
    }

    /// How many events a ``step(_:)`` has let through since the gate was made: what a caller
    /// waits on to know a step took effect (the held event may look the same before and after).
    public var released: Int {
        cond.lock()
        defer { cond.unlock() }
        return releasedCount
    }

    /// The oldest event waiting at the gate, if any (what the next ``step(_:)`` releases),
    /// with its latency corrected as it will be when released: a completion's preview must
    /// not count the time the gate held its queue, since the released event does not.
    public var heldEvent: IoEvent? {
        cond.lock()
        defer { cond.unlock() }
        guard var e = held.first else { return nil }
        correct(&e)
        return e
    }

    /// How many events (threads) are waiting at the gate.
    public var waiting: Int {
        cond.lock()
        defer { cond.unlock() }
        return held.count
    }

    /// Nanoseconds queue `queue`'s thread has waited at this gate in total.
    public func heldNanos(queue: Int32) -> UInt64 {
        if !anyHold.load(ordering: .relaxed) { return 0 }
        // Queue IDs below 64 (every TUI queue) read a lock-free copy: a job asks per request.
        if queue >= 0 && Int(queue) < fastTotals.count { return fastTotals[Int(queue)].value.load(ordering: .relaxed) }
        cond.lock()
        defer { cond.unlock() }
        return heldTotal[queue] ?? 0
    }

    /// A held total readable without the gate's lock.
    private final class Total: Sendable { let value = Atomic<UInt64>(0) }
    private let fastTotals: [Total] = (0..<64).map { _ in Total() }

    /// Whether the goal lets `e` through unheld (lock held); updates the goal's progress.
    private func goalPasses(_ e: IoEvent) -> Bool {
        guard let g = goal else { return false }
        switch g {
        case let .nextRequest(q, r):
            // A request starts at its acceptance, or (a virtqueue's) when its chain is popped.
            var starts = false
            if case .guestRequest = e.payload { starts = true }
            if case .virtqueue(stage: .popped, _, _) = e.payload { starts = true }
            if starts, e.queue != q || e.request != r {
                reached = g; goal = nil
                return false
            }
            return true
        case let .completion(q, r):
            if goalDone {
                reached = g; goal = nil
                return false
            }
            if e.queue == q, e.request == r, case .guestCompleted = e.payload { goalDone = true }
            return true
        }
    }

    /// Passes `event` on; in step mode first waits for a permit (blocking the queue's thread).
    public func publish(_ event: IoEvent) {
        var e = event
        if enabled.load(ordering: .relaxed) {
            cond.lock()
            let t0 = monotonicNanos()
            var byGoal = false, waited = false
            held.append(event)
            while enabled.load(ordering: .acquiring) && permits == 0 {
                if goalPasses(event) { byGoal = true; break }
                waited = true
                cond.wait()
            }
            if enabled.load(ordering: .relaxed) && !byGoal && permits > 0 { permits -= 1; releasedCount += 1 }
            if let i = held.firstIndex(of: event) { held.remove(at: i) }
            if waited {
                let t1 = monotonicNanos()
                heldTotal[event.queue, default: 0] += t1 &- t0
                if event.queue >= 0 && Int(event.queue) < fastTotals.count {
                    fastTotals[Int(event.queue)].value.store(heldTotal[event.queue]!, ordering: .relaxed)
                }
                var h = holds[event.queue, default: []]
                h.append((t0, t1))
                if h.count > 4096 { h.removeFirst(h.count - 4096) }
                holds[event.queue] = h
                lastHoldEnd = t1
                anyHold.store(true, ordering: .relaxed)
            }
            correct(&e)
            cond.unlock()
        } else if accounting.load(ordering: .relaxed) {
            cond.lock()
            correct(&e)
            if monotonicNanos() &- lastHoldEnd > 10_000_000_000 { accounting.store(false, ordering: .relaxed) }
            cond.unlock()
        }
        downstream?.publish(e)
    }

    /// Takes the time this gate held the event's queue between a completion's start and its
    /// end (`time - latencyNs ... time`) out of its latency (lock held). The completion
    /// event's own hold comes after `time`, so it is never counted.
    private func correct(_ e: inout IoEvent) {
        switch e.payload {
        case let .cqeReaped(op, userData, result, latencyNs):
            let held = heldWithin(e.queue, e.time &- latencyNs, e.time)
            if held > 0 { e.payload = .cqeReaped(opcode: op, userData: userData, result: result, latencyNs: latencyNs > held ? latencyNs - held : 0) }
        case let .guestCompleted(op, userData, result, latencyNs):
            let held = heldWithin(e.queue, e.time &- latencyNs, e.time)
            if held > 0 { e.payload = .guestCompleted(op: op, userData: userData, result: result, latencyNs: latencyNs > held ? latencyNs - held : 0) }
        default: break
        }
    }

    /// Nanoseconds of queue `q`'s holds inside `[from, to)` (lock held).
    private func heldWithin(_ q: Int32, _ from: UInt64, _ to: UInt64) -> UInt64 {
        guard let h = holds[q] else { return 0 }
        var sum: UInt64 = 0
        for iv in h.reversed() {
            if iv.end <= from { break }
            let a = max(iv.start, from), b = min(iv.end, to)
            if b > a { sum += b - a }
        }
        return sum
    }
}

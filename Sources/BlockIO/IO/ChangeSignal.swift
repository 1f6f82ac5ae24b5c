import Synchronization

/// Wakes threads that wait for shared metadata to change, instead of letting them poll.
///
/// A queue whose request must wait for another queue (an allocation of the same cluster in
/// flight, a flush already running) records ``generation``, and when it has nothing else to
/// do calls ``wait(past:timeoutNanos:)``; whoever changes the state it waits on (a commit
/// that clears a busy cluster, the end of a flush) calls ``bump()``. The generation is an
/// atomic, and the mutex and condition are touched only when someone is waiting, so
/// ``bump()`` on the hot path costs one atomic increment and one atomic load.
public final class ChangeSignal: @unchecked Sendable {
    private let counter = Atomic<UInt64>(0)
    private let waiters = Atomic<Int>(0)
    private let condition = ConditionLock()

    /// Creates a signal at generation 0.
    public init() {}

    /// How many changes have been signalled so far; read it before testing the state you
    /// wait on, then pass it to ``wait(past:timeoutNanos:)``.
    public var generation: UInt64 { counter.load(ordering: .acquiring) }

    /// Records a change and wakes every waiter (a no-op beyond the increment when nobody waits).
    public func bump() {
        counter.wrappingAdd(1, ordering: .releasing)
        if waiters.load(ordering: .acquiring) > 0 {
            condition.withLock { condition.broadcast() }
        }
    }

    /// Blocks until the generation moves past `seen` or `timeoutNanos` pass (a safety net
    /// for changes made outside the signal, such as another process's); returns whether it moved.
    @discardableResult
    public func wait(past seen: UInt64, timeoutNanos: UInt64 = 50_000_000) -> Bool {
        if generation != seen { return true }
        waiters.wrappingAdd(1, ordering: .sequentiallyConsistent)
        defer { waiters.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
        let deadline = monotonicNanos() + timeoutNanos
        condition.lock()
        defer { condition.unlock() }
        while counter.load(ordering: .acquiring) == seen {
            if !condition.wait(untilNanos: deadline) { break }
        }
        return counter.load(ordering: .acquiring) != seen
    }
}

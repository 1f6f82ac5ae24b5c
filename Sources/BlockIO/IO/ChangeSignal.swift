import Synchronization
#if canImport(Glibc)
import Glibc
#endif

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
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    /// Creates a signal at generation 0 (the condition waits on CLOCK_MONOTONIC).
    public init() {
        mutex = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    /// How many changes have been signalled so far; read it before testing the state you
    /// wait on, then pass it to ``wait(past:timeoutNanos:)``.
    public var generation: UInt64 { counter.load(ordering: .acquiring) }

    /// Records a change and wakes every waiter (a no-op beyond the increment when nobody waits).
    public func bump() {
        counter.wrappingAdd(1, ordering: .releasing)
        if waiters.load(ordering: .acquiring) > 0 {
            pthread_mutex_lock(mutex)
            pthread_cond_broadcast(cond)
            pthread_mutex_unlock(mutex)
        }
    }

    /// Blocks until the generation moves past `seen` or `timeoutNanos` pass (a safety net
    /// for changes made outside the signal, such as another process's); returns whether it moved.
    @discardableResult
    public func wait(past seen: UInt64, timeoutNanos: UInt64 = 50_000_000) -> Bool {
        if generation != seen { return true }
        waiters.wrappingAdd(1, ordering: .sequentiallyConsistent)
        defer { waiters.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let total = UInt64(now.tv_nsec) + timeoutNanos
        var until = timespec(tv_sec: now.tv_sec + Int(total / 1_000_000_000), tv_nsec: Int(total % 1_000_000_000))
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while counter.load(ordering: .acquiring) == seen {
            if pthread_cond_timedwait(cond, mutex, &until) == ETIMEDOUT { break }
        }
        return counter.load(ordering: .acquiring) != seen
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A mutex with a condition variable: the one primitive for a thread that must sleep until
/// another thread changes shared state (a worker waiting for work, a caller waiting for a
/// job to end). Mutual exclusion alone is `Synchronization.Mutex` (docs/adr/0017-format-modules.md).
///
/// The calls are NSCondition's: ``lock()``, ``wait()`` with the lock held (the predicate
/// re-tested in a loop), ``broadcast()``/``signal()`` after the change, ``unlock()``. Timed
/// waits run on CLOCK_MONOTONIC (``monotonicNanos()``), so a wall-clock step neither cuts
/// nor stretches them. The corresponding C types are `pthread_mutex_t` and `pthread_cond_t`;
/// they live at a fixed address owned by this object.
package final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    /// An unlocked lock with no waiters.
    package init() {
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

    /// Takes the lock (`pthread_mutex_lock`).
    @inline(__always)
    package func lock() { pthread_mutex_lock(mutex) }

    /// Releases the lock (`pthread_mutex_unlock`).
    @inline(__always)
    package func unlock() { pthread_mutex_unlock(mutex) }

    /// Runs `body` with the lock held.
    @inline(__always)
    package func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Releases the lock, sleeps until woken, takes it again (`pthread_cond_wait`). Call with
    /// the lock held, in a loop over the predicate: a wake-up may be spurious.
    package func wait() { pthread_cond_wait(cond, mutex) }

    /// ``wait()`` until ``monotonicNanos()`` reaches `deadline`; false once the deadline has
    /// passed (the caller's loop then stops), true after a wake-up.
    @discardableResult
    package func wait(untilNanos deadline: UInt64) -> Bool {
        if monotonicNanos() >= deadline { return false }
        var until = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(cond, mutex, &until) != ETIMEDOUT
    }

    /// Wakes one waiter (`pthread_cond_signal`).
    package func signal() { pthread_cond_signal(cond) }

    /// Wakes every waiter (`pthread_cond_broadcast`).
    package func broadcast() { pthread_cond_broadcast(cond) }
}

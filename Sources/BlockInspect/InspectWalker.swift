import BlockIO
import Foundation

/// A whole-image walk (a host use map, BAT state counts) on its own thread, so a viewer
/// never waits for one: it reads the last finished result (nil before the first) and the
/// progress, and can cancel it.
///
/// At most one walk runs; ``start()`` while one runs asks for one more after it (the image
/// changed meanwhile), so a job that keeps writing costs one walk at a time, not a queue.
/// ``cancel()`` stops the running walk at its next progress report: the body's progress
/// callback returns false, and whatever the body throws then counts as a cancellation.
/// Thread-safe.
public final class InspectWalker<Output: Sendable>: @unchecked Sendable {
    private let lock = ConditionLock()
    private let body: @Sendable (_ progress: @escaping (Double) -> Bool) throws -> Output
    private var output: Output?
    private var cancelledLast = false
    private var held = false
    private var pending = false
    private var failure: String?
    private var fraction: Double?
    private var running = false
    private var again = false
    private var stop = false
    private var finished = 0
    private var seen = 0
    private var watcher: (@Sendable (Double) -> Void)?

    /// Called on the walk's thread with each progress report, outside the lock, before the
    /// walk checks for cancellation (tests hold a walk mid-way with it).
    public var observer: (@Sendable (Double) -> Void)? {
        get { lock.withLock { watcher } }
        set { lock.withLock { watcher = newValue } }
    }

    /// A walk that runs `body` (given a progress callback that returns false to cancel).
    public init(_ body: @escaping @Sendable (_ progress: @escaping (Double) -> Bool) throws -> Output) {
        self.body = body
    }

    /// The last finished result.
    public var result: Output? { lock.withLock { output } }
    /// Whether the last walk was cancelled (and none runs now).
    public var cancelled: Bool { lock.withLock { cancelledLast && !running } }
    /// Fraction done of the running walk (nil when none runs).
    public var progress: Double? { lock.withLock { running ? fraction ?? 0 : nil } }
    /// Why the last walk failed, if it did.
    public var error: String? { lock.withLock { failure } }
    /// Whether a walk has been started since creation.
    public var started: Bool { lock.withLock { running || finished > 0 } }
    /// Finished walks so far (a cache keyed by it knows when a result is new).
    public var generation: Int { lock.withLock { finished } }

    /// True once after each finished walk (the views redraw with the new result).
    public func takeFinished() -> Bool {
        lock.withLock {
            if finished == seen { return false }
            seen = finished
            return true
        }
    }

    /// Blocks until no walk runs (tests and scripts; a viewer never waits).
    public func waitUntilIdle() {
        lock.lock()
        while running { lock.wait() }
        lock.unlock()
    }

    /// While held, ``start()`` only notes the request (the TUI holds walks until its first
    /// frame is on screen, so no walk competes with it for the CPU); releasing starts it.
    public func hold(_ on: Bool) {
        let go = lock.withLock { () -> Bool in
            held = on
            defer { if !on { pending = false } }
            return !on && pending
        }
        if go { start() }
    }

    /// Starts a walk, or asks for another after the running one.
    public func start() {
        let go = lock.withLock { () -> Bool in
            if held { pending = true; return false }
            if running { again = true; return false }
            running = true
            stop = false
            cancelledLast = false
            fraction = 0
            return true
        }
        if go { Thread.detachNewThread { [self] in run() } }
    }

    /// Stops the running walk (its result is dropped) and any walk asked for after it.
    public func cancel() {
        lock.withLock { stop = true; again = false }
    }

    private func run() {
        while true {
            let outcome: Result<Output, any Error>
            do {
                outcome = .success(try body { [self] f in
                    let watch = lock.withLock { () -> (@Sendable (Double) -> Void)? in fraction = f; return watcher }
                    watch?(f)
                    return lock.withLock { !stop }
                })
            } catch {
                outcome = .failure(error)
            }
            let more = lock.withLock { () -> Bool in
                switch outcome {
                case .success(let m): output = m; failure = nil
                case .failure(let e): if stop { cancelledLast = true } else { failure = "\(e)" }
                }
                finished += 1
                if again && !stop { again = false; fraction = 0; return true }
                running = false
                fraction = nil
                lock.broadcast()
                return false
            }
            if !more { return }
        }
    }
}

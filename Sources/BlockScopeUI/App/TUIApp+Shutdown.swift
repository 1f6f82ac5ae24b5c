import BlockCore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How far closing has got: written by the thread that closes the image, read by the UI
/// thread that draws it (behind a lock; the UI thread touches nothing else meanwhile).
final class CloseProgress: Sendable {
    private let state = Mutex<(step: Int, label: String, done: Bool)>((0, "starting", false))

    /// Records the step now running (1-based, of ``TUIApp/closeSteps``).
    func set(_ step: Int, _ label: String) {
        state.withLock { $0.step = step; $0.label = label }
    }

    /// Marks closing as done.
    func finish() { state.withLock { $0.done = true } }

    /// The step, its label and whether closing is done.
    var snapshot: (step: Int, label: String, done: Bool) { state.withLock { $0 } }
}

/// Hands a non-Sendable value to another thread when the code guarantees only one uses it.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
}

extension TUIApp {
    /// The steps of closing, in order; the quit screen shows "flushing metadata… 3/5".
    package static let closeSteps = ["stopping the job", "finishing the running command", "flushing metadata", "closing the image", "restoring the terminal"]

    /// Stops the workload and closes the image (flushing writes); sets ``closingLine``.
    /// Call once before exit (later calls do nothing). `progress` hears each step (1-based)
    /// as it starts, from the calling thread.
    package func shutdown(progress: ((Int, String) -> Void)? = nil) {
        if closed { return }
        closed = true
        let t0 = monotonicNanos()
        progress?(1, Self.closeSteps[0])
        gate.disable()
        // Clients of `--serve` first: their in-flight requests are answered, then nothing
        // new reaches the disk while it is flushed and closed.
        if let stop = stopOutsideIO { stopOutsideIO = nil; stop() }
        job?.workload.resume()
        job?.workload.stop()
        _ = job?.waitFinished(seconds: 5)
        progress?(2, Self.closeSteps[1])
        worker?.stop()
        worker?.waitIdle(seconds: 5)
        subscription.cancel()
        state.image.inspector?.stopBackground()
        state.diagnosis.cancel()
        let name = URL(fileURLWithPath: state.image.path).lastPathComponent
        var problems: [String] = []
        var flushed = false
        if let d = state.image.disk {
            if d.isWritable {
                progress?(3, Self.closeSteps[2])
                do { try d.flush(); flushed = true } catch let e { problems.append("flush: \(e.description)") }
            } else {
                progress?(3, "nothing to flush (read-only)")
            }
            progress?(4, Self.closeSteps[3])
            do { try d.close() } catch let e { problems.append("close: \(e.description)") }
        }
        let secs = fixed(Double(monotonicNanos() - t0) / 1e9, 2)
        if !problems.isEmpty {
            closingLine = "blockscope: closing \(name) failed: \(problems.joined(separator: "; "))"
        } else if state.image.disk == nil {
            closingLine = "blockscope: closed \(name) (inspected without I/O)"
        } else {
            closingLine = flushed ? "blockscope: closed \(name) (read-write, data and metadata flushed) in \(secs) s" : "blockscope: closed \(name) (read-only, nothing to flush)"
        }
    }

    /// Closes on another thread while the UI thread draws `last` with a progress box every
    /// 100 ms, then restores the terminal (the final step).
    func closeWithProgress(_ term: Terminal, last: ScreenModel) {
        let progress = CloseProgress()
        let box = UncheckedBox(value: self)
        let started = monotonicNanos()
        let t = Thread {
            box.value.shutdown { progress.set($0, $1) }
            progress.finish()
        }
        t.name = "blockscope-close"
        t.start()
        while !progress.snapshot.done {
            let p = progress.snapshot
            term.present(TUIApp.closingFrame(last, step: p.step, label: p.label, elapsedNs: monotonicNanos() - started))
            usleep(100_000)
        }
        term.present(TUIApp.closingFrame(last, step: 5, label: Self.closeSteps[4], elapsedNs: monotonicNanos() - started))
        term.end()
    }

    /// `last` with a box in the middle: "closing IMAGE", each step done, the current one with
    /// its number ("flushing metadata… 3/5") and the time so far.
    static func closingFrame(_ last: ScreenModel, step: Int, label: String, elapsedNs: UInt64) -> ScreenModel {
        var s = last
        let w = min(s.width, 56), h = min(s.height, closeSteps.count + 4)
        guard w >= 20, h >= 3 else { return s }
        let box = Rect(x: (s.width - w) / 2, y: max(0, (s.height - h) / 2), width: w, height: h)
        s.fill(box, " ", CellStyle(.prompt))
        s.put(box.x + 2, box.y, "closing… \(formatDuration(elapsedNs))", CellStyle(.prompt, [.bold]), maxWidth: w - 4)
        for (i, name) in closeSteps.enumerated() where box.y + 2 + i < box.maxY {
            let n = i + 1
            let text = n < step ? "✓ \(name)" : n == step ? "\(label)… \(n)/\(closeSteps.count)" : "  \(name)"
            s.put(box.x + 2, box.y + 2 + i, text, CellStyle(.prompt, n == step ? [.bold] : []), maxWidth: w - 4)
        }
        return s
    }
}

import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT, SIGTERM and SIGHUP while the TUI runs: each becomes a quit as `q` is, so the
/// workload and `--serve` clients drain, the image is flushed and closed (its lock released)
/// and the terminal restored, and the process exits 0.
///
/// The handler only stores the signal number in an atomic (async-signal-safe); the UI loop
/// looks at it every frame (at most 95 ms apart; the signal also cuts the wait for a key
/// short). Installed before curses starts, so ncurses keeps its own SIGINT/SIGTERM handlers
/// (which restore the terminal and exit at once, without closing the image) out of the way.
enum QuitSignals {
    /// The signals that quit the TUI cleanly.
    static let handled: [Int32] = [SIGINT, SIGTERM, SIGHUP]
    /// The last signal caught and not yet taken; 0 for none.
    static let caught = Atomic<Int32>(0)

    /// Installs the handler for ``handled``; returns the previous handlers for ``restore(_:)``.
    /// Touches ``caught`` first, so its lazy initialisation never runs inside the handler.
    static func install() -> [(Int32, sighandler_t?)] {
        caught.store(0, ordering: .relaxed)
        return handled.map { sig in
            (sig, signal(sig) { QuitSignals.caught.store($0, ordering: .relaxed) })
        }
    }

    /// Puts back the handlers ``install()`` replaced.
    static func restore(_ previous: [(Int32, sighandler_t?)]) {
        for (sig, h) in previous { signal(sig, h) }
    }

    /// The signal caught since the last call, if any (clears it).
    static func take() -> Int32? {
        let s = caught.exchange(0, ordering: .relaxed)
        return s == 0 ? nil : s
    }

    /// The signal's name as `kill -l` prints it with the SIG prefix ("SIGTERM").
    static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(sig)"
        }
    }
}

extension TUIApp {
    /// The name of a signal that ends the TUI ("SIGTERM"), for the line printed after it.
    package static func signalName(_ sig: Int32) -> String { QuitSignals.name(sig) }
}

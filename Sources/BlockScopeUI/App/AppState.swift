import BlockCore

/// What every view can read: the image, the live model, and the app's modes and messages.
///
/// Owned by the UI thread; views get it as a parameter when they draw or handle input.
package final class AppState {
    /// The image under inspection.
    package let image: ImageModel
    /// Live figures folded from the event stream.
    package let live: LiveModel
    /// The exact set of guest requests the engine's queues hold now (the In-flight view's
    /// truth; the event stream only annotates it and may drop events).
    package let engineInFlight = InFlightRegistry()
    /// ``engineInFlight`` as of the last pump (the views draw this copy).
    package var inFlightSnapshot: [OutstandingRequest] = []
    /// The most requests the queues held at once between the last two pumps (a client that
    /// sends its requests in bursts leaves none held at some instants).
    package var inFlightPeak = 0
    /// The current theme's name.
    package var themeName: String
    /// A message for the status line and its role.
    package var status: (text: String, role: Role) = ("", .dim)
    /// The view a status message belongs to (its title), or nil for app-wide messages
    /// (command output, jobs). A view's message is cleared when another view comes up.
    package private(set) var statusOwner: String?
    /// The title of the view on screen (set by the app when views switch).
    package var currentViewTitle = "" {
        didSet { if let o = statusOwner, o != currentViewTitle { status = ("", .dim); statusOwner = nil } }
    }
    /// Whether `NO_COLOR` chose the monochrome theme (the title says so).
    package var noColor = false
    /// Whether step mode is on (`s`).
    package var stepMode = false
    /// Whether the workload is paused (space).
    package var paused = false
    /// The explanation of the event step mode let through last.
    package var lastStep: String?
    /// The event waiting at the step gate, explained.
    package var heldEvent: String?
    /// Every event step mode let through, explained, oldest first (the last 500): a frame
    /// can fold several at once, and none of them may go unexplained.
    package private(set) var stepHistory: [String] = []
    /// How many events step mode has explained since the app started (not bounded like
    /// ``stepHistory``): what a caller waits on to know a released event reached the view.
    package private(set) var stepsExplained = 0

    /// Records the explanation of one event step mode let through.
    func noteStep(_ line: String) {
        lastStep = line
        stepHistory.append(line)
        if stepHistory.count > 500 { stepHistory.removeFirst(stepHistory.count - 500) }
        stepsExplained += 1
    }
    /// Events the UI lost because it drained too slowly.
    package var lostEvents: UInt64 = 0
    /// Whether a command is running in the worker.
    package var busy = false
    /// The terminal's colour depth as shown in the title ("256 colours"); empty without a terminal.
    package var colorDepth = ""
    /// Live counters of a running job, one line.
    package var jobSummary: String?
    /// The last finished job's fio-style summary line (kept for the Completions view).
    package var lastJobLine: String?
    /// Every queue's exact figures (jobs, the prompt, served clients) from
    /// ``engineInFlight``, sampled once a pump: what Completions counts and rates come from.
    package let queueRates = QueueRates()
    /// The metadata entry the last step changed (table, index), which the L1/L2, Refcounts
    /// and BAT views highlight when shown.
    /// `guest` is the guest offset of the request that changed it (which L2 table an index is in).
    package var steppedEntry: (table: MetadataTable, index: UInt64, guest: UInt64)?
    /// Metadata reloads done (views cache by it).
    package var layoutVersion = 0
    /// Set by views to switch tabs (e.g. Map → Hex on Enter); the app remembers where the
    /// request came from, so Esc goes back there.
    package var requestedView: String?
    /// Set by views to open the Hex view at an offset (guest, or host when `host`).
    package var pendingHex: (offset: UInt64, host: Bool)?
    /// Set by views to open In-flight filtered (``InFlightFilter``: `id=0x…` shows one request).
    package var pendingInFlightFilter: String?
    /// Set by views beside ``requestedView`` to move the view that comes up to an offset
    /// (its ``TUIView/goto(_:_:)``; the Map turns to the grid of `space` first).
    package var pendingGoto: (offset: UInt64, space: AddressSpace)?
    /// The image's explanation (Diagnosis view, the Map's finding marks), run on demand.
    package private(set) lazy var diagnosis = Diagnosis(path: image.path)

    /// Creates the state for an image.
    package init(image: ImageModel, live: LiveModel = LiveModel(), themeName: String = "default") {
        self.image = image
        self.live = live
        self.themeName = themeName
        live.context = ExplainContext(words: image.words)
    }

    /// Shows an app-wide message in the status line (it stays across view switches).
    package func say(_ text: String, _ role: Role = .normal) { status = (text, role); statusOwner = nil }

    /// Shows a message that belongs to the current view (a search hit, a selection, a goto):
    /// it goes away when another view comes up.
    package func sayInView(_ text: String, _ role: Role = .normal) { status = (text, role); statusOwner = currentViewTitle }

    /// Rereads the image's metadata (after writes).
    package func reloadLayout() {
        image.inspector?.reload()
        layoutVersion += 1
    }
}

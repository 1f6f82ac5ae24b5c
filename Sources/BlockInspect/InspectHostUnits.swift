/// A format's per-host-unit bookkeeping as one panel (QCOW2: the refcount table, the
/// references the walk found per cluster, and every host cluster's stored refcount): the
/// lines above the list, a histogram, a summary, and the rows, all worded and toned by the
/// format.
///
/// Built when drawn; ``row`` and ``matcher`` read on demand (a row reads one stored count).
public struct InspectHostUnits {
    /// The heading of the bookkeeping table ("Refcount table at 0x10000 (1 entries, 16-bit refcounts)").
    public var heading: String
    /// Lines under the heading (the table's entries, "… 3 more refcount blocks").
    public var lines: [InspectCell]
    /// The histogram's heading ("References found per host cluster, 12 clusters"); nil until
    /// the whole-image walk is done.
    public var histogramHeading: String?
    /// Histogram bars: label, units, tone of the bar.
    public var histogram: [(label: String, units: Int, tone: InspectTone)]
    /// The walk's verdict in one line ("clean: every refcount equals the references found").
    public var summary: InspectCell?
    /// The walk's state while it runs or failed, shown dim beside the summary; nil when current.
    public var status: String?
    /// What the walk could not read, one sentence each (shown in the error tone).
    public var problems: [String]
    /// The heading over the list ("Clusters:  index host offset     use              refcount").
    public var listHeading: String
    /// Host bytes per row.
    public var unit: UInt64
    /// Rows in the list (host units in the file).
    public var count: Int
    /// Row `i`.
    public var row: (Int) -> InspectCell
    /// What `/text` finds: a predicate over row indices, or nil when rows cannot be searched
    /// yet (``status`` says why).
    public var matcher: (String) -> ((Int) -> Bool)?

    /// A panel.
    public init(heading: String, lines: [InspectCell], histogramHeading: String?,
                histogram: [(label: String, units: Int, tone: InspectTone)], summary: InspectCell?, status: String?,
                problems: [String], listHeading: String, unit: UInt64, count: Int,
                row: @escaping (Int) -> InspectCell, matcher: @escaping (String) -> ((Int) -> Bool)?) {
        self.heading = heading
        self.lines = lines
        self.histogramHeading = histogramHeading
        self.histogram = histogram
        self.summary = summary
        self.status = status
        self.problems = problems
        self.listHeading = listHeading
        self.unit = unit
        self.count = count
        self.row = row
        self.matcher = matcher
    }
}

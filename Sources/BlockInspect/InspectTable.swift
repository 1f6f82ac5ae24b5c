/// Which of an image's mapping tables a ``InspectTable`` is, in words every format shares.
///
/// A two-level format (QCOW2's L1 and L2 tables, VMDK's grain directory and grain tables)
/// fills ``directory`` and ``leaf``; a one-level format (VHDX and VHD block allocation
/// tables) fills ``allocation``. A format with neither leaves them out and the views that
/// show them say the image has no such table.
public enum InspectTableRole: Sendable, Hashable {
    /// The top level of a two-level map: each entry points to a ``leaf`` table or to nothing.
    case directory
    /// A second-level table: entries map guest units to host data. Reached from the
    /// ``directory`` entry whose index the ``InspectTableRef/index`` holds.
    case leaf
    /// A one-level block allocation table: entries map guest blocks to host blocks.
    case allocation
}

/// Names one table of an image: its role and, for a ``InspectTableRole/leaf``, the
/// directory entry that points to it.
public struct InspectTableRef: Sendable, Hashable {
    /// The table's role.
    public var role: InspectTableRole
    /// The directory entry of a leaf table; 0 for the other roles.
    public var index: Int

    /// A reference.
    public init(_ role: InspectTableRole, _ index: Int = 0) {
        self.role = role
        self.index = index
    }

    /// The directory (L1, grain directory).
    public static let directory = InspectTableRef(.directory)
    /// The block allocation table.
    public static let allocation = InspectTableRef(.allocation)
    /// The leaf table under directory entry `index`.
    public static func leaf(_ index: Int) -> InspectTableRef { InspectTableRef(.leaf, index) }
}

/// A row of a table: ``InspectTableRef`` and the entry's index in it (a step's changed
/// entry, a goto's target).
public struct InspectLink: Sendable, Hashable {
    /// The table.
    public var table: InspectTableRef
    /// The entry index in it.
    public var row: Int

    /// A link.
    public init(_ table: InspectTableRef, _ row: Int) {
        self.table = table
        self.row = row
    }
}

/// How a table entry reads, in states every format shares; the format's own word for the
/// state goes in the entry's columns.
public enum InspectEntryState: Sendable, Equatable, Hashable {
    /// Points to a lower table (a directory entry with a leaf table).
    case table
    /// The data is in this file at ``InspectEntry/hostOffset``.
    case present
    /// Part of the unit is here and the rest elsewhere (VHDX PARTIALLY_PRESENT).
    case partial
    /// Compressed data at ``InspectEntry/hostOffset``.
    case compressed
    /// Reads as zeroes by its state.
    case zero
    /// Nothing here: reads from the backing file or parent, or zeroes without one.
    case absent
    /// Per-unit bookkeeping, not guest data (a VHDX sector bitmap entry).
    case bookkeeping
    /// An entry the format does not define, or a table that cannot be read.
    case invalid
}

/// One entry of a format's table, described by the format: what it maps, where, in which
/// state, and the words each column shows. The UI lays ``columns`` out and colours the row
/// by ``tone``; it reads no bit of ``raw``.
public struct InspectEntry: Sendable, Equatable {
    /// Index in its table.
    public var index: Int
    /// The entry as stored (a QCOW2 L2 entry's first 64 bits, a VHD sector number); nil
    /// when the format has nothing to show.
    public var raw: UInt64?
    /// The shared state.
    public var state: InspectEntryState
    /// How the row reads.
    public var tone: InspectTone
    /// First guest byte the entry maps (nil for bookkeeping entries).
    public var guestOffset: UInt64?
    /// Guest bytes the entry maps.
    public var guestLength: UInt64
    /// Host offset of what the entry points to (data, compressed bytes, a lower table);
    /// nil when it points nowhere.
    public var hostOffset: UInt64?
    /// The lower table this entry points to, when it does and it can be read.
    public var child: InspectTableRef?
    /// Why the lower table this entry points to cannot be read (nil when it can or there is none).
    public var childError: String?
    /// The row's words, column by column ("L2[3]", "guest 0x30000", "0x50000", "COPIED",
    /// "refcount 1"): the view pads each column but the last to the table's widths.
    public var columns: [String]

    /// An entry.
    public init(index: Int, raw: UInt64? = nil, state: InspectEntryState, tone: InspectTone,
                guestOffset: UInt64? = nil, guestLength: UInt64 = 0, hostOffset: UInt64? = nil,
                child: InspectTableRef? = nil, childError: String? = nil, columns: [String]) {
        self.index = index
        self.raw = raw
        self.state = state
        self.tone = tone
        self.guestOffset = guestOffset
        self.guestLength = guestLength
        self.hostOffset = hostOffset
        self.child = child
        self.childError = childError
        self.columns = columns
    }

    /// The columns as one line, each but the last padded to `widths` (a column past the
    /// widths, and the last non-empty one, are not padded; trailing empty columns are dropped).
    public func line(widths: [Int]) -> String {
        var cols = columns
        while let last = cols.last, last.isEmpty { cols.removeLast() }
        var out = ""
        for (i, c) in cols.enumerated() {
            if i < cols.count - 1, i < widths.count, c.count < widths[i] {
                out += c + String(repeating: " ", count: widths[i] - c.count)
            } else {
                out += c
            }
        }
        return out
    }
}

/// One table of an image as its format describes it: a heading, its size, column widths,
/// and its entries read on demand (a view reads only the rows on screen; a table of a
/// million entries costs nothing until drawn).
///
/// `entry` runs on the thread that asks (the UI thread) and may read the live table under
/// the format's metadata lock; it must not block on I/O for long.
public struct InspectTable {
    // Not Sendable: ``entry`` reads the format's live tables on the viewer's thread.
    /// Which table this is.
    public var ref: InspectTableRef
    /// The table's short name for messages ("L1", "L2", "BAT", "grain directory").
    public var name: String
    /// The heading line ("L1 table at 0x30000: 16 entries, 3 with L2 tables; each covers 512 MiB").
    public var heading: String
    /// Entries in the table.
    public var count: Int
    /// Host offset of the table (nil when unknown).
    public var hostOffset: UInt64?
    /// Guest bytes one entry covers (a QCOW2 L1 entry covers an L2 table's span); 0 when
    /// entries map no guest range.
    public var guestSpan: UInt64
    /// The name of the tables this one's entries point to ("L2", "grain table"); nil when
    /// entries point to data.
    public var childName: String?
    /// Guest bytes one entry of those lower tables covers (0 when there are none).
    public var childSpan: UInt64
    /// Column widths for wide screens (90 columns and more).
    public var widths: [Int]
    /// Column widths for narrow screens.
    public var compactWidths: [Int]
    /// Why the table cannot be read (nil when it can): a view shows this instead of rows.
    public var error: String?
    /// Lines the view prints under the heading when the table cannot be read.
    public var errorNotes: [String]
    /// Entry `i` (`0..<count`).
    public var entry: (Int) -> InspectEntry

    /// A table.
    public init(ref: InspectTableRef, name: String, heading: String, count: Int, hostOffset: UInt64? = nil,
                guestSpan: UInt64 = 0, childName: String? = nil, childSpan: UInt64 = 0, widths: [Int], compactWidths: [Int]? = nil, error: String? = nil,
                errorNotes: [String] = [], entry: @escaping (Int) -> InspectEntry) {
        self.ref = ref
        self.name = name
        self.heading = heading
        self.count = count
        self.hostOffset = hostOffset
        self.guestSpan = guestSpan
        self.childName = childName
        self.childSpan = childSpan
        self.widths = widths
        self.compactWidths = compactWidths ?? widths
        self.error = error
        self.errorNotes = errorNotes
        self.entry = entry
    }
}

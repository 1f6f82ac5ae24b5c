import BlockInspect

/// A titled list of label/value rows for the Overview.
package struct InfoSection: Sendable {
    /// Section title.
    package var title: String
    /// Rows of (label, value, role of the value).
    package var rows: [(String, String, Role)]

    /// A section.
    package init(_ title: String, _ rows: [(String, String, Role)]) {
        self.title = title
        self.rows = rows
    }

    /// A section a format described, in colour roles.
    package init(_ s: InspectSection) {
        self.init(s.title, s.rows.map { ($0.label, $0.value, $0.tone.role) })
    }
}

extension InspectTone {
    /// The colour role a tone is drawn in: the UI's only knowledge of what formats describe
    /// (a theme then says how each role looks).
    package var role: Role {
        switch self {
        case .normal: return .normal
        case .dim: return .dim
        case .heading: return .heading
        case .ok: return .ok
        case .warning: return .warning
        case .error: return .error
        case .header: return .header
        case .table: return .l1
        case .subtable: return .l2
        case .counts: return .refcount
        case .snapshot: return .snapshot
        case .data: return .data
        case .compressed: return .compressed
        case .zero: return .zero
        case .backing: return .backing
        case .free: return .free
        }
    }
}

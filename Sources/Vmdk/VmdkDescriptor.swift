@_spi(Fuzzing) import BlockIO
import BlockInspect
import BlockMap

/// A VMDK text descriptor: the `# Disk DescriptorFile` that names a disk's extents.
///
/// It lives in its own small file (monolithicFlat, twoGbMaxExtent*, vmfs, seSparse) or
/// embedded in a sparse extent at the header's descriptorOffset (monolithicSparse,
/// streamOptimized). Parsing is line based, as VMware's "Virtual Disk Format 5.0" describes
/// it: `key=value` lines (`version`, `CID`, `parentCID`, `createType`,
/// `parentFileNameHint`), extent lines `ACCESS SECTORS TYPE ["file" [OFFSET]]`, and
/// `ddb.key = "value"` lines. Unknown keys are kept in ``other``; every error names the
/// descriptor's file and line.
public struct VmdkDescriptor: Sendable, Equatable {
    /// An extent's access mode (the first word of an extent line).
    public enum Access: String, Sendable, Equatable {
        /// Read and write.
        case readWrite = "RW"
        /// Read only.
        case readOnly = "RDONLY"
        /// No access (VMware keeps such extents for layout; reads fail).
        case noAccess = "NOACCESS"
    }

    /// An extent's type (the third word of an extent line).
    public enum ExtentType: String, Sendable, Equatable, CaseIterable {
        /// A sparse extent with a `KDMV` header (monolithicSparse, twoGbMaxExtentSparse, streamOptimized).
        case sparse = "SPARSE"
        /// A raw extent at an offset of its file (monolithicFlat, twoGbMaxExtentFlat).
        case flat = "FLAT"
        /// Reads as zeroes, backed by no file.
        case zero = "ZERO"
        /// A raw extent of an ESX vmfs disk (offset 0).
        case vmfs = "VMFS"
        /// ESX's old COWD sparse extent (not supported; refused with a message).
        case vmfsSparse = "VMFSSPARSE"
        /// ESXi's seSparse extent (read only).
        case seSparse = "SESPARSE"
        /// A raw device mapping (not supported).
        case vmfsRDM = "VMFSRDM"
        /// A raw device mapping (not supported).
        case vmfsRaw = "VMFSRAW"
    }

    /// One extent line.
    public struct Extent: Sendable, Equatable {
        /// RW, RDONLY or NOACCESS.
        public var access: Access
        /// Guest size of the extent in 512-byte sectors.
        public var sectors: UInt64
        /// What backs it.
        public var type: ExtentType
        /// The extent file as written (relative to the descriptor's folder unless absolute);
        /// nil for ZERO extents.
        public var file: String?
        /// Where the extent starts in its file, in sectors (FLAT only; 0 otherwise).
        public var offset: UInt64
        /// The 1-based line of the descriptor it came from.
        public var line: Int

        /// Creates an extent line.
        public init(access: Access = .readWrite, sectors: UInt64, type: ExtentType, file: String?, offset: UInt64 = 0, line: Int = 0) {
            self.access = access
            self.sectors = sectors
            self.type = type
            self.file = file
            self.offset = offset
            self.line = line
        }

        /// The line as a descriptor writes it.
        public var text: String {
            var s = "\(access.rawValue) \(sectors) \(type.rawValue)"
            if let file { s += " \"\(file)\"" }
            if type == .flat { s += " \(offset)" }
            return s
        }
    }

    /// `version=` (1, 2 or 3).
    public var version: Int
    /// `CID=`: the content id (hex), changed by the first write after an open.
    public var cid: UInt32
    /// `parentCID=`: the parent's CID when the child was made; 0xffffffff without a parent.
    public var parentCID: UInt32
    /// `createType=`: monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, ...
    public var createType: String
    /// `parentFileNameHint=`: the parent's path (relative to the child's folder unless absolute).
    public var parentFileNameHint: String?
    /// The extents, in guest order.
    public var extents: [Extent]
    /// The disk database (`ddb.` keys without the prefix), in file order.
    public var ddb: [(key: String, value: String)]
    /// Other `key=value` lines, in file order.
    public var other: [(key: String, value: String)]

    /// Creates a descriptor.
    public init(version: Int = 1, cid: UInt32, parentCID: UInt32 = 0xffff_ffff, createType: String, parentFileNameHint: String? = nil,
                extents: [Extent], ddb: [(key: String, value: String)] = [], other: [(key: String, value: String)] = []) {
        self.version = version
        self.cid = cid
        self.parentCID = parentCID
        self.createType = createType
        self.parentFileNameHint = parentFileNameHint
        self.extents = extents
        self.ddb = ddb
        self.other = other
    }

    /// Equal when every field and every ddb/other pair is.
    public static func == (a: VmdkDescriptor, b: VmdkDescriptor) -> Bool {
        a.version == b.version && a.cid == b.cid && a.parentCID == b.parentCID && a.createType == b.createType
            && a.parentFileNameHint == b.parentFileNameHint && a.extents == b.extents
            && a.ddb.map { $0.key + "=" + $0.value } == b.ddb.map { $0.key + "=" + $0.value }
            && a.other.map { $0.key + "=" + $0.value } == b.other.map { $0.key + "=" + $0.value }
    }

    /// The guest size: the sum of the extents' sectors, in bytes.
    public var capacity: UInt64 { extents.reduce(0) { $0 + $1.sectors } * 512 }

    /// Whether `bytes` look like a descriptor: qemu's probe (comment and blank lines, then
    /// `version=1`, `2` or `3` on its own line).
    public static func looksLikeDescriptor(_ bytes: [UInt8]) -> Bool {
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "#") {
                while i < bytes.count && bytes[i] != 10 { i += 1 }
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: " ") || bytes[i] == 10 || bytes[i] == 13 {
                while i < bytes.count && bytes[i] == UInt8(ascii: " ") { i += 1 }
                if i < bytes.count && bytes[i] == 13 { i += 1 }
                if i < bytes.count && bytes[i] != 10 { return false }
                i += 1
                continue
            }
            for v in ["version=1", "version=2", "version=3"] {
                let t = Array(v.utf8)
                if bytes.count >= i + t.count + 1 && Array(bytes[i..<(i + t.count)]) == t {
                    let n = bytes[i + t.count]
                    if n == 10 || (n == 13 && bytes.count > i + t.count + 1 && bytes[i + t.count + 1] == 10) { return true }
                }
            }
            return false
        }
        return false
    }

    /// The largest descriptor read (qemu reads at most 1 MiB too).
    public static let maxSize = 1 << 20

    /// Parses descriptor text (stops at the first NUL: an embedded descriptor is zero padded).
    /// `path` names the file in errors; `fileOffset` is where the text starts in it.
    public static func parse(_ bytes: [UInt8], path: String, fileOffset: UInt64 = 0) throws(BlockError) -> VmdkDescriptor {
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        if end > maxSize {
            throw BlockError(.invalidFormat, "vmdk: descriptor is larger than \(maxSize) bytes", path: path, hostOffset: fileOffset, operation: "open")
        }
        let text = String(decoding: bytes[..<end], as: UTF8.self)
        var version: Int?
        var cid: UInt32?
        var parentCID: UInt32 = 0xffff_ffff
        var createType: String?
        var hint: String?
        var extents: [Extent] = []
        var ddb: [(key: String, value: String)] = []
        var other: [(key: String, value: String)] = []
        func fail(_ line: Int, _ what: String) -> BlockError {
            BlockError(.invalidFormat, "vmdk: descriptor line \(line): \(what)", path: path, hostOffset: fileOffset, operation: "open")
        }
        var lineNo = 0
        for raw in vmdkLines(text) {
            lineNo += 1
            var line = raw
            if line.hasSuffix("\r") { line = line.dropLast() }
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let first = trimmed.prefix { $0 != " " && $0 != "\t" && $0 != "=" }
            if let access = Access(rawValue: String(first)), trimmed.dropFirst(first.count).first != "=" {
                if extents.count == FuzzingLimits.vmdkExtents {
                    throw fail(lineNo, "more than \(FuzzingLimits.vmdkExtents) extents (the fuzz targets' bound)")
                }
                extents.append(try parseExtent(trimmed, access: access, line: lineNo, fail: fail))
                continue
            }
            guard let eq = trimmed.firstIndex(of: "=") else { throw fail(lineNo, "expected key=value or an extent line, found '\(trimmed.prefix(80))'") }
            let key = trimmed[..<eq].vmdkTrimmed()
            var value = trimmed[trimmed.index(after: eq)...].vmdkTrimmed()
            if value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            switch key {
            case "version":
                guard let v = Int(value), (1...3).contains(v) else { throw fail(lineNo, "version=\(value): expected 1, 2 or 3") }
                version = v
            case "CID":
                guard let v = UInt32(value, radix: 16) else { throw fail(lineNo, "CID=\(value) is not a 32-bit hex number") }
                cid = v
            case "parentCID":
                guard let v = UInt32(value, radix: 16) else { throw fail(lineNo, "parentCID=\(value) is not a 32-bit hex number") }
                parentCID = v
            case "createType": createType = value
            case "parentFileNameHint": hint = value
            default:
                if key.hasPrefix("ddb.") { ddb.append((String(key.dropFirst(4)), value)) } else { other.append((key, value)) }
            }
        }
        guard let version else { throw BlockError(.invalidFormat, "vmdk: descriptor has no version= line", path: path, hostOffset: fileOffset, operation: "open") }
        guard let createType else { throw BlockError(.invalidFormat, "vmdk: descriptor has no createType= line", path: path, hostOffset: fileOffset, operation: "open") }
        if extents.isEmpty { throw BlockError(.invalidFormat, "vmdk: descriptor lists no extent", path: path, hostOffset: fileOffset, operation: "open") }
        var total: UInt64 = 0
        for e in extents {
            let (t, o) = total.addingReportingOverflow(e.sectors)
            if o || t > (UInt64(1) << 54) { throw fail(e.line, "the extents add up to more than 2^54 sectors") }
            total = t
        }
        return VmdkDescriptor(version: version, cid: cid ?? 0, parentCID: parentCID, createType: createType, parentFileNameHint: hint,
                              extents: extents, ddb: ddb, other: other)
    }

    /// Parses `ACCESS SECTORS TYPE ["file" [OFFSET]]`.
    /// The lines of `text` exactly as `text.split(separator: "\n", omittingEmptySubsequences:
    /// false)` gives them, found on the UTF-8 bytes instead of by grapheme breaking (which was
    /// a third of the parser's time): a "\n" is a character of its own unless a "\r" comes
    /// just before it, where the two are one character ("\r\n") that does not end a line.
    static func vmdkLines(_ text: String) -> VmdkLines { VmdkLines(text: text) }

    private static func parseExtent(_ s: Substring, access: Access, line: Int, fail: (Int, String) -> BlockError) throws(BlockError) -> Extent {
        var rest = s.dropFirst(access.rawValue.count)
        func word() -> Substring {
            rest = rest.drop { $0 == " " || $0 == "\t" }
            let w = rest.prefix { $0 != " " && $0 != "\t" }
            rest = rest.dropFirst(w.count)
            return w
        }
        let n = word()
        guard let sectors = UInt64(n), sectors > 0 else { throw fail(line, "extent size '\(n)' is not a positive number of sectors") }
        let t = word()
        guard let type = ExtentType(rawValue: String(t)) else {
            throw fail(line, "unknown extent type '\(t)' (expected \(ExtentType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        rest = rest.drop { $0 == " " || $0 == "\t" }
        var file: String?
        if rest.hasPrefix("\"") {
            let body = rest.dropFirst()
            guard let close = body.firstIndex(of: "\"") else { throw fail(line, "extent file name has no closing quote") }
            file = String(body[..<close])
            rest = body[body.index(after: close)...]
            if file!.isEmpty { throw fail(line, "extent file name is empty") }
        }
        let o = word()
        var offset: UInt64 = 0
        if !o.isEmpty {
            guard let v = UInt64(o) else { throw fail(line, "extent offset '\(o)' is not a number of sectors") }
            offset = v
        }
        if !word().isEmpty { throw fail(line, "extent line has words after the offset") }
        if type == .zero { if file != nil { throw fail(line, "a ZERO extent names no file") } } else if file == nil {
            throw fail(line, "\(type.rawValue) extent names no file")
        }
        if type == .flat && o.isEmpty { throw fail(line, "FLAT extent has no offset") }
        if type != .flat && !o.isEmpty { throw fail(line, "\(type.rawValue) extent takes no offset") }
        return Extent(access: access, sectors: sectors, type: type, file: file, offset: offset, line: line)
    }

    /// The descriptor as text, in the layout qemu-img and VMware write.
    public func text() -> String {
        var s = "# Disk DescriptorFile\nversion=\(version)\nCID=\(vmdkCID(cid))\nparentCID=\(vmdkCID(parentCID))\n"
        s += "createType=\"\(createType)\"\n"
        if let parentFileNameHint { s += "parentFileNameHint=\"\(parentFileNameHint)\"\n" }
        for (k, v) in other { s += "\(k)=\"\(v)\"\n" }
        s += "\n# Extent description\n"
        for e in extents { s += e.text + "\n" }
        s += "\n# The Disk Data Base\n#DDB\n\n"
        for (k, v) in ddb { s += "ddb.\(k) = \"\(v)\"\n" }
        return s
    }
}

/// `v` as 8 lowercase hex digits (a CID).
func vmdkCID(_ v: UInt32) -> String {
    let h = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 8 - h.count)) + h
}

extension Substring {
    /// The text without leading and trailing blanks and tabs.
    fileprivate func vmdkTrimmed() -> String {
        // Index steps on the substring: a String built from a reversed-reversed sequence went
        // character by character (an eighth of the vmdk fuzz target's time).
        var s = self
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// The lines of a descriptor, found on its UTF-8 bytes one at a time (the parser stops at the
/// first bad line without splitting the rest of up to 1 MiB of text). A "\n" right after a
/// "\r" is part of the one character "\r\n" and ends no line, as `split(separator: "\n")` on
/// the `String` does.
struct VmdkLines: Sequence, IteratorProtocol {
    let text: String
    private var start: String.Index
    private var done = false

    init(text: String) {
        self.text = text
        start = text.utf8.startIndex
    }

    mutating func next() -> Substring? {
        if done { return nil }
        let utf8 = text.utf8
        var i = start, afterCR = false
        while i != utf8.endIndex {
            let b = utf8[i]
            if b == 0x0a && !afterCR {
                let line = text[start..<i]
                start = utf8.index(after: i)
                return line
            }
            afterCR = b == 0x0d
            i = utf8.index(after: i)
        }
        done = true
        return text[start...]
    }
}

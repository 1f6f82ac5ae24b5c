#if canImport(Glibc)
import Glibc
#endif

/// The one error type of the block layer.
///
/// A `BlockError` carries what went wrong (``Kind``), the underlying `errno` when a
/// system call failed, and context: the image path, the guest or host offset and
/// the operation. Its ``description`` is one line a user can act on, for example
/// `"disk.img: qcow2: L2 table at 0x50000 lies beyond the end of the file (size 0x40000)"`.
public struct BlockError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The class of failure.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// A system call failed (see ``BlockError/errno``).
        case io
        /// The file is not a valid image of the expected format.
        case invalidFormat
        /// The image uses a feature blockscope does not implement.
        case unsupportedFeature
        /// The image's metadata is inconsistent (an offset past EOF, overlapping tables, ...).
        case corruptImage
        /// A request lies outside the image or a table.
        case outOfBounds
        /// A file, snapshot or backing image does not exist.
        case notFound
        /// A size computation would overflow or a size field is implausibly large.
        case overflow
        /// Another process holds a conflicting image lock.
        case locked
        /// The image was opened read-only and a write was attempted.
        case readOnly
        /// A bad argument: malformed job file, script, command line value.
        case invalidArgument
        /// The operation was cancelled or the engine was shut down.
        case cancelled
    }

    /// The class of failure.
    public var kind: Kind
    /// What is wrong, in words; the context fields are appended by ``description``.
    public var message: String
    /// The `errno` of the failed system call, if any.
    public var errno: Int32?
    /// The file the error concerns.
    public var path: String?
    /// The guest (virtual disk) offset involved, if any.
    public var guestOffset: UInt64?
    /// The host (image file) offset involved, if any.
    public var hostOffset: UInt64?
    /// The operation that failed ("read", "write", "open", "fsync", ...).
    public var operation: String?

    /// Creates an error; every context field is optional.
    public init(_ kind: Kind, _ message: String, errno: Int32? = nil, path: String? = nil,
                guestOffset: UInt64? = nil, hostOffset: UInt64? = nil, operation: String? = nil) {
        self.kind = kind
        self.message = message
        self.errno = errno
        self.path = path
        self.guestOffset = guestOffset
        self.hostOffset = hostOffset
        self.operation = operation
    }

    /// An `io` error from a failed system call: the message comes from `strerror`.
    public static func system(_ errno: Int32, _ operation: String, path: String? = nil,
                              hostOffset: UInt64? = nil, guestOffset: UInt64? = nil) -> BlockError {
        let kind: Kind
        switch errno {
        case ENOENT: kind = .notFound
        case EROFS, EBADF: kind = .io
        default: kind = .io
        }
        return BlockError(kind, "\(operation) failed: \(BlockError.errnoText(errno))", errno: errno,
                          path: path, guestOffset: guestOffset, hostOffset: hostOffset, operation: operation)
    }

    /// The C library's text for `errno` (`strerror`).
    public static func errnoText(_ code: Int32) -> String {
        if let s = strerror(code) { return String(cString: s) }
        return "errno \(code)"
    }

    /// Returns a copy with the path filled in when it was not set.
    public func withPath(_ p: String) -> BlockError {
        var e = self
        if e.path == nil { e.path = p }
        return e
    }

    /// Returns a copy with the guest offset filled in when it was not set.
    public func withGuestOffset(_ off: UInt64) -> BlockError {
        var e = self
        if e.guestOffset == nil { e.guestOffset = off }
        return e
    }

    /// One line: `path: message (guest offset 0x..., host offset 0x...)`.
    public var description: String {
        var s = ""
        if let path { s += "\(path): " }
        s += message
        var ctx: [String] = []
        if let guestOffset { ctx.append("guest offset 0x\(String(guestOffset, radix: 16))") }
        if let hostOffset { ctx.append("host offset 0x\(String(hostOffset, radix: 16))") }
        if !ctx.isEmpty { s += " (" + ctx.joined(separator: ", ") + ")" }
        return s
    }
}

/// Formats a byte offset as `0x...` hexadecimal, as error messages and views print offsets.
@inlinable
public func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

/// Adds two sizes, throwing an `overflow` error instead of trapping.
@inlinable
public func checkedAdd(_ a: UInt64, _ b: UInt64, _ what: @autoclosure () -> String) throws(BlockError) -> UInt64 {
    let (r, o) = a.addingReportingOverflow(b)
    if o { throw BlockError(.overflow, "\(what()) overflows 64 bits") }
    return r
}

/// Multiplies two sizes, throwing an `overflow` error instead of trapping.
@inlinable
public func checkedMul(_ a: UInt64, _ b: UInt64, _ what: @autoclosure () -> String) throws(BlockError) -> UInt64 {
    let (r, o) = a.multipliedReportingOverflow(by: b)
    if o { throw BlockError(.overflow, "\(what()) overflows 64 bits") }
    return r
}

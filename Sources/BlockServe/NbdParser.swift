/// A transmission request header (28 bytes on the wire).
public struct NbdRequest: Sendable, Equatable {
    /// NBD_CMD_FLAG_* bits as sent (unknown bits kept, so they can be refused).
    package var flags: UInt16
    /// The command number as sent (unknown numbers kept, so they can be refused).
    package var type: UInt16
    /// The client's opaque handle, echoed in the reply (its "cookie").
    package var handle: UInt64
    /// Guest byte offset.
    package var offset: UInt64
    /// Length in bytes; for NBD_CMD_WRITE also the payload that follows.
    package var length: UInt32

    /// Creates a request.
    package init(flags: UInt16, type: UInt16, handle: UInt64, offset: UInt64, length: UInt32) {
        self.flags = flags
        self.type = type
        self.handle = handle
        self.offset = offset
        self.length = length
    }

    /// The command, when the number is one this server knows.
    package var command: Nbd.Command? { Nbd.Command(rawValue: type) }
    /// The flags as an option set.
    package var commandFlags: Nbd.CommandFlags { Nbd.CommandFlags(rawValue: flags) }
}

/// What parsing a request header found.
public enum NbdRequestParse: Sendable, Equatable {
    /// Fewer than 28 bytes are available.
    case needMore
    /// The magic is wrong: the stream cannot be resynchronised, the client must go.
    case badMagic(UInt32)
    /// A well-formed header (its command and flags still need checking).
    case request(NbdRequest)
}

/// An option header (16 bytes): magic, option number, data length.
public struct NbdOptionHeader: Sendable, Equatable {
    /// The IHAVEOPT magic as sent.
    package var magic: UInt64
    /// The option number as sent.
    package var option: UInt32
    /// The length of the option data that follows.
    package var length: UInt32
}

/// The data of NBD_OPT_INFO / NBD_OPT_GO: an export name and the info items asked for.
public struct NbdInfoRequest: Sendable, Equatable {
    /// The export name ("" is the default export).
    package var name: String
    /// NBD_INFO_* numbers the client asked for.
    package var requests: [UInt16]
}

/// The data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT.
public struct NbdMetaContextRequest: Sendable, Equatable {
    /// The export name.
    package var name: String
    /// The queries, such as "base:allocation" or "base:".
    package var queries: [String]
}

/// Pure parsing of NBD wire data: no I/O, no state, nil (or a case) for malformed input, so
/// every function can be fed arbitrary bytes (and fuzzed).
public enum NbdParser {
    /// Size of a request header.
    package static let requestSize = 28
    /// Size of an option header.
    package static let optionHeaderSize = 16
    /// Longest export name or metadata-context query accepted (as the protocol suggests).
    package static let maxStringLength = 4096
    /// Most metadata-context queries accepted in one option.
    package static let maxQueries = 128

    /// Parses a request header from the first 28 bytes of `p`.
    package static func request(_ p: UnsafeRawBufferPointer) -> NbdRequestParse {
        guard p.count >= requestSize else { return .needMore }
        func be32(_ at: Int) -> UInt32 { UInt32(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        func be16(_ at: Int) -> UInt16 { UInt16(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
        func be64(_ at: Int) -> UInt64 { UInt64(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        let magic = be32(0)
        guard magic == Nbd.requestMagic else { return .badMagic(magic) }
        return .request(NbdRequest(flags: be16(4), type: be16(6), handle: be64(8), offset: be64(16), length: be32(24)))
    }

    /// Parses a request header from a byte array (tests and fuzzing).
    public static func request(_ bytes: [UInt8]) -> NbdRequestParse {
        bytes.withUnsafeBytes { request($0) }
    }

    /// Parses an option header; nil when fewer than 16 bytes are given.
    public static func optionHeader(_ bytes: [UInt8]) -> NbdOptionHeader? {
        var r = NbdByteReader(bytes)
        guard let m = r.u64(), let o = r.u32(), let l = r.u32() else { return nil }
        return NbdOptionHeader(magic: m, option: o, length: l)
    }

    /// Parses NBD_OPT_INFO/GO data; nil when lengths disagree with the data or the name is too long.
    public static func infoRequest(_ data: [UInt8]) -> NbdInfoRequest? {
        var r = NbdByteReader(data)
        guard let nlen = r.u32(), nlen <= maxStringLength, let name = r.string(Int(nlen)),
              let n = r.u16(), r.remaining == Int(n) * 2 else { return nil }
        var items: [UInt16] = []
        for _ in 0..<n { guard let i = r.u16() else { return nil }; items.append(i) }
        return NbdInfoRequest(name: name, requests: items)
    }

    /// Parses NBD_OPT_LIST/SET_META_CONTEXT data; nil when malformed or over the limits.
    public static func metaContextRequest(_ data: [UInt8]) -> NbdMetaContextRequest? {
        var r = NbdByteReader(data)
        guard let nlen = r.u32(), nlen <= maxStringLength, let name = r.string(Int(nlen)),
              let n = r.u32(), n <= maxQueries else { return nil }
        var queries: [String] = []
        for _ in 0..<n {
            guard let qlen = r.u32(), qlen <= maxStringLength, let q = r.string(Int(qlen)) else { return nil }
            queries.append(q)
        }
        guard r.remaining == 0 else { return nil }
        return NbdMetaContextRequest(name: name, queries: queries)
    }

    /// Whether a metadata-context query selects `base:allocation` ("base:allocation" itself,
    /// or the namespace-wide "base:"); other namespaces select nothing.
    package static func selectsBaseAllocation(_ query: String) -> Bool {
        query == Nbd.baseAllocation || query == "base:"
    }
}

/// Pure encoding of NBD replies into byte arrays (handshake and rare replies; the read
/// path writes its headers in place with ``NbdStore``).
package enum NbdEncoder {
    /// The server's greeting: NBDMAGIC, IHAVEOPT, handshake flags.
    package static func greeting() -> [UInt8] {
        var w = NbdByteWriter(capacity: 18)
        w.u64(Nbd.initMagic); w.u64(Nbd.optionMagic); w.u16(Nbd.flagFixedNewstyle | Nbd.flagNoZeroes)
        return w.bytes
    }

    /// An option reply: magic, option, reply type, data.
    package static func optionReply(option: UInt32, type: UInt32, data: [UInt8] = []) -> [UInt8] {
        var w = NbdByteWriter(capacity: 20 + data.count)
        w.u64(Nbd.optionReplyMagic); w.u32(option); w.u32(type); w.u32(UInt32(data.count)); w.append(data)
        return w.bytes
    }

    /// NBD_INFO_EXPORT data: size and transmission flags.
    package static func infoExport(size: UInt64, flags: UInt16) -> [UInt8] {
        var w = NbdByteWriter(capacity: 12)
        w.u16(Nbd.InfoType.export.rawValue); w.u64(size); w.u16(flags)
        return w.bytes
    }

    /// NBD_INFO_BLOCK_SIZE data.
    package static func infoBlockSize(minimum: UInt32, preferred: UInt32, maximum: UInt32) -> [UInt8] {
        var w = NbdByteWriter(capacity: 14)
        w.u16(Nbd.InfoType.blockSize.rawValue); w.u32(minimum); w.u32(preferred); w.u32(maximum)
        return w.bytes
    }

    /// NBD_INFO_NAME or NBD_INFO_DESCRIPTION data.
    package static func infoString(_ type: Nbd.InfoType, _ s: String) -> [UInt8] {
        var w = NbdByteWriter(capacity: 2 + s.utf8.count)
        w.u16(type.rawValue); w.append(Array(s.utf8))
        return w.bytes
    }

    /// NBD_REP_SERVER data: one export name.
    package static func serverEntry(_ name: String) -> [UInt8] {
        var w = NbdByteWriter(capacity: 4 + name.utf8.count)
        w.u32(UInt32(name.utf8.count)); w.append(Array(name.utf8))
        return w.bytes
    }

    /// NBD_REP_META_CONTEXT data: context id and name.
    package static func metaContext(id: UInt32, name: String) -> [UInt8] {
        var w = NbdByteWriter(capacity: 4 + name.utf8.count)
        w.u32(id); w.append(Array(name.utf8))
        return w.bytes
    }

    /// The reply to NBD_OPT_EXPORT_NAME: size, flags, and 124 zero bytes unless the client
    /// negotiated NO_ZEROES.
    package static func exportNameReply(size: UInt64, flags: UInt16, noZeroes: Bool) -> [UInt8] {
        var w = NbdByteWriter(capacity: 134)
        w.u64(size); w.u16(flags)
        if !noZeroes { w.append([UInt8](repeating: 0, count: 124)) }
        return w.bytes
    }

    /// A simple reply header (16 bytes).
    package static func simpleReply(handle: UInt64, error: UInt32) -> [UInt8] {
        var w = NbdByteWriter(capacity: 16)
        w.u32(Nbd.simpleReplyMagic); w.u32(error); w.u64(handle)
        return w.bytes
    }

    /// A structured reply chunk header (20 bytes) announcing `length` payload bytes.
    package static func chunkHeader(handle: UInt64, type: Nbd.ChunkType, flags: UInt16, length: UInt32) -> [UInt8] {
        var w = NbdByteWriter(capacity: 20)
        w.u32(Nbd.structuredReplyMagic); w.u16(flags); w.u16(type.rawValue); w.u64(handle); w.u32(length)
        return w.bytes
    }
}

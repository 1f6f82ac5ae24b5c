/// Constants of the NBD protocol (fixed newstyle negotiation, simple and structured replies),
/// with the names the protocol document uses. All integers travel big-endian.
package enum Nbd {
    /// "NBDMAGIC": the first eight bytes the server sends.
    package static let initMagic: UInt64 = 0x4e42_444d_4147_4943
    /// "IHAVEOPT": newstyle negotiation magic, and the prefix of every client option.
    package static let optionMagic: UInt64 = 0x4948_4156_454f_5054
    /// Prefix of every option reply.
    package static let optionReplyMagic: UInt64 = 0x0003_e889_0455_65a9
    /// Prefix of every transmission request.
    package static let requestMagic: UInt32 = 0x2560_9513
    /// Prefix of a simple reply.
    package static let simpleReplyMagic: UInt32 = 0x6744_6698
    /// Prefix of a structured reply chunk.
    package static let structuredReplyMagic: UInt32 = 0x668e_33ef

    /// Server handshake flag: fixed newstyle.
    package static let flagFixedNewstyle: UInt16 = 1 << 0
    /// Server handshake flag: the client may skip the 124 zero bytes after NBD_OPT_EXPORT_NAME.
    package static let flagNoZeroes: UInt16 = 1 << 1
    /// Client flag: fixed newstyle understood.
    package static let clientFixedNewstyle: UInt32 = 1 << 0
    /// Client flag: no zero padding after NBD_OPT_EXPORT_NAME.
    package static let clientNoZeroes: UInt32 = 1 << 1

    /// Transmission flags sent with the export (NBD_FLAG_*).
    package struct TransmissionFlags: OptionSet, Sendable {
        /// The raw 16-bit value.
        package let rawValue: UInt16
        /// Creates flags from the wire value.
        package init(rawValue: UInt16) { self.rawValue = rawValue }
        /// NBD_FLAG_HAS_FLAGS: always set.
        package static let hasFlags = TransmissionFlags(rawValue: 1 << 0)
        /// NBD_FLAG_READ_ONLY.
        package static let readOnly = TransmissionFlags(rawValue: 1 << 1)
        /// NBD_FLAG_SEND_FLUSH.
        package static let sendFlush = TransmissionFlags(rawValue: 1 << 2)
        /// NBD_FLAG_SEND_FUA.
        package static let sendFua = TransmissionFlags(rawValue: 1 << 3)
        /// NBD_FLAG_ROTATIONAL.
        package static let rotational = TransmissionFlags(rawValue: 1 << 4)
        /// NBD_FLAG_SEND_TRIM.
        package static let sendTrim = TransmissionFlags(rawValue: 1 << 5)
        /// NBD_FLAG_SEND_WRITE_ZEROES.
        package static let sendWriteZeroes = TransmissionFlags(rawValue: 1 << 6)
        /// NBD_FLAG_SEND_DF: reads are never fragmented anyway.
        package static let sendDf = TransmissionFlags(rawValue: 1 << 7)
        /// NBD_FLAG_CAN_MULTI_CONN: a flush on one connection covers writes completed on all.
        package static let canMultiConn = TransmissionFlags(rawValue: 1 << 8)
        /// NBD_FLAG_SEND_CACHE.
        package static let sendCache = TransmissionFlags(rawValue: 1 << 10)
        /// NBD_FLAG_SEND_FAST_ZERO.
        package static let sendFastZero = TransmissionFlags(rawValue: 1 << 11)
    }

    /// Option numbers (NBD_OPT_*).
    package enum Option: UInt32, Sendable {
        /// NBD_OPT_EXPORT_NAME: old way into transmission; no error reply possible.
        case exportName = 1
        /// NBD_OPT_ABORT.
        case abort = 2
        /// NBD_OPT_LIST.
        case list = 3
        /// NBD_OPT_STARTTLS (refused: no TLS).
        case startTLS = 5
        /// NBD_OPT_INFO.
        case info = 6
        /// NBD_OPT_GO.
        case go = 7
        /// NBD_OPT_STRUCTURED_REPLY.
        case structuredReply = 8
        /// NBD_OPT_LIST_META_CONTEXT.
        case listMetaContext = 9
        /// NBD_OPT_SET_META_CONTEXT.
        case setMetaContext = 10
    }

    /// Option reply types (NBD_REP_*); errors have bit 31 set.
    package enum Reply: UInt32, Sendable {
        /// NBD_REP_ACK.
        case ack = 1
        /// NBD_REP_SERVER: one export of NBD_OPT_LIST.
        case server = 2
        /// NBD_REP_INFO.
        case info = 3
        /// NBD_REP_META_CONTEXT.
        case metaContext = 4
        /// NBD_REP_ERR_UNSUP.
        case errUnsupported = 0x8000_0001
        /// NBD_REP_ERR_POLICY.
        case errPolicy = 0x8000_0002
        /// NBD_REP_ERR_INVALID.
        case errInvalid = 0x8000_0003
        /// NBD_REP_ERR_PLATFORM.
        case errPlatform = 0x8000_0004
        /// NBD_REP_ERR_TLS_REQD.
        case errTLSRequired = 0x8000_0005
        /// NBD_REP_ERR_UNKNOWN: no such export.
        case errUnknown = 0x8000_0006
        /// NBD_REP_ERR_SHUTDOWN.
        case errShutdown = 0x8000_0007
        /// NBD_REP_ERR_TOO_BIG.
        case errTooBig = 0x8000_0009
    }

    /// NBD_INFO_* item types of NBD_OPT_INFO/GO.
    package enum InfoType: UInt16, Sendable {
        /// NBD_INFO_EXPORT: size and transmission flags (always sent).
        case export = 0
        /// NBD_INFO_NAME.
        case name = 1
        /// NBD_INFO_DESCRIPTION.
        case description = 2
        /// NBD_INFO_BLOCK_SIZE: minimum, preferred, maximum.
        case blockSize = 3
    }

    /// Command types (NBD_CMD_*).
    package enum Command: UInt16, Sendable {
        /// NBD_CMD_READ.
        case read = 0
        /// NBD_CMD_WRITE (a payload of `length` bytes follows the header).
        case write = 1
        /// NBD_CMD_DISC: no reply; the server closes after in-flight requests.
        case disconnect = 2
        /// NBD_CMD_FLUSH.
        case flush = 3
        /// NBD_CMD_TRIM.
        case trim = 4
        /// NBD_CMD_CACHE (advisory).
        case cache = 5
        /// NBD_CMD_WRITE_ZEROES.
        case writeZeroes = 6
        /// NBD_CMD_BLOCK_STATUS.
        case blockStatus = 7
    }

    /// Command flags (NBD_CMD_FLAG_*).
    package struct CommandFlags: OptionSet, Sendable {
        /// The raw 16-bit value.
        package let rawValue: UInt16
        /// Creates flags from the wire value.
        package init(rawValue: UInt16) { self.rawValue = rawValue }
        /// NBD_CMD_FLAG_FUA: the write is durable before the reply.
        package static let fua = CommandFlags(rawValue: 1 << 0)
        /// NBD_CMD_FLAG_NO_HOLE: write zeroes without deallocating.
        package static let noHole = CommandFlags(rawValue: 1 << 1)
        /// NBD_CMD_FLAG_DF: do not fragment a structured read.
        package static let df = CommandFlags(rawValue: 1 << 2)
        /// NBD_CMD_FLAG_REQ_ONE: block status wants one extent.
        package static let reqOne = CommandFlags(rawValue: 1 << 3)
        /// NBD_CMD_FLAG_FAST_ZERO: fail with ENOTSUP rather than zero slowly.
        package static let fastZero = CommandFlags(rawValue: 1 << 4)
        /// Every flag this server understands.
        package static let known: CommandFlags = [.fua, .noHole, .df, .reqOne, .fastZero]
    }

    /// Structured reply chunk types (NBD_REPLY_TYPE_*).
    package enum ChunkType: UInt16, Sendable {
        /// NBD_REPLY_TYPE_NONE.
        case none = 0
        /// NBD_REPLY_TYPE_OFFSET_DATA.
        case offsetData = 1
        /// NBD_REPLY_TYPE_OFFSET_HOLE.
        case offsetHole = 2
        /// NBD_REPLY_TYPE_BLOCK_STATUS.
        case blockStatus = 5
        /// NBD_REPLY_TYPE_ERROR.
        case error = 0x8001
    }

    /// NBD_REPLY_FLAG_DONE: the last chunk of a structured reply.
    package static let replyFlagDone: UInt16 = 1

    /// Error values on the wire (the protocol's own numbering, equal to Linux errno).
    package enum ErrorCode: UInt32, Sendable {
        /// NBD_EPERM: writing a read-only export.
        case perm = 1
        /// NBD_EIO.
        case io = 5
        /// NBD_ENOMEM.
        case noMemory = 12
        /// NBD_EINVAL: bad offset, length, flags or command.
        case invalid = 22
        /// NBD_ENOSPC: write past the end.
        case noSpace = 28
        /// NBD_EOVERFLOW: length over the advertised maximum.
        case overflow = 75
        /// NBD_ENOTSUP: e.g. FAST_ZERO that cannot be fast.
        case notSupported = 95
        /// NBD_ESHUTDOWN: the server is shutting down.
        case shutdown = 108

        /// The NBD code for a host errno (EIO for anything without its own code).
        package init(errno e: Int32?) {
            switch e {
            case 1?, 13?: self = .perm
            case 12?: self = .noMemory
            case 22?: self = .invalid
            case 28?, 27?: self = .noSpace
            case 75?: self = .overflow
            case 95?: self = .notSupported
            default: self = .io
            }
        }
    }

    /// The `base:allocation` metadata context's flag: the range is a hole.
    package static let stateHole: UInt32 = 1
    /// The `base:allocation` metadata context's flag: the range reads as zeroes.
    package static let stateZero: UInt32 = 2
    /// The one metadata context this server offers.
    package static let baseAllocation = "base:allocation"
}

/// A message header as read from the socket.
public struct VhostUserHeader: Sendable, Equatable {
    /// The request code (``VhostUser/Request`` when known).
    public var request: UInt32
    /// Version and reply/need-reply bits (``VhostUser/Flag``).
    public var flags: UInt32
    /// Payload bytes following the header.
    public var size: UInt32

    /// Whether the front end asked for a REPLY_ACK status.
    public var needsReply: Bool { flags & VhostUser.Flag.needReply != 0 }
}

/// One guest memory region of SET_MEM_TABLE: where it is for the guest (`guestPhysical`),
/// for the VMM's own process (`userAddress`, which SET_VRING_ADDR uses) and in the region's
/// file descriptor (`mmapOffset`).
public struct VhostUserMemoryRegion: Sendable, Equatable {
    /// Guest-physical address of the region's first byte.
    public var guestPhysical: UInt64
    /// Bytes in the region.
    public var size: UInt64
    /// The VMM's virtual address of the region's first byte.
    public var userAddress: UInt64
    /// Offset of the region's first byte in its file descriptor.
    public var mmapOffset: UInt64
}

/// SET_VRING_ADDR: the three ring parts as VMM virtual addresses.
public struct VhostUserVringAddress: Sendable, Equatable {
    /// The virtqueue.
    public var index: UInt32
    /// Bit 0: log used-ring writes (refused: logging is not offered).
    public var flags: UInt32
    /// The descriptor table.
    public var descriptor: UInt64
    /// The used ring.
    public var used: UInt64
    /// The available ring.
    public var available: UInt64
}

/// GET_INFLIGHT_FD and SET_INFLIGHT_FD: the shared region that tracks requests in flight
/// (the front end sends the queue count and size; the back end answers with the size and
/// offset of the region in the descriptor it sends).
public struct VhostUserInflightDescription: Sendable, Equatable {
    /// Bytes of the region.
    public var mmapSize: UInt64
    /// Where the region starts in its file descriptor.
    public var mmapOffset: UInt64
    /// Virtqueues tracked.
    public var numQueues: UInt16
    /// Entries of each virtqueue.
    public var queueSize: UInt16

    /// Bytes of the payload on the wire (QEMU's struct: two u64, two u16, 4 bytes of padding).
    public static let wireSize = 24

    /// Creates a description.
    public init(mmapSize: UInt64, mmapOffset: UInt64, numQueues: UInt16, queueSize: UInt16) {
        self.mmapSize = mmapSize
        self.mmapOffset = mmapOffset
        self.numQueues = numQueues
        self.queueSize = queueSize
    }
}

/// A front-end message decoded from bytes, with what its payload says. File descriptors
/// travel beside the bytes (SCM_RIGHTS) and are matched by the connection.
public enum VhostUserMessage: Sendable, Equatable {
    case getFeatures
    case setFeatures(UInt64)
    case setOwner
    case resetOwner
    case resetDevice
    case setMemTable([VhostUserMemoryRegion])
    case setVringNum(index: UInt32, num: UInt32)
    case setVringAddr(VhostUserVringAddress)
    case setVringBase(index: UInt32, num: UInt32)
    case getVringBase(index: UInt32)
    /// KICK, CALL or ERR: the queue index and whether a descriptor comes with it.
    case setVringFd(VhostUser.Request, index: UInt32, hasFd: Bool)
    case getProtocolFeatures
    case setProtocolFeatures(UInt64)
    case getQueueNum
    case setVringEnable(index: UInt32, enable: Bool)
    case getConfig(offset: UInt32, size: UInt32, flags: UInt32)
    case setConfig(offset: UInt32, size: UInt32, flags: UInt32, bytes: [UInt8])
    /// The front end asks for a fresh inflight region for these queues.
    case getInflightFd(VhostUserInflightDescription)
    /// The front end hands an inflight region back (with its descriptor).
    case setInflightFd(VhostUserInflightDescription)
    /// A request this back end does not implement (known code or not).
    case unsupported(code: UInt32)
}

/// Pure decoding and encoding of vhost-user messages: bytes in, values out, no I/O, so the
/// fuzz target drives it directly. Every length is checked before it is read; nothing is
/// allocated from a size the peer sends beyond ``VhostUser/maxPayload``.
public enum VhostUserParser {
    /// A header, or a sentence saying what is wrong with it (wrong version, reply bit set,
    /// payload over ``VhostUser/maxPayload``); `bytes` holds exactly 12 bytes.
    public static func header(_ bytes: UnsafeRawBufferPointer) -> Result<VhostUserHeader, VhostUserParseError> {
        guard bytes.count >= VhostUser.headerSize else { return .failure(.init("header of \(bytes.count) bytes, need 12")) }
        let h = VhostUserHeader(request: LE.u32(bytes, 0), flags: LE.u32(bytes, 4), size: LE.u32(bytes, 8))
        if h.flags & 0x3 != VhostUser.Flag.version {
            return .failure(.init("message \(h.request) has protocol version \(h.flags & 0x3), not 1"))
        }
        if h.flags & VhostUser.Flag.reply != 0 { return .failure(.init("message \(h.request) has the reply flag set (a front end sends requests)")) }
        if h.size > VhostUser.maxPayload {
            return .failure(.init("message \(h.request) announces a payload of \(h.size) bytes (at most \(VhostUser.maxPayload))"))
        }
        return .success(h)
    }

    /// Decodes the payload of a message whose header is `h`; `payload` holds `h.size` bytes.
    /// A payload too short for its request, a region count over 8 or an oversized config
    /// access is an error sentence naming the request.
    public static func message(_ h: VhostUserHeader, _ payload: UnsafeRawBufferPointer) -> Result<VhostUserMessage, VhostUserParseError> {
        guard let req = VhostUser.Request(rawValue: h.request) else { return .success(.unsupported(code: h.request)) }
        let n = payload.count
        func need(_ bytes: Int) -> VhostUserParseError? {
            n < bytes ? VhostUserParseError("\(req.name) payload of \(n) bytes, need \(bytes)") : nil
        }
        switch req {
        case .getFeatures: return .success(.getFeatures)
        case .getProtocolFeatures: return .success(.getProtocolFeatures)
        case .getQueueNum: return .success(.getQueueNum)
        case .setOwner: return .success(.setOwner)
        case .resetOwner: return .success(.resetOwner)
        case .resetDevice: return .success(.resetDevice)
        case .setFeatures, .setProtocolFeatures:
            if let e = need(8) { return .failure(e) }
            let v = LE.u64(payload, 0)
            return .success(req == .setFeatures ? .setFeatures(v) : .setProtocolFeatures(v))
        case .setMemTable:
            if let e = need(8) { return .failure(e) }
            let count = Int(LE.u32(payload, 0))
            if count == 0 || count > VhostUser.maxRegions {
                return .failure(.init("SET_MEM_TABLE with \(count) regions (1 to \(VhostUser.maxRegions))"))
            }
            if let e = need(8 + 32 * count) { return .failure(e) }
            var regions: [VhostUserMemoryRegion] = []
            for i in 0..<count {
                let o = 8 + 32 * i
                let r = VhostUserMemoryRegion(guestPhysical: LE.u64(payload, o), size: LE.u64(payload, o + 8),
                                              userAddress: LE.u64(payload, o + 16), mmapOffset: LE.u64(payload, o + 24))
                if r.size == 0 { return .failure(.init("SET_MEM_TABLE region \(i) has size 0")) }
                if r.guestPhysical &+ r.size < r.guestPhysical || r.userAddress &+ r.size < r.userAddress || r.mmapOffset &+ r.size < r.mmapOffset {
                    return .failure(.init("SET_MEM_TABLE region \(i) wraps the address space"))
                }
                regions.append(r)
            }
            return .success(.setMemTable(regions))
        case .setVringNum, .setVringBase, .setVringEnable, .getVringBase:
            if let e = need(8) { return .failure(e) }
            let index = LE.u32(payload, 0), num = LE.u32(payload, 4)
            switch req {
            case .setVringNum: return .success(.setVringNum(index: index, num: num))
            case .setVringBase: return .success(.setVringBase(index: index, num: num))
            case .setVringEnable: return .success(.setVringEnable(index: index, enable: num != 0))
            default: return .success(.getVringBase(index: index))
            }
        case .setVringAddr:
            if let e = need(40) { return .failure(e) }
            return .success(.setVringAddr(VhostUserVringAddress(index: LE.u32(payload, 0), flags: LE.u32(payload, 4),
                                                                descriptor: LE.u64(payload, 8), used: LE.u64(payload, 16),
                                                                available: LE.u64(payload, 24))))
        case .setVringKick, .setVringCall, .setVringErr:
            if let e = need(8) { return .failure(e) }
            let v = LE.u64(payload, 0)
            return .success(.setVringFd(req, index: UInt32(v & 0xff), hasFd: v & VhostUser.vringNoFdFlag == 0))
        case .getConfig, .setConfig:
            if let e = need(12) { return .failure(e) }
            let offset = LE.u32(payload, 0), size = LE.u32(payload, 4), flags = LE.u32(payload, 8)
            if size > 256 || offset > 256 || offset + size > 256 {
                return .failure(.init("\(req.name) of \(size) bytes at offset \(offset) (the config space has 256)"))
            }
            if req == .getConfig { return .success(.getConfig(offset: offset, size: size, flags: flags)) }
            if let e = need(12 + Int(size)) { return .failure(e) }
            return .success(.setConfig(offset: offset, size: size, flags: flags, bytes: Array(payload[12..<(12 + Int(size))])))
        case .getInflightFd, .setInflightFd:
            // The fields end at byte 20; QEMU sends 24 (its struct's padding).
            if let e = need(20) { return .failure(e) }
            let d = VhostUserInflightDescription(mmapSize: LE.u64(payload, 0), mmapOffset: LE.u64(payload, 8),
                                                 numQueues: LE.u16(payload, 16), queueSize: LE.u16(payload, 18))
            return .success(req == .getInflightFd ? .getInflightFd(d) : .setInflightFd(d))
        default:
            return .success(.unsupported(code: h.request))
        }
    }

    /// A reply to request `request`: the header (reply bit set) and `payload`.
    public static func reply(_ request: UInt32, _ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(12 + payload.count)
        LE.append(&out, UInt64(request), 4)
        LE.append(&out, UInt64(VhostUser.Flag.version | VhostUser.Flag.reply), 4)
        LE.append(&out, UInt64(payload.count), 4)
        out += payload
        return out
    }

    /// A reply carrying one u64 (features, queue count, REPLY_ACK status).
    public static func reply(_ request: UInt32, u64 v: UInt64) -> [UInt8] {
        var p: [UInt8] = []
        LE.append(&p, v, 8)
        return reply(request, p)
    }

    /// A reply to GET_INFLIGHT_FD: the region's size and offset, the queue count and size
    /// (24 bytes, as QEMU checks).
    public static func reply(_ request: UInt32, inflight d: VhostUserInflightDescription) -> [UInt8] {
        var p: [UInt8] = []
        LE.append(&p, d.mmapSize, 8)
        LE.append(&p, d.mmapOffset, 8)
        LE.append(&p, UInt64(d.numQueues), 2)
        LE.append(&p, UInt64(d.queueSize), 2)
        LE.append(&p, 0, 4)
        return reply(request, p)
    }

    /// A reply carrying a vring state (index, num): GET_VRING_BASE.
    public static func reply(_ request: UInt32, index: UInt32, num: UInt32) -> [UInt8] {
        var p: [UInt8] = []
        LE.append(&p, UInt64(index), 4)
        LE.append(&p, UInt64(num), 4)
        return reply(request, p)
    }
}

/// Why a message could not be decoded: one sentence for the connection's log line.
public struct VhostUserParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, naming the request.
    public var description: String
    /// Creates an error with its sentence.
    public init(_ description: String) { self.description = description }
}

/// Little-endian loads from and appends to raw bytes; callers check bounds first.
enum LE {
    @inline(__always) static func u16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 {
        UInt16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt16.self))
    }
    @inline(__always) static func u32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self))
    }
    @inline(__always) static func u64(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt64 {
        UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self))
    }
    static func append(_ out: inout [UInt8], _ v: UInt64, _ n: Int) {
        for i in 0..<n { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }
}

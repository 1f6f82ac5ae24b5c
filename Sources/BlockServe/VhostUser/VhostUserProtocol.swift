/// Constants of the vhost-user protocol (QEMU's docs/interop/vhost-user.rst) and of the
/// virtio split ring, as far as a vhost-user-blk back end uses them.
///
/// Every integer on the vhost-user socket and in guest memory is little-endian.
public enum VhostUser {
    /// Bytes of a message header: request (u32), flags (u32), payload size (u32).
    public static let headerSize = 12
    /// The largest payload the back end accepts; a header announcing more ends the
    /// connection (the largest real message, SET_MEM_TABLE with 8 regions, is 264 bytes).
    public static let maxPayload = 4096
    /// Memory regions a SET_MEM_TABLE may carry (VHOST_MEMORY_BASELINE_NREGIONS).
    public static let maxRegions = 8
    /// File descriptors taken from one message at most (more are closed).
    public static let maxFds = 8

    /// Header flag bits.
    public enum Flag {
        /// The protocol version, in the low two bits: always 1.
        public static let version: UInt32 = 0x1
        /// Set on replies.
        public static let reply: UInt32 = 0x4
        /// The front end wants a reply (with REPLY_ACK) to a message that has none.
        public static let needReply: UInt32 = 0x8
    }

    /// Front-end request codes this back end knows (others are answered as failures when a
    /// reply is needed, and otherwise logged and ignored).
    public enum Request: UInt32, Sendable, CaseIterable {
        case getFeatures = 1, setFeatures = 2, setOwner = 3, resetOwner = 4, setMemTable = 5
        case setLogBase = 6, setLogFd = 7, setVringNum = 8, setVringAddr = 9, setVringBase = 10
        case getVringBase = 11, setVringKick = 12, setVringCall = 13, setVringErr = 14
        case getProtocolFeatures = 15, setProtocolFeatures = 16, getQueueNum = 17, setVringEnable = 18
        case sendRarp = 19, netSetMtu = 20, setBackendReqFd = 21, iotlbMsg = 22, setVringEndian = 23
        case getConfig = 24, setConfig = 25
        case getInflightFd = 31, setInflightFd = 32
        case resetDevice = 34, vringKick = 35, getMaxMemSlots = 36, addMemReg = 37, remMemReg = 38
        case setStatus = 39, getStatus = 40

        /// The name used in the protocol document, for log lines.
        public var name: String {
            switch self {
            case .getFeatures: "GET_FEATURES"
            case .setFeatures: "SET_FEATURES"
            case .setOwner: "SET_OWNER"
            case .resetOwner: "RESET_OWNER"
            case .setMemTable: "SET_MEM_TABLE"
            case .setLogBase: "SET_LOG_BASE"
            case .setLogFd: "SET_LOG_FD"
            case .setVringNum: "SET_VRING_NUM"
            case .setVringAddr: "SET_VRING_ADDR"
            case .setVringBase: "SET_VRING_BASE"
            case .getVringBase: "GET_VRING_BASE"
            case .setVringKick: "SET_VRING_KICK"
            case .setVringCall: "SET_VRING_CALL"
            case .setVringErr: "SET_VRING_ERR"
            case .getProtocolFeatures: "GET_PROTOCOL_FEATURES"
            case .setProtocolFeatures: "SET_PROTOCOL_FEATURES"
            case .getQueueNum: "GET_QUEUE_NUM"
            case .setVringEnable: "SET_VRING_ENABLE"
            case .sendRarp: "SEND_RARP"
            case .netSetMtu: "NET_SET_MTU"
            case .setBackendReqFd: "SET_BACKEND_REQ_FD"
            case .iotlbMsg: "IOTLB_MSG"
            case .setVringEndian: "SET_VRING_ENDIAN"
            case .getConfig: "GET_CONFIG"
            case .setConfig: "SET_CONFIG"
            case .getInflightFd: "GET_INFLIGHT_FD"
            case .setInflightFd: "SET_INFLIGHT_FD"
            case .resetDevice: "RESET_DEVICE"
            case .vringKick: "VRING_KICK"
            case .getMaxMemSlots: "GET_MAX_MEM_SLOTS"
            case .addMemReg: "ADD_MEM_REG"
            case .remMemReg: "REM_MEM_REG"
            case .setStatus: "SET_STATUS"
            case .getStatus: "GET_STATUS"
            }
        }
    }

    /// Protocol feature bits (GET/SET_PROTOCOL_FEATURES).
    public enum ProtocolFeature {
        /// Several queues (GET_QUEUE_NUM).
        public static let mq: UInt64 = 1 << 0
        /// REPLY_ACK: a message with NEED_REPLY gets a u64 status reply.
        public static let replyAck: UInt64 = 1 << 3
        /// GET_CONFIG/SET_CONFIG (QEMU's vhost-user-blk requires it).
        public static let config: UInt64 = 1 << 9
        /// INFLIGHT_SHMFD: GET/SET_INFLIGHT_FD, a shared region recording the requests in
        /// flight, so a restarted back end serves again what a killed one had taken.
        public static let inflightShmfd: UInt64 = 1 << 12
        /// What this back end offers.
        public static let offered: UInt64 = mq | replyAck | config | inflightShmfd
    }

    /// Virtio feature bits this back end offers (the device's and the transport's).
    public enum Feature {
        /// VIRTIO_BLK_F_SEG_MAX: `seg_max` in the config is valid.
        public static let blkSegMax: UInt64 = 1 << 2
        /// VIRTIO_BLK_F_RO: the disk is read-only.
        public static let blkRo: UInt64 = 1 << 5
        /// VIRTIO_BLK_F_BLK_SIZE: `blk_size` in the config is valid.
        public static let blkBlkSize: UInt64 = 1 << 6
        /// VIRTIO_BLK_F_FLUSH: the device has a write cache and takes FLUSH.
        public static let blkFlush: UInt64 = 1 << 9
        /// VIRTIO_BLK_F_TOPOLOGY: physical block exponent and I/O sizes are valid.
        public static let blkTopology: UInt64 = 1 << 10
        /// VIRTIO_BLK_F_MQ: `num_queues` in the config is valid.
        public static let blkMq: UInt64 = 1 << 12
        /// VIRTIO_BLK_F_DISCARD.
        public static let blkDiscard: UInt64 = 1 << 13
        /// VIRTIO_BLK_F_WRITE_ZEROES.
        public static let blkWriteZeroes: UInt64 = 1 << 14
        /// VIRTIO_RING_F_INDIRECT_DESC.
        public static let indirectDesc: UInt64 = 1 << 28
        /// VIRTIO_RING_F_EVENT_IDX.
        public static let eventIdx: UInt64 = 1 << 29
        /// VHOST_USER_F_PROTOCOL_FEATURES: protocol features may be negotiated; rings then
        /// start disabled until SET_VRING_ENABLE.
        public static let protocolFeatures: UInt64 = 1 << 30
        /// VIRTIO_F_VERSION_1.
        public static let version1: UInt64 = 1 << 32
    }

    /// SET_VRING_KICK/CALL/ERR payload: bit 8 says no descriptor was sent.
    public static let vringNoFdFlag: UInt64 = 1 << 8
}

/// Virtio split-ring layout constants (virtio 1.x, 2.7).
public enum Virtq {
    /// Bytes of a descriptor: addr (u64), len (u32), flags (u16), next (u16).
    public static let descriptorSize = 16
    /// Descriptor flag: the chain continues at `next`.
    public static let descNext: UInt16 = 1
    /// Descriptor flag: the device writes this buffer.
    public static let descWrite: UInt16 = 2
    /// Descriptor flag: the buffer is a table of descriptors.
    public static let descIndirect: UInt16 = 4
    /// Avail flag (without EVENT_IDX): the driver wants no interrupt.
    public static let availNoInterrupt: UInt16 = 1
    /// The largest queue size virtio allows.
    public static let maxSize = 32768
}

/// virtio-blk request types and status codes (virtio 1.x, 5.2.6).
public enum VirtioBlk {
    /// Request header bytes: type (u32), reserved/ioprio (u32), sector (u64).
    public static let headerSize = 16
    /// Bytes of one DISCARD/WRITE_ZEROES segment: sector (u64), num_sectors (u32), flags (u32).
    public static let segmentSize = 16
    /// WRITE_ZEROES segment flag: the device may deallocate.
    public static let segmentUnmap: UInt32 = 1
    /// Bytes of a GET_ID answer (the serial, NUL-padded, not NUL-terminated when full).
    public static let idBytes = 20
    /// Bytes per sector: virtio-blk offsets and counts are in 512-byte units.
    public static let sectorSize: UInt64 = 512

    /// Request types.
    public enum RequestType: UInt32, Sendable {
        case read = 0, write = 1, flush = 4, getId = 8, discard = 11, writeZeroes = 13
    }

    /// Status byte values.
    public enum Status: UInt8, Sendable {
        case ok = 0, ioError = 1, unsupported = 2
    }
}

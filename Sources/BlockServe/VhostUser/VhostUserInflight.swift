#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The shared memory in which the back end records which requests are in flight
/// (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, "Inflight I/O tracking" in QEMU's
/// docs/interop/vhost-user.rst). The back end makes it on GET_INFLIGHT_FD; the front end
/// keeps it and hands it back with SET_INFLIGHT_FD after a back-end restart, so the
/// requests a killed back end had taken are served again.
///
/// Layout (little-endian), one region per queue, each rounded up to 64 bytes:
/// a 16-byte header {features u64, version u16, desc_num u16, last_batch_head u16,
/// used_idx u16}, then `desc_num` 16-byte entries {inflight u8, 5 bytes padding, next u16,
/// counter u64}, indexed by head descriptor. Everything read from it is treated as
/// untrusted (the front end owns the memory): counts are bounded by `desc_num` and heads
/// checked against the ring size.
final class VhostUserInflight {
    /// Bytes of a queue region's header and of one descriptor entry.
    static let headerBytes = 16, entryBytes = 16
    /// The format version written in each region (0 means not initialised).
    static let version: UInt16 = 1

    /// Bytes of one queue's region for rings of `queueSize` entries.
    static func regionBytes(queueSize: Int) -> Int { (headerBytes + entryBytes * queueSize + 63) & ~63 }

    let mapping: UnsafeMutableRawPointer
    let mappedBytes: Int
    let queueCount: Int
    let queueSize: Int

    private init(mapping: UnsafeMutableRawPointer, mappedBytes: Int, queueCount: Int, queueSize: Int) {
        self.mapping = mapping
        self.mappedBytes = mappedBytes
        self.queueCount = queueCount
        self.queueSize = queueSize
    }

    deinit { munmap(mapping, mappedBytes) }

    /// Why the numbers of a GET/SET_INFLIGHT_FD cannot be used, or nil.
    static func check(_ d: VhostUserInflightDescription) -> String? {
        if d.numQueues == 0 || d.numQueues > 1024 { return "\(d.numQueues) queues (1 to 1024)" }
        if d.queueSize == 0 || d.queueSize > 32768 || d.queueSize & (d.queueSize - 1) != 0 { return "queue size \(d.queueSize) (a power of two up to 32768)" }
        return nil
    }

    /// A fresh, zeroed region for `queues` rings of `queueSize` entries, each queue's header
    /// initialised, and the descriptor the front end will keep (close-on-exec; the caller
    /// sends and then closes it).
    static func create(queues: Int, queueSize: Int) -> Result<(VhostUserInflight, Int32), VhostUserParseError> {
        let bytes = queues * regionBytes(queueSize: queueSize)
        // O_TMPFILE (not in Swift's Glibc module): an unnamed file on the shared-memory tmpfs.
        var fd = open("/dev/shm", 0o20000000 | O_DIRECTORY | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 {
            let name = "/dev/shm/blockscope-inflight-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 { unlink(name) }
        }
        if fd < 0 { return .failure(.init("GET_INFLIGHT_FD: cannot create the shared region: \(String(cString: strerror(errno)))")) }
        guard ftruncate(fd, off_t(bytes)) == 0, let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = String(cString: strerror(errno))
            close(fd)
            return .failure(.init("GET_INFLIGHT_FD: cannot size or map \(bytes) bytes: \(e)"))
        }
        let region = VhostUserInflight(mapping: p, mappedBytes: bytes, queueCount: queues, queueSize: queueSize)
        for q in 0..<queues {
            let h = region.queueBase(q)
            h.storeBytes(of: UInt16(truncatingIfNeeded: queueSize).littleEndian, toByteOffset: 10, as: UInt16.self)
            h.storeBytes(of: version.littleEndian, toByteOffset: 8, as: UInt16.self)
        }
        return .success((region, fd))
    }

    /// Maps the region a front end hands back (SET_INFLIGHT_FD). A size too small for the
    /// queues it names, an offset past the file, or a failed `mmap` is an error sentence.
    /// The descriptor stays the caller's (closed by it).
    static func adopt(fd: Int32, _ d: VhostUserInflightDescription) -> Result<VhostUserInflight, VhostUserParseError> {
        if let why = check(d) { return .failure(.init("SET_INFLIGHT_FD with \(why)")) }
        let need = Int(d.numQueues) * regionBytes(queueSize: Int(d.queueSize))
        guard d.mmapSize >= UInt64(need), d.mmapSize <= 1 << 30 else {
            return .failure(.init("SET_INFLIGHT_FD of \(d.mmapSize) bytes for \(d.numQueues) queues of \(d.queueSize) (need \(need), at most 1 GiB)"))
        }
        var st = stat()
        guard fstat(fd, &st) == 0, d.mmapOffset & 4095 == 0, d.mmapOffset <= UInt64(Int64.max) - d.mmapSize,
              UInt64(st.st_size) >= d.mmapOffset + d.mmapSize else {
            return .failure(.init("SET_INFLIGHT_FD: \(d.mmapSize) bytes at offset \(d.mmapOffset) do not lie in the descriptor's file"))
        }
        guard let p = mmap(nil, Int(d.mmapSize), PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(d.mmapOffset)), p != MAP_FAILED else {
            return .failure(.init("SET_INFLIGHT_FD: mmap of \(d.mmapSize) bytes: \(String(cString: strerror(errno)))"))
        }
        return .success(VhostUserInflight(mapping: p, mappedBytes: Int(d.mmapSize), queueCount: Int(d.numQueues), queueSize: Int(d.queueSize)))
    }

    func queueBase(_ q: Int) -> UnsafeMutableRawPointer { mapping + q * Self.regionBytes(queueSize: queueSize) }

    /// Queue `q`'s tracker for a ring of `ringSize` entries, or a sentence when the region
    /// has no such queue or was made for rings of another size. An uninitialised region
    /// (version 0) is initialised.
    func queue(_ q: Int, ringSize: Int) -> Result<InflightQueue, VhostUserParseError> {
        guard q < queueCount else { return .failure(.init("the inflight region has \(queueCount) queues, not queue \(q)")) }
        guard ringSize == queueSize else { return .failure(.init("the inflight region tracks rings of \(queueSize), queue \(q) has \(ringSize)")) }
        let base = queueBase(q)
        let version = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
        let num = Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 10, as: UInt16.self)))
        if version == 0 {
            memset(base, 0, Self.regionBytes(queueSize: queueSize))
            base.storeBytes(of: UInt16(truncatingIfNeeded: queueSize).littleEndian, toByteOffset: 10, as: UInt16.self)
            base.storeBytes(of: Self.version.littleEndian, toByteOffset: 8, as: UInt16.self)
        } else if version != Self.version || num != queueSize {
            return .failure(.init("queue \(q)'s inflight region has version \(version) and \(num) entries (expected version 1, \(queueSize))"))
        }
        return .success(InflightQueue(base: base, size: queueSize))
    }
}

/// One queue's part of the inflight region: marks a head in flight when it is taken,
/// clears a batch of heads around the used-index update, and after a restart lists the
/// heads to serve again. Owned by the queue's thread.
///
/// The order of the stores is what makes a crash at any instant recoverable: a head is
/// marked after its counter is written; a batch is linked (`next`, `last_batch_head`)
/// before the used index moves, and its marks are cleared and `used_idx` set after.
/// A compiler barrier (a release fence) sits between the steps: the memory is only read
/// again by a later back end, after this process has died or stopped.
struct InflightQueue {
    let base: UnsafeMutableRawPointer
    let size: Int
    /// The counter for the next head taken (per queue; continues past a restart).
    var counter: UInt64 = 0

    private func entry(_ h: Int) -> UnsafeMutableRawPointer { base + VhostUserInflight.headerBytes + VhostUserInflight.entryBytes * h }
    private var lastBatchHead: UInt16 {
        get { UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 12, as: UInt16.self)) }
        nonmutating set { base.storeBytes(of: newValue.littleEndian, toByteOffset: 12, as: UInt16.self) }
    }
    private var usedIdx: UInt16 {
        get { UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 14, as: UInt16.self)) }
        nonmutating set { base.storeBytes(of: newValue.littleEndian, toByteOffset: 14, as: UInt16.self) }
    }

    /// Head `h` was taken from the available ring (h < size).
    mutating func mark(_ h: Int) {
        let e = entry(h)
        e.storeBytes(of: counter.littleEndian, toByteOffset: 8, as: UInt64.self)
        counter &+= 1
        atomicMemoryFence(ordering: .releasing)
        e.storeBytes(of: UInt8(1), as: UInt8.self)
    }

    /// Head `h` will not be served again (its chain cannot be walked or framed).
    func unmark(_ h: Int) { entry(h).storeBytes(of: UInt8(0), as: UInt8.self) }

    /// Links `heads` as the batch about to enter the used ring (before the used index moves).
    func link<S: Sequence>(_ heads: S) where S.Element == UInt16 {
        for h in heads {
            entry(Int(h)).storeBytes(of: lastBatchHead.littleEndian, toByteOffset: 6, as: UInt16.self)
            lastBatchHead = h
        }
        atomicMemoryFence(ordering: .releasing)
    }

    /// The batch is in the used ring, whose index is now `used`: clears the marks.
    func cleared<S: Sequence>(_ heads: S, used: UInt16) where S.Element == UInt16 {
        atomicMemoryFence(ordering: .releasing)
        for h in heads { entry(Int(h)).storeBytes(of: UInt8(0), as: UInt8.self) }
        atomicMemoryFence(ordering: .releasing)
        usedIdx = used
    }

    /// After a restart, with the ring's used index at `ringUsed`: finishes a batch whose
    /// used entries were published but whose marks were not cleared, and returns the heads
    /// still in flight, oldest (lowest counter) first. The counter continues after the
    /// highest one seen.
    mutating func recover(ringUsed: UInt16) -> [UInt16] {
        let published = Int(ringUsed &- usedIdx)
        if published > 0 && published <= size {
            var h = lastBatchHead
            for _ in 0..<published {
                guard Int(h) < size else { break }
                entry(Int(h)).storeBytes(of: UInt8(0), as: UInt8.self)
                h = UInt16(littleEndian: entry(Int(h)).loadUnaligned(fromByteOffset: 6, as: UInt16.self))
            }
        }
        usedIdx = ringUsed
        var found: [(counter: UInt64, head: UInt16)] = []
        var highest: UInt64 = 0
        for h in 0..<size {
            let c = UInt64(littleEndian: entry(h).loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            highest = max(highest, c)
            if entry(h).load(as: UInt8.self) == 1 { found.append((c, UInt16(h))) }
        }
        counter = highest &+ 1
        return found.sorted { $0.counter < $1.counter }.map(\.head)
    }
}

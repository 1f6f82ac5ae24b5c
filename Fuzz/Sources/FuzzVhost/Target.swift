import BlockCore
@_spi(Fuzzing) import BlockServe
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif

/// vhost: the input is both what a front end sends on the socket and what a guest leaves
/// in its memory. (1) The message parser reads it as a stream of messages (header, then
/// payload) until a header fails or the bytes end. (2) The first 16 KiB become guest
/// memory in two regions (guest-physical 0 and 0x10000, 8 KiB each, so buffers can cross
/// from one into the next); a 16-entry ring sits in the first region (descriptors at 0,
/// available ring at 0x100, used ring at 0x200) and is served as a connection serves it,
/// on a writable 1 MiB RAW image in /dev/shm, with the features from the input's first byte.
/// (3) The first 272 bytes become a 16-entry queue's inflight region (INFLIGHT_SHMFD) that
/// a restarted back end recovers, with the ring's used index from bytes 2-3.
/// The property: no trap, no access outside the regions (ASan), every request taken is
/// waited for before the ring stops, the image is still readable, and recovery names each
/// head below 16 at most once.
private let export: VhostUserBlkExport = {
    let path = "/dev/shm/blockscope-fuzz-vhost-\(getpid()).raw"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
    if fd < 0 { violation("cannot create \(path)") }
    _ = ftruncate(fd, 1 << 20)
    close(fd)
    var o = OpenOptions(writable: true)
    o.ignoreLocks = true
    guard let disk = try? openDisk(path, options: o) else { violation("cannot open \(path)") }
    unlink(path)
    return VhostUserBlkExport(disk: disk, queues: 1)
}()

private let regionSize = 8 << 10
nonisolated(unsafe) private let memoryBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * regionSize, alignment: 4096)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBytes(data, size)
    if bytes.count > 1 << 16 { return 0 }
    // (1) The message stream.
    bytes.withUnsafeBytes { b in
        var at = 0
        while at + VhostUser.headerSize <= b.count {
            guard case let .success(h) = VhostUserParser.header(UnsafeRawBufferPointer(rebasing: b[at..<(at + VhostUser.headerSize)])) else { break }
            at += VhostUser.headerSize
            let n = min(Int(h.size), b.count - at)
            _ = VhostUserParser.message(h, UnsafeRawBufferPointer(rebasing: b[at..<(at + n)]))
            at += n
        }
    }
    // (2) A ring in guest memory.
    memoryBytes.initializeMemory(as: UInt8.self, repeating: 0)
    let take = min(bytes.count, memoryBytes.count)
    bytes.withUnsafeBytes { memoryBytes.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: take) }
    let first = bytes.first ?? 0
    var features: UInt64 = 0
    if first & 1 != 0 { features |= VhostUser.Feature.indirectDesc }
    if first & 2 != 0 { features |= VhostUser.Feature.eventIdx }
    let memory = GuestMemory(regions: [
        (guestPhysical: 0, userAddress: 0x7f00_0000_0000, buffer: UnsafeMutableRawBufferPointer(rebasing: memoryBytes[0..<regionSize])),
        (guestPhysical: UInt64(regionSize), userAddress: 0x7f00_0000_0000 + UInt64(regionSize),
         buffer: UnsafeMutableRawBufferPointer(rebasing: memoryBytes[regionSize...])),
    ])
    _ = VhostUserFuzzing.serveRing(memory: memory, export: export, size: 16, desc: 0x7f00_0000_0000, avail: 0x7f00_0000_0100,
                                       used: 0x7f00_0000_0200, features: features)
    // (3) An inflight region recovered.
    let inflightBytes = UnsafeMutableRawBufferPointer(rebasing: memoryBytes[0..<(16 + 16 * 16)])
    memoryBytes.initializeMemory(as: UInt8.self, repeating: 0)
    bytes.withUnsafeBytes { inflightBytes.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: min(bytes.count, inflightBytes.count)) }
    let ringUsed = bytes.count >= 4 ? UInt16(bytes[2]) | UInt16(bytes[3]) << 8 : 0
    let heads = VhostUserFuzzing.recoverInflight(region: inflightBytes, size: 16, ringUsed: ringUsed)
    if heads.contains(where: { $0 >= 16 }) || Set(heads).count != heads.count { violation("inflight recovery named heads \(heads)") }
    var probe = [UInt8](repeating: 0, count: 512)
    let ok = probe.withUnsafeMutableBytes { (try? export.disk.read(into: $0, at: 0)) != nil }
    if !ok { violation("the image is not readable after serving a ring") }
    return 0
}

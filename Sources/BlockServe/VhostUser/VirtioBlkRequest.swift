/// A virtio-blk request read from a descriptor chain: the header's type and sector, the
/// data pieces (in guest memory, used in place) and where the status byte goes.
package struct VirtioBlkRequest {
    /// The header's type (``VirtioBlk/RequestType`` when known).
    package var type: UInt32
    /// The header's sector (512-byte units).
    package var sector: UInt64
    /// The data: for IN and GET_ID the writable pieces before the status byte, for OUT,
    /// DISCARD and WRITE_ZEROES the readable pieces after the header.
    package var data: [GuestSegment]
    /// Bytes in ``data``.
    package var dataBytes: UInt64
    /// The status byte in guest memory.
    package var status: UnsafeMutableRawPointer

    /// What a chain says: a request to serve, a request to answer at once with a status
    /// (the header is short, the data sits on the wrong side), or nothing to answer (no
    /// writable byte for a status: the connection must end).
    package enum Parsed {
        case request(VirtioBlkRequest)
        case reject(status: UnsafeMutableRawPointer, VirtioBlk.Status, String)
        case unanswerable(String)
    }

    /// Reads the request framing from `chain` without assuming how the driver split it
    /// into descriptors (virtio 1.x: header in the first 16 readable bytes, status in the
    /// last writable byte).
    package static func parse(_ chain: DescriptorChain) -> Parsed {
        var data: [GuestSegment] = []
        return parse(chain, data: &data)
    }

    /// ``parse(_:)`` with the data pieces built in `data` (emptied first, its storage reused:
    /// the request shares it until it is dropped), so a virtqueue taking requests allocates
    /// nothing per request.
    package static func parse(_ chain: DescriptorChain, data: inout [GuestSegment]) -> Parsed {
        data.removeAll(keepingCapacity: true)
        guard let last = chain.writable.last else { return .unanswerable("the chain has no device-writable byte for the status") }
        let status = last.host + (last.length - 1)
        guard chain.readableBytes >= UInt64(VirtioBlk.headerSize) else {
            return .reject(status: status, .ioError, "request header of \(chain.readableBytes) bytes, need 16")
        }
        // The header, wherever the driver split it (a 16-byte stack buffer, no allocation).
        let (type, sector): (UInt32, UInt64) = withUnsafeTemporaryAllocation(byteCount: VirtioBlk.headerSize, alignment: 8) { b in
            _ = copy(from: chain.readable, skip: 0, into: b)
            return (LE.u32(UnsafeRawBufferPointer(b), 0), LE.u64(UnsafeRawBufferPointer(b), 8))
        }
        var r = VirtioBlkRequest(type: type, sector: sector, data: [], dataBytes: 0, status: status)
        switch VirtioBlk.RequestType(rawValue: type) {
        case .read?, .getId?:
            if chain.readableBytes != UInt64(VirtioBlk.headerSize) { return .reject(status: status, .ioError, "\(type == 0 ? "IN" : "GET_ID") request carries device-readable data") }
            // The writable pieces without the status byte (the last one).
            data.append(contentsOf: chain.writable)
            if var l = data.popLast() {
                l.length -= 1
                if l.length > 0 { data.append(l) }
            }
            r.dataBytes = chain.writableBytes - 1
        case .write?, .discard?, .writeZeroes?:
            if chain.writableBytes != 1 { return .reject(status: status, .ioError, "request type \(type) has \(chain.writableBytes) device-writable bytes, need 1 (the status)") }
            // The readable pieces after the 16-byte header.
            var n = VirtioBlk.headerSize
            for var p in chain.readable {
                if n >= p.length { n -= p.length; continue }
                p.host += n
                p.guestPhysical &+= UInt64(n)
                p.length -= n
                n = 0
                data.append(p)
            }
            r.dataBytes = chain.readableBytes - UInt64(VirtioBlk.headerSize)
        default:
            break
        }
        r.data = data
        return .request(r)
    }

    /// Copies bytes of `pieces` (after skipping `skip`) into `out` until it is full or the
    /// pieces end; returns the bytes copied.
    @discardableResult
    package static func copy(from pieces: [GuestSegment], skip: Int, into out: UnsafeMutableRawBufferPointer) -> Int {
        var skip = skip, done = 0
        for p in pieces where done < out.count {
            if skip >= p.length { skip -= p.length; continue }
            let n = min(p.length - skip, out.count - done)
            (out.baseAddress! + done).copyMemory(from: p.host + skip, byteCount: n)
            done += n
            skip = 0
        }
        return done
    }

    /// Copies `bytes` into `pieces` in order, as far as they reach; returns the bytes copied.
    @discardableResult
    package static func copy(_ bytes: UnsafeRawBufferPointer, into pieces: [GuestSegment]) -> Int {
        var done = 0
        for p in pieces where done < bytes.count {
            let n = min(p.length, bytes.count - done)
            p.host.copyMemory(from: bytes.baseAddress! + done, byteCount: n)
            done += n
        }
        return done
    }
}

/// What the device tells the driver: features and the `virtio_blk_config` space, from the
/// disk's size and what the server allows.
package struct VirtioBlkDevice: Sendable {
    /// Disk size in bytes (the capacity is this in 512-byte sectors, rounded down).
    package var size: UInt64
    /// Whether OUT, DISCARD and WRITE_ZEROES are served (else VIRTIO_BLK_F_RO).
    package var writable: Bool
    /// Virtqueues offered (`num_queues`).
    package var queues: Int
    /// The logical block size given as `blk_size`.
    package var blockSize: UInt32 = 512
    /// The serial GET_ID answers (at most 20 bytes used).
    package var serial: String = "blockscope"

    /// Data buffers per request the driver may chain (`seg_max`): a 128-entry queue with
    /// header and status descriptors leaves 126, QEMU's own default.
    package static let segMax: UInt32 = 126
    /// Sectors per DISCARD/WRITE_ZEROES segment at most (`max_discard_sectors`, 4 GiB - 512).
    package static let maxZeroSectors: UInt32 = 0x7fffff
    /// Segments per DISCARD/WRITE_ZEROES request at most (`max_discard_seg`).
    package static let maxZeroSegments: UInt32 = 32

    /// Creates the description of a disk of `size` bytes served over `queues` virtqueues.
    package init(size: UInt64, writable: Bool, queues: Int) {
        self.size = size
        self.writable = writable
        self.queues = queues
    }

    /// The virtio feature bits offered: VERSION_1, INDIRECT_DESC, EVENT_IDX, the
    /// vhost-user protocol-features bit, SEG_MAX, BLK_SIZE, TOPOLOGY, FLUSH, MQ and, when
    /// writable, DISCARD and WRITE_ZEROES (else RO).
    package var features: UInt64 {
        typealias F = VhostUser.Feature
        var f = F.version1 | F.indirectDesc | F.eventIdx | F.protocolFeatures | F.blkSegMax | F.blkBlkSize
            | F.blkTopology | F.blkFlush | F.blkMq
        f |= writable ? (F.blkDiscard | F.blkWriteZeroes) : F.blkRo
        return f
    }

    /// The `virtio_blk_config` structure (little-endian, 60 bytes of fields, zeroes after
    /// them up to `count` bytes): capacity, seg_max, blk_size, topology (4 KiB optimal),
    /// num_queues, discard and write-zeroes limits and write_zeroes_may_unmap.
    package func config(count: Int = 256) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: max(count, 64))
        func put(_ o: Int, _ v: UInt64, _ n: Int) { for i in 0..<n { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        put(0, size / VirtioBlk.sectorSize, 8)          // capacity
        put(8, 0, 4)                                    // size_max (not offered)
        put(12, UInt64(Self.segMax), 4)                 // seg_max
        put(20, UInt64(blockSize), 4)                   // blk_size
        put(24, 3, 1)                                   // physical_block_exp: 4 KiB physical blocks
        put(26, 1, 2)                                   // min_io_size (in blk_size units)
        put(28, 8, 4)                                   // opt_io_size: 4 KiB
        put(32, 1, 1)                                   // writeback
        put(34, UInt64(queues), 2)                      // num_queues
        if writable {
            put(36, UInt64(Self.maxZeroSectors), 4)     // max_discard_sectors
            put(40, UInt64(Self.maxZeroSegments), 4)    // max_discard_seg
            put(44, 1, 4)                               // discard_sector_alignment
            put(48, UInt64(Self.maxZeroSectors), 4)     // max_write_zeroes_sectors
            put(52, UInt64(Self.maxZeroSegments), 4)    // max_write_zeroes_seg
            put(56, 1, 1)                               // write_zeroes_may_unmap
        }
        return Array(b[0..<count])
    }
}

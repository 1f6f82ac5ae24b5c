import BlockCore
import Foundation
import TestSupport

/// Images for the `explain` tests, made by qemu-img and qemu-io and damaged byte by byte the
/// way cloud-hypervisor's 2026 bugs damaged theirs (/work/shared/DAMAGE.md), with the guest
/// data known: a 2 GiB image of 64 KiB clusters holding 4 MiB of 0x11 at 0, 4 MiB of 0x22 at
/// 512 MiB and 1 MiB of 0x33 at 1 GiB (L1 at 0x30000, one L2 table per window).
enum ExplainFixtures {
    static let cluster: UInt64 = 65536
    static let window: UInt64 = 512 << 20

    /// The three-window image at `dir/name`.
    static func threeWindows(_ dir: String, _ name: String) throws -> String {
        let img = dir + "/" + name
        try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", img, "2G"])
        try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x11 0 4M", "write -P 0x22 512M 4M", "write -P 0x33 1G 1M"])
        return img
    }

    /// The big-endian word of `width` bytes at `offset`.
    static func word(_ path: String, at offset: UInt64, width: Int = 8) throws -> UInt64 {
        let h = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: offset)
        return (h.readData(ofLength: width)).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// Writes `bytes` at `offset`.
    static func put(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: offset)
        h.write(Data(bytes))
    }

    /// `count` bytes at `offset`.
    static func get(_ path: String, at offset: UInt64, count: Int) throws -> [UInt8] {
        let h = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: offset)
        return [UInt8](h.readData(ofLength: count))
    }

    /// Big-endian bytes of `v`.
    static func be(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64($0))) } }

    /// The host offset of L1 entry `i`'s L2 table.
    static func l2Offset(_ img: String, l1Index i: UInt64) throws -> UInt64 {
        let l1 = try word(img, at: 40)
        return try word(img, at: l1 + 8 * i) & Qcow2Entry.offsetMask
    }

    /// `blockscope explain --output=json` parsed (exit status 0 required).
    static func explain(_ img: String, _ extra: [String] = []) throws -> JSONValue {
        let r = try TestSupport.blockscope(["explain", "--output=json"] + extra + [img])
        guard r.status == 0 else { throw TestFailure("explain \(img) failed (\(r.status)): \(r.stderr)") }
        return try JSONValue.parse(r.stdoutText)
    }

    /// `qemu-img check --output=json`'s object.
    static func qemuCheck(_ img: String) throws -> JSONValue {
        try JSONValue.parse(try TestSupport.qemuImg(["check", "--output=json", img]).stdoutText)
    }

    /// `qemu-img measure -O qcow2`'s required size.
    static func measureRequired(_ img: String, format: String) throws -> Int64 {
        let j = try JSONValue.parse(try TestSupport.qemuImg(["measure", "--output=json", "-f", format, "-O", "qcow2", img]).stdoutText)
        return int(j["required"])
    }

    /// The host file's size.
    static func fileSize(_ path: String) throws -> Int64 {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? -1
    }
}

/// An integer JSON value (-1 when absent).
func int(_ v: JSONValue?) -> Int64 {
    switch v {
    case let .int(i)?: return i
    case let .uint(u)?: return Int64(bitPattern: u)
    default: return -1
    }
}

/// The sum of an object's integer values.
func total(_ v: JSONValue?) -> Int64 {
    guard case let .object(kv)? = v else { return -1 }
    return kv.reduce(0) { $0 + int($1.1) }
}

/// A finding's `[offset, length]` pairs.
func pairs(_ v: JSONValue?) -> [[Int64]] {
    guard case let .array(a)? = v else { return [] }
    return a.map { p in if case let .array(x) = p { return x.map { int($0) } } else { return [] } }
}

/// The findings array.
func findings(_ j: JSONValue) -> [JSONValue] {
    if case let .array(a)? = j["findings"] { return a }
    return []
}

/// A string JSON value ("" when absent).
func str(_ v: JSONValue?) -> String {
    if case let .string(s)? = v { return s }
    return ""
}

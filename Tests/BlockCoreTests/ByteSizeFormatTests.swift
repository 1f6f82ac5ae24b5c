import Foundation
import Testing
import BlockCore
import TestSupport

/// The one size formatter (`formatBytes(_:style:)`) in each style its readers compare with.
@Suite struct ByteSizeFormatTests {
    /// `info`'s human sizes are qemu-img's: for images of assorted virtual sizes, the text
    /// before " (N bytes)" on qemu-img info's "virtual size:" line.
    @Test func qemuStyleMatchesQemuImgInfo() throws {
        let dir = try TestSupport.makeTempDir("bytesize"); defer { TestSupport.removeTempDir(dir) }
        let sizes: [UInt64] = [512, 1536, 65536, 1_000_000, 10 << 20, 123_456_789, 1_610_612_736, (3 << 40) + (7 << 30)]
        for (i, size) in sizes.enumerated() {
            let p = dir + "/s\(i).qcow2"
            try TestSupport.qemuImg(["create", "-q", "-f", "qcow2", p, "\(size)"])
            let out = try TestSupport.qemuImg(["info", p]).stdoutText
            let line = try #require(out.split(separator: "\n").first { $0.hasPrefix("virtual size: ") })
            let text = line.dropFirst("virtual size: ".count).prefix { $0 != "(" }.trimmingCharacters(in: .whitespaces)
            #expect(formatBytes(Double(size), style: .qemu) == text, "size \(size)")
        }
    }

    /// The views' style: whole bytes below 1 KiB, two decimals below 10 of a unit, one above.
    @Test func viewStyleKeepsTwoDecimalsBelowTenAndOneAbove() {
        #expect(formatBytes(512) == "512 B")
        #expect(formatBytes(1023) == "1023 B")
        #expect(formatBytes(2_097_152) == "2.00 MiB")
        #expect(formatBytes(16_777_216) == "16.0 MiB")
        #expect(formatBytes(1_610_612_736) == "1.50 GiB")
        #expect(formatBytes(65536) == "64.0 KiB")
    }

    /// fio's style: no space, one decimal below 100 of a unit, none from 100 on.
    @Test func fioStyleWritesFiosUnits() {
        #expect(formatBytes(512, style: .fio) == "512B")
        #expect(formatBytes(4096, style: .fio) == "4.0KiB")
        #expect(formatBytes(273 * 1_048_576, style: .fio) == "273MiB")
        #expect(formatBytes(Double(5 << 40) * 2048, style: .fio) == "10240TiB")
    }
}

import ArgumentParser
import BlockCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `blockscope check IMAGE`: metadata consistency, counted and exited like `qemu-img check`.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Check an image's metadata (qemu-img check's counts and exit codes: 0 clean, 2 corruptions, 3 leaks).")

    @Argument(help: "The image file.") var image: String
    @OptionGroup var imageOptions: ImageOptions
    @Option(help: "Output style: human or json.") var output: OutputFormat = .human
    @Option(name: [.customShort("r"), .long], help: "Repair: leaks or all (needs --write).") var repair: RepairModeArgument?
    @Flag(help: "Open the image for writing (needed by --repair).") var write = false

    func run() throws {
        try refuseDirectories(images: [image])
        let report: CheckReport = try reportingErrors { () throws(BlockError) -> CheckReport in
            if repair != nil && !write {
                throw BlockError(.readOnly, "--repair modifies the image, which is open read-only", path: image, operation: "check")
            }
            let disk = try openImage(image, imageOptions.openOptions(writable: write))
            guard let inspectable = disk as? any InspectableDisk else {
                throw BlockError(.unsupportedFeature, "check is not supported for \(disk.format.rawValue) images", path: image)
            }
            let r = try inspectable.check(repair: repair?.mode)
            switch output {
            case .json: print(checkJSON(r, filename: image, format: disk.format).render(pretty: true))
            case .human: print(renderHumanCheck(r), terminator: "")
            }
            try disk.close()
            return r
        }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}

/// `-r leaks|all`.
struct RepairModeArgument: ExpressibleByArgument {
    var mode: RepairMode
    init?(argument: String) {
        guard let m = RepairMode(rawValue: argument) else { return nil }
        mode = m
    }
}

/// qemu-img check's JSON keys (zero counts of optional keys omitted as qemu-img does).
func checkJSON(_ r: CheckReport, filename: String, format: ImageFormat) -> JSONValue {
    var kv: [(String, JSONValue)] = []
    if let end = r.imageEndOffset { kv.append(("image-end-offset", .size(end))) }
    kv.append(("total-clusters", .size(r.totalClusters)))
    kv.append(("check-errors", .int(Int64(r.checkErrors))))
    if r.allocatedClusters > 0 { kv.append(("allocated-clusters", .size(r.allocatedClusters))) }
    kv.append(("filename", .string(filename)))
    kv.append(("format", .string(format.rawValue)))
    if r.fragmentedClusters > 0 { kv.append(("fragmented-clusters", .size(r.fragmentedClusters))) }
    if r.compressedClusters > 0 { kv.append(("compressed-clusters", .size(r.compressedClusters))) }
    if r.leaks > 0 { kv.append(("leaks", .int(Int64(r.leaks)))) }
    if r.corruptions > 0 { kv.append(("corruptions", .int(Int64(r.corruptions)))) }
    if r.leaksFixed > 0 { kv.append(("leaks-fixed", .int(Int64(r.leaksFixed)))) }
    if r.corruptionsFixed > 0 { kv.append(("corruptions-fixed", .int(Int64(r.corruptionsFixed)))) }
    return .object(kv)
}

/// qemu-img check's human summary.
func renderHumanCheck(_ r: CheckReport) -> String {
    var out = ""
    for m in r.messages { out += m + "\n" }
    if r.leaksFixed + r.corruptionsFixed > 0 {
        out += "\nThe following inconsistencies were found and repaired:\n\n"
        out += "    \(r.leaksFixed) leaked clusters\n    \(r.corruptionsFixed) corruptions\n\n"
        for a in r.repairActions { out += "    " + a + "\n" }
    } else if !r.repairActions.isEmpty {
        out += "\nA repair (check -r leaks|all --write) would:\n"
        for a in r.repairActions { out += "    " + a + "\n" }
    }
    if r.corruptions == 0 && r.leaks == 0 && r.checkErrors == 0 {
        out += "No errors were found on the image.\n"
    } else {
        if r.corruptions > 0 {
            out += "\n\(r.corruptions) errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n"
        }
        if r.leaks > 0 {
            out += "\n\(r.leaks) leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n"
        }
        if r.checkErrors > 0 { out += "\n\(r.checkErrors) internal errors have occurred during the check.\n" }
    }
    if r.totalClusters > 0 && r.allocatedClusters > 0 {
        // As qemu-img (which prints nothing here for an empty image): allocated over total, fragmented and compressed over allocated.
        func pct(_ v: UInt64, _ of: UInt64) -> String { String(format: "%.2f%%", of == 0 ? 0 : Double(v) * 100 / Double(of)) }
        let a = r.allocatedClusters
        out += "\(a)/\(r.totalClusters) = \(pct(a, r.totalClusters)) allocated, \(pct(r.fragmentedClusters, a)) fragmented, \(pct(r.compressedClusters, a)) compressed clusters\n"
    }
    if let end = r.imageEndOffset { out += "Image end offset: \(end)\n" }
    return out
}

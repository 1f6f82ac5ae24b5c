import ArgumentParser
import BlockCore

/// `blockscope create -f FMT [-o k=v,...] [-b PARENT] IMAGE [SIZE]`: make a new image.
struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create",
        abstract: "Create an image (vhdx, vpc, qcow2, vmdk or raw), like qemu-img create.",
        discussion: """
        vhdx options: block_size, subformat=dynamic|fixed, log_size, block_state_zero=on|off.
        vpc options: subformat=dynamic|fixed, force_size=on|off.
        vmdk options: subformat=monolithicSparse|monolithicFlat|twoGbMaxExtentSparse|twoGbMaxExtentFlat|streamOptimized,
        adapter_type, hwversion, zeroed_grain=on|off; subformat=streamOptimized,source=IMAGE writes IMAGE's
        content as a streamOptimized stream (grain directory at the end, as VMware writes OVAs).
        qcow2 options: qemu-img's (cluster_size, refcount_bits, extended_l2, compression_type,
        lazy_refcounts, compat, backing_file, backing_fmt).
        -b PARENT makes a differencing vhdx or vpc image, or a qcow2 overlay, over PARENT
        (SIZE defaults to the parent's).
        """
    )

    @Option(name: [.customShort("f"), .long], help: "Image format: vhdx, vpc, qcow2, vmdk or raw.") var format: ImageFormat
    @Option(name: [.customShort("o")], help: "Format options, key=value separated by commas.") var options: [String] = []
    @Option(name: [.customShort("b"), .customLong("backing")], help: "Parent image (differencing vhdx or vpc, qcow2 backing file).") var backing: String?
    @Argument(help: "The image file to create.") var image: String
    @Argument(help: "Guest size (k/M/G/T suffixes); optional with -b.") var size: SizeArgument?

    func run() throws {
        try refuseDirectories(images: [image, backing])
        try reportingErrors { () throws(BlockError) in
            let kv = try parseOptions(options.joined(separator: ","))
            let bytes = size?.value ?? 0
            if bytes == 0 && backing == nil && kv["source"] == nil {
                throw BlockError(.invalidArgument, "a size is needed (give SIZE, or -b PARENT for a differencing image)", path: image, operation: "create")
            }
            func flag(_ k: String, _ def: Bool) throws(BlockError) -> Bool {
                guard let v = kv[k] else { return def }
                switch v.lowercased() {
                case "on", "true", "yes", "1": return true
                case "off", "false", "no", "0": return false
                default: throw BlockError(.invalidArgument, "option \(k)=\(v): expected on or off", operation: "create")
                }
            }
            func sizeOpt(_ k: String) throws(BlockError) -> UInt64? {
                guard let v = kv[k] else { return nil }
                guard let n = parseByteSize(v) else { throw BlockError(.invalidArgument, "option \(k)=\(v) is not a size", operation: "create") }
                return n
            }
            func subformat(_ allowed: [String]) throws(BlockError) -> String {
                let s = kv["subformat"] ?? "dynamic"
                if !allowed.contains(s) { throw BlockError(.invalidArgument, "subformat=\(s): expected \(allowed.joined(separator: " or "))", operation: "create") }
                return s
            }
            switch format {
            case .vhdx:
                try allowOnly(kv, ["block_size", "subformat", "log_size", "block_state_zero"])
                var o = VhdxCreateOptions()
                o.blockSize = try sizeOpt("block_size") ?? 0
                o.logSize = try sizeOpt("log_size") ?? (1 << 20)
                o.fixed = try subformat(["dynamic", "fixed"]) == "fixed"
                o.blockStateZero = try flag("block_state_zero", true)
                o.parent = backing
                o.referenceOpener = diskOpener
                try VhdxFormat.create(path: image, size: bytes, options: o)
            case .vpc:
                try allowOnly(kv, ["subformat", "force_size"])
                var o = VhdCreateOptions()
                o.fixed = try subformat(["dynamic", "fixed"]) == "fixed"
                o.forceSize = try flag("force_size", false)
                o.parent = backing
                o.referenceOpener = diskOpener
                try VhdFormat.create(path: image, size: bytes, options: o)
            case .vmdk:
                try allowOnly(kv, ["subformat", "adapter_type", "hwversion", "zeroed_grain", "source"])
                if let src = kv["source"] {
                    // A streamOptimized copy of another image (what an OVA holds), as VMware writes it.
                    if kv["subformat"] != "streamOptimized" { throw BlockError(.invalidArgument, "source= needs subformat=streamOptimized", operation: "create") }
                    let source = try openDisk(src, options: OpenOptions(writable: false))
                    defer { try? source.close() }
                    try VmdkFormat.writeStreamOptimized(path: image, source: source)
                    let made = try openDisk(image, options: OpenOptions(writable: false, format: .vmdk))
                    print("Formatting '\(image)', fmt=vmdk size=\(made.logicalSize)")
                    try made.close()
                    return
                }
                var o = VmdkCreateOptions()
                let sf = kv["subformat"] ?? "monolithicSparse"
                guard let s = VmdkCreateOptions.Subformat(rawValue: sf) else { throw BlockError(.invalidArgument, "subformat=\(sf): expected \(VmdkCreateOptions.Subformat.allCases.map(\.rawValue).joined(separator: ", "))", operation: "create") }
                o.subformat = s
                o.adapterType = kv["adapter_type"] ?? "ide"
                o.hardwareVersion = kv["hwversion"] ?? "4"
                o.zeroedGrain = try flag("zeroed_grain", false)
                o.parent = backing
                o.referenceOpener = diskOpener
                try VmdkFormat.create(path: image, size: bytes, options: o)
            case .raw:
                try allowOnly(kv, [])
                if backing != nil { throw BlockError(.invalidArgument, "raw images have no backing file", operation: "create") }
                let f = try SystemFile(path: image, writable: true, create: true, truncate: true)
                try f.truncate(to: bytes)
                f.close()
            case .qcow2:
                var o = try Qcow2CreateOptions(kv)
                var qsize = bytes
                if let backing {
                    o.backingFile = backing
                    if qsize == 0 || o.backingFormat == nil {
                        // The parent's size and format, as qemu-img create -b finds them.
                        let parentPath = backing.hasPrefix("/") || !image.contains("/") ? backing
                            : String(image[..<image.lastIndex(of: "/")!]) + "/" + backing
                        let parent = try openDisk(parentPath, options: OpenOptions(writable: false))
                        if qsize == 0 { qsize = parent.logicalSize }
                        if o.backingFormat == nil { o.backingFormat = parent.format.rawValue }
                        try parent.close()
                    }
                }
                try Qcow2Format.create(path: image, size: qsize, options: o)
            }
            let made = try openDisk(image, options: OpenOptions(writable: false, format: format))
            print("Formatting '\(image)', fmt=\(format.rawValue) size=\(made.logicalSize)")
            try made.close()
        }
    }

    private func parseOptions(_ text: String) throws(BlockError) -> [String: String] {
        var out: [String: String] = [:]
        for part in text.split(separator: ",") where !part.isEmpty {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { throw BlockError(.invalidArgument, "option '\(part)' is not key=value", operation: "create") }
            out[String(kv[0])] = String(kv[1])
        }
        return out
    }

    private func allowOnly(_ kv: [String: String], _ keys: [String]) throws(BlockError) {
        for k in kv.keys where !keys.contains(k) {
            throw BlockError(.invalidArgument, "\(format.rawValue) does not support option '\(k)' (supported: \(keys.isEmpty ? "none" : keys.joined(separator: ", ")))", operation: "create")
        }
    }
}

import Foundation

/// Oracles and image set-ups shared by the QCOW2 write tests (issue 5): every verdict
/// comes from qemu-img / qemu-io or a raw mirror, never from blockscope reading itself.
public enum Qcow2WriteOracle {
    /// Guest size of the images the write tests use.
    public static let diskSize: UInt64 = 64 << 20

    /// `qemu-img check --output=json` on `image`; throws unless it exits 0 with no corruptions,
    /// leaks or check errors (with `allowLeaks`, exit 3 and leaked clusters are accepted).
    public static func expectClean(_ image: String, allowLeaks: Bool = false, _ context: String = "") throws {
        let r = try TestSupport.qemuImg(["check", "--output=json", "-f", "qcow2", image])
        let what = "\(context) qemu-img check \(image): exit \(r.status)\n\(r.stdoutText)\(r.stderr)"
        let okStatus: Set<Int32> = allowLeaks ? [0, 3] : [0]
        guard okStatus.contains(r.status) else { throw TestFailure(what) }
        guard let j = (try? JSONSerialization.jsonObject(with: r.stdout)) as? [String: Any] else { throw TestFailure("\(what): not JSON") }
        func count(_ key: String) -> Int { (j[key] as? Int) ?? 0 }
        if count("corruptions") != 0 || count("check-errors") != 0 || (!allowLeaks && count("leaks") != 0) { throw TestFailure(what) }
    }

    /// `qemu-img compare -f raw -F qcow2 RAW IMAGE`; throws unless it reports the images identical.
    public static func expectSameContent(raw: String, image: String, _ context: String = "") throws {
        let r = try TestSupport.qemuImg(["compare", "-f", "raw", "-F", "qcow2", raw, image])
        if r.status != 0 { throw TestFailure("\(context) qemu-img compare \(raw) \(image): exit \(r.status): \(r.stdoutText) \(r.stderr)") }
    }

    /// Guest content of `image` (qcow2) per `qemu-img convert -O raw`, written to `out`.
    public static func convertToRaw(_ image: String, _ out: String, snapshot: String? = nil) throws {
        var args = ["convert", "-f", "qcow2", "-O", "raw"]
        if let snapshot { args += ["-l", "snapshot.name=\(snapshot)"] }
        try TestSupport.qemuImg(args + [image, out])
    }

    /// Fills `[offset, offset+mib MiB)` of `path` with /dev/urandom bytes, keeping the file's size.
    public static func randomFill(_ path: String, offsetMiB: Int, mib: Int) throws {
        let r = try TestSupport.run("dd", ["if=/dev/urandom", "of=\(path)", "bs=1M", "seek=\(offsetMiB)", "count=\(mib)",
                                           "conv=notrunc", "status=none"])
        if r.status != 0 { throw TestFailure("dd failed: \(r.stderr)") }
    }

    /// A raw file of the disk size holding random, zero and repeated-byte regions (compressible in parts).
    public static func mixedRaw(_ path: String) throws {
        try TestSupport.qemuImg(["create", "-q", "-f", "raw", path, "\(diskSize)"])
        try randomFill(path, offsetMiB: 0, mib: 6)
        try randomFill(path, offsetMiB: 12, mib: 5)
        try randomFill(path, offsetMiB: 40, mib: 3)
        try TestSupport.qemuIo(path, format: "raw", ["write -P 0x33 20M 4M", "write -P 0x7e 50M 1M", "write -P 0x01 63M 512k"])
    }

    /// How a test image is prepared before blockscope writes to it.
    public enum Setup: String, CaseIterable, CustomStringConvertible, Sendable {
        /// Default 64 KiB clusters, some data and zero clusters written by qemu-io.
        case cluster64k
        /// 4 KiB clusters: many L2 tables and refcount blocks, most writes span clusters.
        case cluster4k
        /// 512-byte clusters with 64-bit refcounts: an L2 table covers 32 KiB and a refcount
        /// block 64 clusters, so writes cross many tables and the refcount table must grow.
        case cluster512refcount64
        /// An external data file (`data_file=`): data goes to the data file, metadata to the image.
        case externalDataFile
        /// An external data file with `data_file_raw=on`: the data file must stay a consistent raw
        /// image of the guest (zeroes and discards are written to it, not only flagged in L2).
        case externalRawDataFile
        /// refcount_bits=1 (refcounts saturate at 1).
        case refcount1
        /// refcount_bits=64.
        case refcount64
        /// Extended L2 entries with 64 KiB clusters (2 KiB subclusters).
        case extendedL2c64k
        /// Extended L2 entries with 128 KiB clusters (4 KiB subclusters).
        case extendedL2c128k
        /// Data written compressed with zstd by `qemu-img convert -c`.
        case zstdCompressed
        /// Data written compressed with zlib (deflate) by `qemu-img convert -c`.
        case zlibCompressed
        /// A raw backing file of random bytes (`-b base.raw -F raw`): writes copy on write.
        case rawBacking
        /// A raw backing file under an extended-L2 image: copy on write per subcluster.
        case rawBackingExtendedL2
        /// A raw backing file under a 4 KiB-cluster image.
        case rawBackingCluster4k
        /// A qcow2 backing file (compressed data in it).
        case qcow2Backing
        /// Internal snapshot `snap1`: its clusters are shared (refcount 2) and must be copied.
        case snapshot
        /// Internal snapshot over compressed clusters.
        case snapshotCompressed
        /// Clusters freed by qemu with `pass-discard-request=off`: free in the refcounts but still
        /// holding old bytes, so a reused cluster must not be assumed to read as zeroes.
        case reusedClusters
        /// The same with extended L2 entries (partial subclusters in reused clusters).
        case reusedClustersExtendedL2
        /// Version 2 image (compat=0.10): no zero flag, no feature bits.
        case v2
        /// Version 2 over a raw backing file: zeroes and discards must hide the backing data without a zero flag.
        case v2Backing
        /// Version 2 with an internal snapshot.
        case v2Snapshot

        public var description: String { rawValue }

        /// The raw data file that must equal the guest content (data_file_raw=on), if any.
        public func rawDataFile(in dir: String) -> String? { self == .externalRawDataFile ? dir + "/img.data" : nil }

        /// Whether the image has an internal snapshot named snap1.
        public var hasSnapshot: Bool { self == .snapshot || self == .snapshotCompressed || self == .v2Snapshot }
    }

    /// Builds the image for `setup` in `dir` with qemu-img / qemu-io; returns its path.
    @discardableResult
    public static func prepare(_ setup: Setup, in dir: String) throws -> String {
        let img = dir + "/img.qcow2"
        let size = "\(diskSize)"
        func create(_ opts: String?, extra: [String] = []) throws {
            var args = ["create", "-q", "-f", "qcow2"]
            if let opts { args += ["-o", opts] }
            try TestSupport.qemuImg(args + extra + [img, size])
        }
        // Data, a zero range and an unaligned range, so writes hit allocated, zero and free clusters.
        let prefill = ["write -P 0x5a 0 4M", "write -P 0x6b 20M 3M", "write -P 0x21 33M 700k", "write -z 40M 2M"]
        switch setup {
        case .cluster64k:
            try create(nil)
            try TestSupport.qemuIo(img, format: "qcow2", prefill)
        case .cluster4k:
            try create("cluster_size=4096")
            try TestSupport.qemuIo(img, format: "qcow2", prefill)
        case .cluster512refcount64:
            try create("cluster_size=512,refcount_bits=64")
            try TestSupport.qemuIo(img, format: "qcow2", prefill)
        case .externalDataFile:
            // An absolute path: qemu-img creates a relative data file in its working directory.
            try create("data_file=\(dir)/img.data")
            try TestSupport.qemuIo(img, format: "qcow2", prefill)
        case .externalRawDataFile:
            try create("data_file=\(dir)/img.data,data_file_raw=on")
            try TestSupport.qemuIo(img, format: "qcow2", prefill.filter { !$0.contains("-z") })
        case .refcount1:
            try create("refcount_bits=1,cluster_size=4096")
            try TestSupport.qemuIo(img, format: "qcow2", prefill)
        case .refcount64:
            try create("refcount_bits=64")
            try TestSupport.qemuIo(img, format: "qcow2", prefill)
        case .extendedL2c64k:
            try create("extended_l2=on,cluster_size=64k")
            try TestSupport.qemuIo(img, format: "qcow2", prefill + ["write -P 0x44 48M 3k", "write -z 49M 6k"])
        case .extendedL2c128k:
            try create("extended_l2=on,cluster_size=128k")
            try TestSupport.qemuIo(img, format: "qcow2", prefill + ["write -P 0x44 48M 5k", "write -z 49M 10k"])
        case .zstdCompressed, .zlibCompressed:
            let raw = dir + "/source.raw"
            try mixedRaw(raw)
            let type = setup == .zstdCompressed ? "zstd" : "zlib"
            try TestSupport.qemuImg(["convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=\(type)", raw, img])
            try FileManager.default.removeItem(atPath: raw)
        case .rawBacking, .rawBackingExtendedL2, .rawBackingCluster4k, .v2Backing:
            let base = dir + "/base.raw"
            try TestSupport.qemuImg(["create", "-q", "-f", "raw", base, size])
            try randomFill(base, offsetMiB: 0, mib: Int(diskSize >> 20))
            let opts: String? = setup == .rawBackingExtendedL2 ? "extended_l2=on,cluster_size=64k"
                : (setup == .rawBackingCluster4k ? "cluster_size=4096" : (setup == .v2Backing ? "compat=0.10" : nil))
            try create(opts, extra: ["-b", "base.raw", "-F", "raw"])
            try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x5a 1M 1M", "write -P 0x21 33M 700k", "write -z 40M 2M"])
        case .qcow2Backing:
            let raw = dir + "/source.raw"
            try mixedRaw(raw)
            try TestSupport.qemuImg(["convert", "-q", "-c", "-f", "raw", "-O", "qcow2", raw, dir + "/base.qcow2"])
            try FileManager.default.removeItem(atPath: raw)
            try create("cluster_size=32k", extra: ["-b", "base.qcow2", "-F", "qcow2"])
            try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x5a 1M 1M", "write -z 40M 2M"])
        case .snapshot:
            try create(nil)
            try TestSupport.qemuIo(img, format: "qcow2", prefill)
            try TestSupport.qemuImg(["snapshot", "-c", "snap1", img])
            // After the snapshot: some clusters now have refcount 1 again, others stay shared.
            try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x77 2M 512k", "write -P 0x78 50M 1M"])
        case .snapshotCompressed:
            let raw = dir + "/source.raw"
            try mixedRaw(raw)
            try TestSupport.qemuImg(["convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd", raw, img])
            try FileManager.default.removeItem(atPath: raw)
            try TestSupport.qemuImg(["snapshot", "-c", "snap1", img])
        case .reusedClusters, .reusedClustersExtendedL2:
            try create(setup == .reusedClusters ? "cluster_size=16k" : "extended_l2=on,cluster_size=64k")
            try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0xee 0 24M", "write -P 0x6b 30M 2M"])
            let r = try TestSupport.run("qemu-io", ["--image-opts", "-c", "discard 0 24M",
                                                    "driver=qcow2,file.filename=\(img),pass-discard-request=off"])
            if r.status != 0 || r.stdoutText.contains("failed") { throw TestFailure("qemu-io discard: \(r.stdoutText) \(r.stderr)") }
        case .v2:
            try create("compat=0.10")
            try TestSupport.qemuIo(img, format: "qcow2", prefill)
        case .v2Snapshot:
            try create("compat=0.10")
            try TestSupport.qemuIo(img, format: "qcow2", prefill)
            try TestSupport.qemuImg(["snapshot", "-c", "snap1", img])
            try TestSupport.qemuIo(img, format: "qcow2", ["write -P 0x77 2M 512k"])
        }
        return img
    }

    /// A fio job: `threads` random writers (or readers+writers with `mix`) of 512 B..300 KiB at
    /// 512-byte alignment with an fsync every `fsync` writes, plus a thread of random discards.
    public static func job(threads: Int = 2, ios: Int = 150, fsync: Int = 16, mixed: Bool = false,
                    trims: Int = 30, seed: UInt64 = 7, depth: Int = 16) -> String {
        var text = """
        [global]
        bsrange=512-300k
        blockalign=512
        iodepth=\(depth)
        randseed=\(seed)
        size=\(diskSize)
        fsync=\(fsync)

        [writers]
        rw=\(mixed ? "randrw" : "randwrite")
        rwmixread=30
        numjobs=\(threads)
        number_ios=\(ios)

        """
        if trims > 0 {
            text += """

            [trims]
            rw=randtrim
            bsrange=512-192k
            number_ios=\(trims)

            """
        }
        return text
    }
}

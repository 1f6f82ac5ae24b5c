import BlockCore
import Foundation
import Testing
import TestSupport

/// Comparisons of the built `blockscope` against qemu-img on one QCOW2 image.
enum Qcow2Oracle {
    /// Runs a shell-free qemu-io with commands on a qcow2 image.
    static func io(_ image: String, _ commands: [String]) throws {
        try TestSupport.qemuIo(image, format: "qcow2", commands)
    }

    /// `qemu-img create -q -f qcow2 [-o opts] [extra] image size`.
    static func create(_ image: String, _ size: String, options: String? = nil, extra: [String] = []) throws {
        var args = ["create", "-q", "-f", "qcow2"]
        if let options { args += ["-o", options] }
        try TestSupport.qemuImg(args + extra + [image, size])
    }

    /// Parses a JSON document, failing the test with the text on error.
    static func json(_ text: String) throws -> JSONValue {
        do { return try JSONValue.parse(text) } catch { throw TestFailure("not JSON: \(text.prefix(300)) (\(error))") }
    }

    /// The object's keys and values except `filename`, sorted by key.
    static func fields(_ v: JSONValue, dropping: Set<String> = ["filename"]) -> [String: String] {
        guard case let .object(kv) = v else { return [:] }
        var out: [String: String] = [:]
        for (k, x) in kv where !dropping.contains(k) { out[k] = x.render(pretty: false) }
        return out
    }

    /// `cat` equals `qemu-img convert -O raw` (through the async engine, and with
    /// `--engine=sync` when asked).
    static func expectCatMatches(_ image: String, engines: [String] = ["auto"], snapshot: String? = nil,
                                 sourceLocation: SourceLocation = #_sourceLocation) throws {
        let oracle: Data
        if let snapshot {
            let out = image + ".snap-\(snapshot).raw"
            defer { try? FileManager.default.removeItem(atPath: out) }
            try TestSupport.qemuImg(["convert", "-f", "qcow2", "-O", "raw", "-l", "snapshot.name=\(snapshot)", image, out])
            oracle = try TestSupport.readFile(out)
        } else {
            oracle = try TestSupport.qemuRaw(image, format: "qcow2")
        }
        for engine in engines {
            var args = ["cat", "--engine", engine, image]
            if let snapshot { args += ["--snapshot", snapshot] }
            let r = try TestSupport.blockscope(args)
            #expect(r.status == 0, "cat \(image) (\(engine)) failed: \(r.stderr)", sourceLocation: sourceLocation)
            #expect(r.stdout.count == oracle.count, "cat \(image) (\(engine)): \(r.stdout.count) bytes, qemu-img \(oracle.count)", sourceLocation: sourceLocation)
            // Compare as a Bool: #expect on two large Data values would compute a diff.
            let same = r.stdout == oracle
            let firstDiff = same ? -1 : (zip(r.stdout, oracle).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(r.stdout.count, oracle.count))
            #expect(same, "cat \(image) (\(engine)) differs from qemu-img convert -O raw at byte \(firstDiff)", sourceLocation: sourceLocation)
        }
    }

    /// `map --output=json` equals `qemu-img map --output=json` line for line.
    static func expectMapMatches(_ image: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let q = try TestSupport.qemuImg(["map", "--output=json", "-f", "qcow2", image])
        let b = try TestSupport.blockscope(["map", "--output=json", image])
        #expect(b.status == 0, "map \(image) failed: \(b.stderr)", sourceLocation: sourceLocation)
        let ql = q.stdoutText.split(separator: "\n"), bl = b.stdoutText.split(separator: "\n")
        #expect(bl == ql, "map \(image) differs:\nblockscope:\n\(bl.prefix(12).joined(separator: "\n"))\nqemu-img:\n\(ql.prefix(12).joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    /// `check --output=json` has qemu-img check's fields and values, and the same exit code.
    static func expectCheckMatches(_ image: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let q = try TestSupport.qemuImg(["check", "--output=json", "-f", "qcow2", image])
        let b = try TestSupport.blockscope(["check", "--output=json", image])
        #expect(b.status == q.status, "check \(image): exit \(b.status), qemu-img \(q.status): \(b.stderr)", sourceLocation: sourceLocation)
        let qf = fields(try json(q.stdoutText)), bf = fields(try json(b.stdoutText))
        #expect(bf == qf, "check \(image) differs:\nblockscope \(bf)\nqemu-img \(qf)", sourceLocation: sourceLocation)
    }

    /// The qemu-img info fields blockscope prints equal qemu-img's (format-specific.data key by key).
    static func expectInfoMatches(_ image: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let q = try json(try TestSupport.qemuImg(["info", "--output=json", "-f", "qcow2", image]).stdoutText)
        let r = try TestSupport.blockscope(["info", "--output=json", image])
        #expect(r.status == 0, "info \(image) failed: \(r.stderr)", sourceLocation: sourceLocation)
        let b = try json(r.stdoutText)
        for key in ["virtual-size", "cluster-size", "format", "dirty-flag", "backing-filename", "backing-filename-format", "encrypted"] {
            #expect(b[key] == q[key], "info \(image): \(key) is \(b[key]?.render(pretty: false) ?? "absent"), qemu-img \(q[key]?.render(pretty: false) ?? "absent")", sourceLocation: sourceLocation)
        }
        let qd = q["format-specific"]?["data"].map { fields($0, dropping: ["encrypt"]) } ?? [:]
        let bd = b["format-specific"]?["data"].map { fields($0, dropping: ["encrypt"]) } ?? [:]
        #expect(bd == qd, "info \(image) format-specific differs:\nblockscope \(bd)\nqemu-img \(qd)", sourceLocation: sourceLocation)
        let qs = q["snapshots"]?.arrayValue?.map { fields($0) } ?? []
        let bs = b["snapshots"]?.arrayValue?.map { fields($0) } ?? []
        #expect(bs == qs, "info \(image) snapshots differ", sourceLocation: sourceLocation)
        #expect(b["blockscope"]?["l1-size"] != nil, "info \(image) lacks blockscope.l1-size", sourceLocation: sourceLocation)
    }

    /// All four comparisons.
    static func expectAllMatch(_ image: String, engines: [String] = ["auto"], sourceLocation: SourceLocation = #_sourceLocation) throws {
        try expectCatMatches(image, engines: engines, sourceLocation: sourceLocation)
        try expectMapMatches(image, sourceLocation: sourceLocation)
        try expectCheckMatches(image, sourceLocation: sourceLocation)
        try expectInfoMatches(image, sourceLocation: sourceLocation)
    }

    /// Deterministic data with compressible and incompressible halves, as a raw file.
    static func mixedRaw(_ path: String, size: Int, seed: UInt64) throws {
        var bytes = TestSupport.pseudoRandomBytes(count: size, seed: seed)
        var i = 0
        while i < size { for j in i..<min(size, i + 4096) { bytes[j] = 0x41 }; i += 8192 }
        try TestSupport.writeFile(path, bytes)
    }
}

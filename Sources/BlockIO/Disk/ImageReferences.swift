#if canImport(Glibc)
import Glibc
#endif

/// How an image opens an image it refers to (a QCOW2 backing file, a VHDX or VHD parent): the
/// block layer's `openDisk`, which probes the format and takes the referenced image's locks.
/// The formats know no other format, so the registry hands them this function
/// (``OpenOptions/referenceOpener``, set by `openDisk`; create options carry one too).
public typealias ImageOpener = @Sendable (_ path: String, _ options: OpenOptions) throws(BlockError) -> any DiskFile

extension OpenOptions {
    /// Opens `path`, an image this image refers to, with `options` through
    /// ``referenceOpener`` (passed on, so the referenced image opens its own references the
    /// same way). Without an opener (a format opened directly, not through `openDisk`) the
    /// reference is refused with `unsupportedFeature`.
    package func openReference(_ path: String, options: OpenOptions) throws(BlockError) -> any DiskFile {
        guard let opener = referenceOpener else {
            throw BlockError(.unsupportedFeature, "cannot open the referenced image: the image was not opened through openDisk", path: path, operation: "open")
        }
        var o = options
        o.referenceOpener = opener
        return try opener(path, o)
    }
}

extension OpenOptions {
    /// Refuses `path` when ``referenceRoot`` is set and `path` resolves outside it. A path
    /// that does not resolve (a missing file) passes: opening it fails on its own.
    package func confine(_ path: String) throws(BlockError) {
        guard let root = referenceRoot else { return }
        guard let real = realpath(path, nil) else { return }
        defer { free(real) }
        let resolved = String(cString: real)
        var base = root
        if let r = realpath(root, nil) { base = String(cString: r); free(r) }
        if resolved != base && !resolved.hasPrefix(base.hasSuffix("/") ? base : base + "/") {
            throw BlockError(.invalidArgument, "resolves to \(resolved), outside \(base), the only directory this image may refer to", path: path, operation: "open")
        }
    }
}

extension BlockError {
    /// Restates an error from opening a file that `image` refers to from `image`'s side:
    /// `image: <what>: <the referenced file's error>`, where `what` names the reference and
    /// the header field that holds it. The inner error keeps its own offsets; its path is
    /// dropped when it is `referenced` itself (the message already names it).
    public func referredTo(by image: String, referenced: String, _ what: String) -> BlockError {
        var inner = self
        if inner.path == referenced { inner.path = nil }
        return BlockError(kind, "\(what): \(inner.description)", errno: errno, path: image, operation: operation)
    }
}

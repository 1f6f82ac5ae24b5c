import BlockCore
import BlockInspect

/// The image being inspected: the open disk (when blockscope's format code can open it), the
/// format's inspector behind the layout views, its words for events, and `info()`.
///
/// The inspector comes from the block layer's registry (`openInspector`): each format fills
/// the neutral inspection model itself, so this type and the views name no format. A format
/// whose tables can be read without I/O is inspected even when the disk cannot open.
package final class ImageModel {
    /// The image path.
    package let path: String
    /// The open disk, when opening succeeded.
    package private(set) var disk: (any DiskFile)?
    /// Why the disk could not be opened, when it could not.
    package private(set) var openError: String?
    /// The format's inspector, when one fits the image.
    package private(set) var inspector: (any ImageInspector)?
    /// The format's words for events (step mode, the log).
    package private(set) var words: any FormatEventWords = IdentityEventWords()
    /// Whether the image was opened for writing.
    package let writable: Bool
    /// The probed format.
    package let format: ImageFormat

    /// Opens `path` (read-only unless `writable`; data through `O_DIRECT` with `direct`),
    /// sending the disk's events to `sink`.
    package init(path: String, writable: Bool, engine: EngineKind = .auto, direct: Bool = false, sink: (any IoEventSink)? = nil) {
        self.path = path
        self.writable = writable
        var opts = OpenOptions(writable: writable, engine: engine)
        opts.direct = direct
        opts.eventSink = sink
        do {
            disk = try openDisk(path, options: opts)
        } catch let e {
            openError = e.description
        }
        var head: [UInt8] = []
        if let f = try? SystemFile(path: path, writable: false) {
            head = (try? f.readBytes(at: 0, count: 512)) ?? []
            f.close()
        }
        format = disk?.format ?? probeFormat(head)
        do {
            if let h = try openInspector(path: path, disk: disk, format: format) {
                inspector = h.inspector
                words = h.words
            }
        } catch let e {
            openError = (openError.map { $0 + "; " } ?? "") + e.description
        }
    }

    /// An image seen only through `inspector` (no disk, no I/O): a format the block layer's
    /// registry does not know yet, in tests of the views.
    init(path: String, format: ImageFormat, inspector: any ImageInspector, words: any FormatEventWords = IdentityEventWords()) {
        self.path = path
        self.writable = false
        self.format = format
        self.inspector = inspector
        self.words = words
    }

    /// The disk's `info()` JSON, or nil.
    package func info() -> JSONValue? {
        guard let disk else { return nil }
        return try? disk.info()
    }

    /// Guest bytes at `offset`: through the disk when open, else through the inspector's
    /// mapping (data clusters only). Nil when neither can read them.
    package func readGuest(at offset: UInt64, count: Int) -> [UInt8]? {
        if let disk {
            let n = Int(min(UInt64(count), disk.logicalSize > offset ? disk.logicalSize - offset : 0))
            guard n > 0 else { return [] }
            var out = [UInt8](repeating: 0, count: n)
            let ok = out.withUnsafeMutableBytes { b -> Bool in
                do { try disk.read(into: b, at: offset); return true } catch { return false }
            }
            return ok ? out : nil
        }
        guard let inspector else { return nil }
        var out: [UInt8] = []
        var off = offset
        while out.count < count {
            let chunk = min(count - out.count, 512 - Int(off % 512))
            let m = inspector.mapGuest(off)
            if let h = m.host {
                out += inspector.readHost(at: h, count: chunk)
            } else if inspector.guestCell(off, 1).tone == .compressed {
                return nil
            } else {
                out += [UInt8](repeating: 0, count: chunk)
            }
            off += UInt64(chunk)
        }
        return out
    }

    /// Guest size in bytes.
    package var guestSize: UInt64 { disk?.logicalSize ?? inspector?.guestSize ?? 0 }
}

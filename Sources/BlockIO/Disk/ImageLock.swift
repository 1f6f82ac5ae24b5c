#if canImport(Glibc)
import Glibc
#endif

/// QEMU's image locks: open file description (OFD) locks on bytes 100+ and 200+.
///
/// QEMU marks each permission it holds with a shared lock on byte `100 + bit` and each
/// permission it refuses to share with one on byte `200 + bit` (bits: 0 consistent read,
/// 1 write, 2 write-unchanged, 3 resize). A writer conflicts with a process that holds
/// byte 201 (does not share writes); a reader is only warned when byte 101 is held.
/// The lock lives on its own descriptor for as long as the image is open.
package final class ImageLock: @unchecked Sendable {
    /// Permission bits in QEMU's lock scheme.
    public enum Permission: Int64, Sendable, CaseIterable {
        /// BLK_PERM_CONSISTENT_READ.
        case consistentRead = 0
        /// BLK_PERM_WRITE.
        case write = 1
        /// BLK_PERM_WRITE_UNCHANGED.
        case writeUnchanged = 2
        /// BLK_PERM_RESIZE.
        case resize = 3
    }

    private var fd: Int32
    /// The locked path.
    public let path: String
    /// A warning for the user when another process holds the image for writing.
    public let warning: String?

    private static let F_OFD_GETLK: Int32 = 36
    private static let F_OFD_SETLK: Int32 = 37

    /// Checks for conflicts and takes the locks for a read-only or writable open.
    ///
    /// A writable open fails with `locked` when another process does not share writes;
    /// `shareWrites` (RAW, as QEMU does) leaves writes shared by this process too.
    public init(path: String, writable: Bool, shareWrites: Bool) throws(BlockError) {
        self.path = path
        var fd: Int32
        fd = Syscall.retrying { open(path, O_RDONLY | O_CLOEXEC) }
        if fd < 0 { throw BlockError.system(errno, "open", path: path) }
        self.fd = fd
        var warn: String? = nil
        if writable {
            // We want write and consistent read: nobody may hold "unshared" on them.
            for p in [Permission.write, .consistentRead] where ImageLock.isHeld(fd, byte: 200 + p.rawValue) {
                Glibc.close(fd)
                self.fd = -1
                throw BlockError(.locked, "image is locked: in use by another process that does not share \(p == .write ? "writes" : "reads") (QEMU lock byte \(200 + p.rawValue)); stop it or open read-only", path: path, operation: "lock")
            }
            // Unless writes are shared, nobody else may hold write.
            if !shareWrites && ImageLock.isHeld(fd, byte: 100 + Permission.write.rawValue) {
                Glibc.close(fd)
                self.fd = -1
                throw BlockError(.locked, "image is locked: another process has it open for writing (QEMU lock byte 101); stop it or open read-only", path: path, operation: "lock")
            }
        } else if ImageLock.isHeld(fd, byte: 100 + Permission.write.rawValue) {
            warn = "\(path): warning: the image is open for writing in another process; what is shown may change underneath"
        }
        self.warning = warn
        // Take our own locks so QEMU sees us.
        var bytes: [Int64] = [100 + Permission.consistentRead.rawValue]
        if writable {
            bytes.append(100 + Permission.write.rawValue)
            if !shareWrites { bytes.append(200 + Permission.write.rawValue) }
        }
        for b in bytes { _ = ImageLock.lockShared(fd, byte: b) }
    }

    deinit { release() }

    /// Drops every lock (closing the lock descriptor).
    public func release() {
        guard fd >= 0 else { return }
        // Unlock before the close: an OFD lock lives as long as any descriptor of its open
        // file description. A child another thread is spawning holds a copy of this
        // descriptor from its fork until its exec closes it (O_CLOEXEC), so a close alone
        // left the lock held for that window, and on a loaded machine a qemu-img started right
        // after the close was refused ("Failed to get shared "write" lock").
        var fl = flock()
        fl.l_type = Int16(F_UNLCK)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = 0
        fl.l_len = 0
        fl.l_pid = 0
        _ = fcntl(fd, Self.F_OFD_SETLK, &fl)
        Glibc.close(fd)
        fd = -1
    }

    /// Whether another open file description holds a lock on `byte` (F_OFD_GETLK).
    package static func isHeld(_ fd: Int32, byte: Int64) -> Bool {
        var fl = flock()
        fl.l_type = Int16(F_WRLCK)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = off_t(byte)
        fl.l_len = 1
        fl.l_pid = 0
        if fcntl(fd, F_OFD_GETLK, &fl) != 0 { return false }
        return fl.l_type != Int16(F_UNLCK)
    }

    package static func lockShared(_ fd: Int32, byte: Int64) -> Bool {
        var fl = flock()
        fl.l_type = Int16(F_RDLCK)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = off_t(byte)
        fl.l_len = 1
        fl.l_pid = 0
        return fcntl(fd, F_OFD_SETLK, &fl) == 0
    }
}

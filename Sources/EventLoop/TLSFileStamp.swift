#if canImport(Glibc)
import Glibc
#endif

/// What the TLS files look like on disk (inode, size, modification time of each; a missing
/// file counts as such): a rotation, in place or by rename, changes it.
struct TLSFileStamp: Equatable {
    private struct Entry: Equatable {
        var inode: UInt64 = 0
        var size: Int64 = -1
        var modifiedSeconds: Int = 0
        var modifiedNanos: Int = 0
    }

    private let entries: [Entry]

    init(_ files: TLSFiles) {
        entries = [files.certificate, files.key, files.ca].map { path in
            var info = stat()
            guard stat(path, &info) == 0 else { return Entry() }
            return Entry(inode: UInt64(info.st_ino), size: Int64(info.st_size),
                         modifiedSeconds: info.st_mtim.tv_sec, modifiedNanos: info.st_mtim.tv_nsec)
        }
    }
}

import Glibc

/// Thin wrappers over the POSIX calls the log uses: retry `EINTR`, turn `errno` into `StorageError.io`.
/// No policy lives here; callers decide what to sync and when.
enum SystemFile {
    /// Runs `call` until it stops failing with `EINTR`; throws for any other failure.
    @discardableResult
    static func retrying<T: BinaryInteger>(_ operation: String, _ path: String, _ call: () -> T) throws -> T {
        while true {
            let result = call()
            if result >= 0 { return result }
            let code = errno
            if code == EINTR { continue }
            throw StorageError.io(operation: operation, path: path, errno: code)
        }
    }

    static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        try retrying("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    static func close(_ fd: Int32) {
        // Retrying close after EINTR can close a descriptor another thread just got: Linux frees it regardless.
        _ = Glibc.close(fd)
    }

    /// Writes all of `bytes`, looping over short writes.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var written = 0
        while written < bytes.count {
            let n = try retrying("write", path) {
                Glibc.write(fd, bytes.baseAddress! + written, bytes.count - written)
            }
            written += n
        }
    }

    /// Writes all of `bytes` at `offset`, looping over short writes.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws {
        var written = 0
        while written < bytes.count {
            let n = try retrying("pwrite", path) {
                pwrite(fd, bytes.baseAddress! + written, bytes.count - written, off_t(offset + written))
            }
            written += n
        }
    }

    /// Reserves disk blocks for the first `length` bytes (the file reads as zeros there), so
    /// later writes inside them change no file size. The blocks stay unwritten extents until
    /// written (see `WALSegmentWriter.zeroFillChunk`).
    static func preallocate(_ fd: Int32, length: Int, path: String) throws {
        let status = posix_fallocate(fd, 0, off_t(length))
        if status != 0 { throw StorageError.io(operation: "posix_fallocate", path: path, errno: status) }
    }

    /// Reads `size` bytes from file offset `start` into memory with large `pread`s, straight into
    /// the returned array (recovery parses from this buffer). Fewer bytes come back if the file ends first.
    static func readAll(_ fd: Int32, size: Int, at start: Int = 0, path: String) throws -> [UInt8] {
        let chunk = 8 << 20
        return try [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var offset = 0
            while offset < size {
                let n = try retrying("pread", path) {
                    pread(fd, buffer.baseAddress! + offset, min(chunk, size - offset), off_t(start + offset))
                }
                if n == 0 { break }  // shrank under us; parse what we have
                offset += n
                initialized = offset
            }
        }
    }

    static func size(_ fd: Int32, path: String) throws -> Int {
        var info = stat()
        try retrying("fstat", path) { fstat(fd, &info) }
        return Int(info.st_size)
    }

    static func dataSync(_ fd: Int32, path: String) throws {
        try retrying("fdatasync", path) { fdatasync(fd) }
    }

    static func fullSync(_ fd: Int32, path: String) throws {
        try retrying("fsync", path) { fsync(fd) }
    }

    static func truncate(_ fd: Int32, to length: Int, path: String) throws {
        try retrying("ftruncate", path) { ftruncate(fd, off_t(length)) }
    }

    static func remove(_ path: String) throws {
        try retrying("unlink", path) { unlink(path) }
    }

    static func rename(_ from: String, _ to: String) throws {
        try retrying("rename", "\(from) -> \(to)") { Glibc.rename(from, to) }
    }

    /// Makes a directory's entries (new, renamed files) durable.
    static func syncDirectory(_ path: String) throws {
        let fd = try open(path, flags: O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fullSync(fd, path: path)
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Creates `path` and any missing parents, syncing each parent that gained an entry.
    static func makeDirectories(_ path: String) throws {
        if exists(path) { return }
        let parent = parentDirectory(of: path)
        if parent != path { try makeDirectories(parent) }
        if Glibc.mkdir(path, 0o755) != 0 {
            let code = errno
            if code != EEXIST { throw StorageError.io(operation: "mkdir", path: path, errno: code) }
            return
        }
        try syncDirectory(parent)
    }

    static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    /// Names of the entries in a directory (without `.` and `..`).
    static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            throw StorageError.io(operation: "opendir", path: path, errno: errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Takes an exclusive advisory lock without waiting; false if someone else holds it.
    static func tryLock(_ fd: Int32, path: String) throws -> Bool {
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
            let code = errno
            if code == EINTR { continue }
            if code == EWOULDBLOCK { return false }
            throw StorageError.io(operation: "flock", path: path, errno: code)
        }
    }
}

extension SystemFile {
    /// Replaces (or creates) `directory/name` with `bytes` so that a crash leaves either the old
    /// file or the new one, whole: written to `temporaryName`, fsynced, renamed, directory fsynced.
    static func replaceAtomically(directory: String, name: String, temporaryName: String, with bytes: [UInt8]) throws {
        let temporary = "\(directory)/\(temporaryName)"
        let final = "\(directory)/\(name)"
        let fd = try open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
        do {
            try bytes.withUnsafeBytes { try writeAll(fd, $0, path: temporary) }
            try fullSync(fd, path: temporary)
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        try rename(temporary, final)
        try syncDirectory(directory)
    }
}

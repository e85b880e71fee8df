import Glibc

/// Reads a data dir's snapshot file from disk a piece at a time, so a snapshot can be sent to a
/// follower or a state machine without holding it in memory.
///
/// The file stays open: a newer snapshot renamed over it meanwhile does not change what this
/// reader returns. The checksum is computed as the bytes go by, and the last piece is returned
/// only once the whole file checked out, so a damaged file is never sent complete.
public final class SnapshotReader {
    /// Last log index the snapshot covers.
    public let index: UInt64
    /// Term of the entry at `index`.
    public let term: UInt64
    /// Bytes of state machine data in the file.
    public let dataSize: Int
    /// Data bytes handed out so far.
    public private(set) var offset = 0
    private let fd: Int32
    private let path: String
    private let header: SnapshotFile.Header
    private var checksum: UInt32

    /// Opens `directory`'s snapshot file; nil if there is none. Throws `corruptSnapshot` for a
    /// file whose header is damaged, of another format version, or does not match its size.
    public static func open(directory: String) throws -> SnapshotReader? {
        let path = SnapshotFile.path(in: directory)
        guard SystemFile.exists(path) else { return nil }
        let fd = try SystemFile.open(path, flags: O_RDONLY)
        do {
            let header = try SnapshotFile.readHeader(fd, path: path)
            try SnapshotFile.checkVersion(header, path: path)
            return SnapshotReader(fd: fd, path: path, header: header)
        } catch {
            SystemFile.close(fd)
            throw error
        }
    }

    private init(fd: Int32, path: String, header: SnapshotFile.Header) {
        self.fd = fd
        self.path = path
        self.header = header
        index = header.index
        term = header.term
        dataSize = header.dataLength
        checksum = CRC32C.checksum(header.bytes)
    }

    deinit {
        SystemFile.close(fd)
    }

    /// Whether every data byte was handed out (and the checksum verified).
    public var isAtEnd: Bool { offset == dataSize }

    /// The next up to `count` data bytes (empty at the end). Throws `corruptSnapshot` if the file
    /// shrank or, on reaching the end, fails its checksum; `io` for read errors.
    public func read(upTo count: Int) throws -> [UInt8] {
        precondition(count > 0, "count must be positive")
        let wanted = min(count, dataSize - offset)
        guard wanted > 0 else { return [] }
        let bytes = try SystemFile.readAll(fd, size: wanted, at: SnapshotFile.headerSize + offset, path: path)
        guard bytes.count == wanted else {
            throw StorageError.corruptSnapshot(path: path, reason: "file shrank while being read")
        }
        checksum = bytes.withUnsafeBytes { CRC32C.checksum($0, continuing: checksum) }
        if offset + wanted == dataSize {
            try SnapshotFile.verifyChecksum(fd, header: header, computed: checksum, path: path)
        }
        offset += wanted
        return bytes
    }
}

import Glibc

/// The identity of a data dir: which cluster and node its log belongs to, and a random id of
/// this very directory, drawn when it was created.
///
/// Stored in `<data dir>/metadata`, little-endian. Version 2, 40 bytes:
///
///     0  8 bytes  magic "kvraftmd"
///     8  u32      format version (2)
///    12  u64      cluster id
///    20  u64      node id
///    28  u64      data-dir id (random, non-zero)
///    36  u32      CRC32C of bytes 0..<36
///
/// Version 1 (32 bytes: the same without the data-dir id, CRC at 28) is read as data-dir id 0;
/// `DurableLog.open` then gives the directory an id and rewrites the file as version 2.
///
/// The data-dir id tells peers apart from a wiped or replaced copy of themselves: a node whose
/// directory is recreated empty comes back under the same node id but a new data-dir id, and
/// has forgotten its votes (see `PeerIdentities`).
///
/// Written atomically (temp file, fsync, rename, directory fsync), so it is either absent or whole.
struct DataDirMetadata: Equatable {
    static let fileName = "metadata"
    static let temporaryFileName = "metadata.tmp"
    static let magic: [UInt8] = Array("kvraftmd".utf8)
    static let version: UInt32 = 2
    static let encodedSize = 40
    static let version1Size = 32

    var clusterID: UInt64
    var nodeID: UInt64
    /// 0 only when read from a version 1 file.
    var dataDirID: UInt64

    /// A fresh data-dir id: random, never 0 (which means "unknown" on the wire).
    static func newDataDirID() -> UInt64 {
        UInt64.random(in: 1...UInt64.max)
    }

    func encoded() -> [UInt8] {
        var bytes = Self.magic
        bytes.reserveCapacity(Self.encodedSize)
        bytes.appendLittleEndian(Self.version)
        bytes.appendLittleEndian(clusterID)
        bytes.appendLittleEndian(nodeID)
        bytes.appendLittleEndian(dataDirID)
        bytes.appendLittleEndian(CRC32C.checksum(bytes))
        return bytes
    }

    /// Parses the file's bytes (version 1 or 2); `path` only names the file in errors.
    static func decode(_ bytes: [UInt8], path: String) throws -> DataDirMetadata {
        guard bytes.count == encodedSize || bytes.count == version1Size else {
            throw StorageError.corruptMetadata(path: path, reason: "\(bytes.count) bytes, expected \(encodedSize)")
        }
        guard Array(bytes[0..<8]) == magic else {
            throw StorageError.corruptMetadata(path: path, reason: "not a kvraft metadata file")
        }
        return try bytes.withUnsafeBytes { raw in
            let checksumOffset = bytes.count - 4
            let stored = raw.loadLittleEndian(at: checksumOffset, as: UInt32.self)
            let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<checksumOffset]))
            guard stored == computed else {
                throw StorageError.corruptMetadata(path: path, reason: "checksum mismatch")
            }
            let version = raw.loadLittleEndian(at: 8, as: UInt32.self)
            let expectedVersion: UInt32 = bytes.count == encodedSize ? 2 : 1
            guard version == expectedVersion else {
                throw StorageError.corruptMetadata(path: path, reason: "format version \(version) in \(bytes.count) bytes; this build reads versions 1 and 2")
            }
            return DataDirMetadata(
                clusterID: raw.loadLittleEndian(at: 12, as: UInt64.self),
                nodeID: raw.loadLittleEndian(at: 20, as: UInt64.self),
                dataDirID: version == 2 ? raw.loadLittleEndian(at: 28, as: UInt64.self) : 0)
        }
    }

    /// Reads the metadata of `directory`, or nil if it has none yet.
    static func read(directory: String) throws -> DataDirMetadata? {
        let path = "\(directory)/\(fileName)"
        guard SystemFile.exists(path) else { return nil }
        let fd = try SystemFile.open(path, flags: O_RDONLY)
        defer { SystemFile.close(fd) }
        let size = try SystemFile.size(fd, path: path)
        let bytes = try SystemFile.readAll(fd, size: min(size, 4096), path: path)
        return try decode(bytes, path: path)
    }

    /// Writes the metadata atomically: a crash leaves either no file or the whole file (the
    /// old one, when replacing).
    func write(directory: String) throws {
        try SystemFile.replaceAtomically(directory: directory, name: Self.fileName, temporaryName: Self.temporaryFileName,
                                         with: encoded())
    }
}

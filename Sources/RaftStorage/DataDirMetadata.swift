import Glibc

/// The identity of a data dir: which cluster and node its log belongs to.
///
/// Stored in `<data dir>/metadata`, 32 bytes, little-endian:
///
///     0  8 bytes  magic "kvraftmd"
///     8  u32      format version (1)
///    12  u64      cluster id
///    20  u64      node id
///    28  u32      CRC32C of bytes 0..<28
///
/// Written once, atomically (temp file, fsync, rename, directory fsync), so it is either absent or whole.
struct DataDirMetadata: Equatable {
    static let fileName = "metadata"
    static let temporaryFileName = "metadata.tmp"
    static let magic: [UInt8] = Array("kvraftmd".utf8)
    static let version: UInt32 = 1
    static let encodedSize = 32

    var clusterID: UInt64
    var nodeID: UInt64

    func encoded() -> [UInt8] {
        var bytes = Self.magic
        bytes.reserveCapacity(Self.encodedSize)
        bytes.appendLittleEndian(Self.version)
        bytes.appendLittleEndian(clusterID)
        bytes.appendLittleEndian(nodeID)
        bytes.appendLittleEndian(CRC32C.checksum(bytes))
        return bytes
    }

    /// Parses the file's bytes; `path` only names the file in errors.
    static func decode(_ bytes: [UInt8], path: String) throws -> DataDirMetadata {
        guard bytes.count == encodedSize else {
            throw StorageError.corruptMetadata(path: path, reason: "\(bytes.count) bytes, expected \(encodedSize)")
        }
        guard Array(bytes[0..<8]) == magic else {
            throw StorageError.corruptMetadata(path: path, reason: "not a kvraft metadata file")
        }
        return try bytes.withUnsafeBytes { raw in
            let stored = raw.loadLittleEndian(at: 28, as: UInt32.self)
            let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<28]))
            guard stored == computed else {
                throw StorageError.corruptMetadata(path: path, reason: "checksum mismatch")
            }
            let version = raw.loadLittleEndian(at: 8, as: UInt32.self)
            guard version == Self.version else {
                throw StorageError.corruptMetadata(path: path, reason: "format version \(version), this build reads \(Self.version)")
            }
            return DataDirMetadata(
                clusterID: raw.loadLittleEndian(at: 12, as: UInt64.self),
                nodeID: raw.loadLittleEndian(at: 20, as: UInt64.self))
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

    /// Writes the metadata atomically: a crash leaves either no file or the whole file.
    func write(directory: String) throws {
        let temporary = "\(directory)/\(Self.temporaryFileName)"
        let final = "\(directory)/\(Self.fileName)"
        let fd = try SystemFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
        do {
            try encoded().withUnsafeBytes { try SystemFile.writeAll(fd, $0, path: temporary) }
            try SystemFile.fullSync(fd, path: temporary)
        } catch {
            SystemFile.close(fd)
            throw error
        }
        SystemFile.close(fd)
        try SystemFile.rename(temporary, final)
        try SystemFile.syncDirectory(directory)
    }
}

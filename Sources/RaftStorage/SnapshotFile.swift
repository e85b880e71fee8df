import Glibc
import Raft

/// The latest durable snapshot of a data dir: `<data dir>/snapshot`. All integers little-endian:
///
///     0       8 bytes  magic "kvraftsn"
///     8       u32      format version (1)
///     12      u64      index (last log index the snapshot covers)
///     20      u64      term (of the entry at index)
///     28      u64      data length n
///     36      n bytes  data (the state machine's encoding, opaque here)
///     36 + n  u32      CRC32C of bytes 0..<36 + n
///
/// Replaced atomically (`snapshot.tmp`, write, fsync, rename, directory fsync), so a crash
/// leaves the old file or the new one, never a mix: a damaged file is refused, not repaired.
/// A `snapshot.tmp` found on open is what a crash left mid-write; it is removed.
enum SnapshotFile {
    static let fileName = "snapshot"
    static let temporaryFileName = "snapshot.tmp"
    static let magic: [UInt8] = Array("kvraftsn".utf8)
    static let version: UInt32 = 1
    static let headerSize = 36
    static let checksumSize = 4

    static func path(in directory: String) -> String { "\(directory)/\(fileName)" }

    static func exists(in directory: String) -> Bool { SystemFile.exists(path(in: directory)) }

    static func header(index: UInt64, term: UInt64, dataLength: Int) -> [UInt8] {
        var bytes = magic
        bytes.reserveCapacity(headerSize)
        bytes.appendLittleEndian(version)
        bytes.appendLittleEndian(index)
        bytes.appendLittleEndian(term)
        bytes.appendLittleEndian(UInt64(dataLength))
        return bytes
    }

    /// Makes `snapshot` the data dir's snapshot, durably and atomically. The data goes from the
    /// snapshot's own buffer to the file (header, data, checksum: three writes, no copy of the data).
    static func write(_ snapshot: Snapshot, directory: String) throws {
        let writer = SnapshotFileWriter(directory: directory, index: snapshot.index, term: snapshot.term,
                                        dataSize: snapshot.data.count, temporaryFileName: temporaryFileName)
        try writer.append(snapshot.data)
        try writer.commit()
    }

    /// What a snapshot file's header says, checked against the file's size.
    struct Header {
        let bytes: [UInt8]
        let version: UInt32
        let index: UInt64
        let term: UInt64
        let dataLength: Int
    }

    /// Reads and checks the header of the snapshot file open as `fd`: magic, and a data length
    /// that matches the file's size (checked before anything is allocated for the data, so a
    /// damaged length never asks for absurd memory). The version is the caller's to check.
    static func readHeader(_ fd: Int32, path: String) throws -> Header {
        let size = try SystemFile.size(fd, path: path)
        guard size >= headerSize + checksumSize else {
            throw StorageError.corruptSnapshot(
                path: path, reason: "\(size) bytes, shorter than the \(headerSize + checksumSize)-byte header and checksum")
        }
        let header = try SystemFile.readAll(fd, size: headerSize, path: path)
        guard header.count == headerSize else {
            throw StorageError.corruptSnapshot(path: path, reason: "file shrank while being read")
        }
        guard Array(header[0..<8]) == magic else {
            throw StorageError.corruptSnapshot(path: path, reason: "not a kvraft snapshot file")
        }
        let (version, index, term, dataLength) = header.withUnsafeBytes { raw in
            (raw.loadLittleEndian(at: 8, as: UInt32.self), raw.loadLittleEndian(at: 12, as: UInt64.self),
             raw.loadLittleEndian(at: 20, as: UInt64.self), raw.loadLittleEndian(at: 28, as: UInt64.self))
        }
        guard dataLength == UInt64(size - headerSize - checksumSize) else {
            let fileSays = dataLength > UInt64(Int.max - headerSize - checksumSize)
                ? "more than fits" : "\(headerSize + Int(dataLength) + checksumSize) bytes"
            throw StorageError.corruptSnapshot(
                path: path, reason: "the header describes \(fileSays) but the file is \(size) bytes (truncated or damaged)")
        }
        return Header(bytes: header, version: version, index: index, term: term, dataLength: Int(dataLength))
    }

    /// Throws unless `header` is of the format version this build reads.
    static func checkVersion(_ header: Header, path: String) throws {
        guard header.version == Self.version else {
            throw StorageError.corruptSnapshot(path: path, reason: "format version \(header.version), this build reads \(Self.version)")
        }
    }

    /// Reads the 4-byte checksum after `header`'s data and compares it with `computed` (the
    /// CRC32C of header and data).
    static func verifyChecksum(_ fd: Int32, header: Header, computed: UInt32, path: String) throws {
        let trailer = try SystemFile.readAll(fd, size: checksumSize, at: headerSize + header.dataLength, path: path)
        guard trailer.count == checksumSize else {
            throw StorageError.corruptSnapshot(path: path, reason: "file shrank while being read")
        }
        let stored = trailer.withUnsafeBytes { $0.loadLittleEndian(at: 0, as: UInt32.self) }
        guard stored == computed else {
            throw StorageError.corruptSnapshot(
                path: path, reason: "checksum mismatch: stored \(hex32(stored)), computed \(hex32(computed))")
        }
    }

    /// The data dir's snapshot, or nil if it has none. Throws `corruptSnapshot` if the file is
    /// truncated, has bytes past its checksum, fails the checksum, or is not a snapshot file.
    static func read(directory: String) throws -> Snapshot? {
        let path = path(in: directory)
        guard SystemFile.exists(path) else { return nil }
        let fd = try SystemFile.open(path, flags: O_RDONLY)
        defer { SystemFile.close(fd) }
        let header = try readHeader(fd, path: path)
        let data = try SystemFile.readAll(fd, size: header.dataLength, at: headerSize, path: path)
        guard data.count == header.dataLength else {
            throw StorageError.corruptSnapshot(path: path, reason: "file shrank while being read")
        }
        let computed = data.withUnsafeBytes { CRC32C.checksum($0, continuing: CRC32C.checksum(header.bytes)) }
        try verifyChecksum(fd, header: header, computed: computed, path: path)
        try checkVersion(header, path: path)
        return Snapshot(index: header.index, term: header.term, data: data)
    }

    /// Removes the `snapshot.tmp` or `snapshot.<name>.tmp` files a crash left behind (the previous
    /// snapshot file, if any, is intact). Returns whether there was one.
    static func removeStaleTemporary(directory: String) throws -> Bool {
        var removed = false
        for name in try SystemFile.listDirectory(directory)
        where name == temporaryFileName || SnapshotFileWriter.isTemporaryFile(name) {
            try SystemFile.remove("\(directory)/\(name)")
            removed = true
        }
        return removed
    }
}

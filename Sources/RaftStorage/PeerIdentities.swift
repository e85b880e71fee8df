import Glibc

/// The data-dir id each peer was first seen with, durable in `<data dir>/peers`.
///
/// Raft's safety rests on every node remembering its term, vote and log. A node whose data dir
/// was wiped (or swapped for another) comes back under its old node id having forgotten them:
/// it could vote twice in one term, or acknowledge entries it no longer holds. Every peer message
/// carries the sender's data-dir id (see `DataDirMetadata`); a raftd records the first one it sees
/// for each peer, durably before acting on that message, and from then on knows a peer that
/// shows up with a different id as a replaced one, whose votes and acknowledgements must not count.
///
/// File format, little-endian, rewritten whole and atomically on each new peer:
///
///     0  8 bytes  magic "kvraftpi"
///     8  u32      format version (1)
///    12  u32      record count n
///    16  n x (u64 peer node id, u64 data-dir id), ascending by node id
///     .  u32      CRC32C of everything before it
///
/// A new peer is recorded at most once, so the rewrite (and its fsyncs) happens once per peer.
public final class PeerIdentities {
    static let fileName = "peers"
    static let temporaryFileName = "peers.tmp"
    static let magic: [UInt8] = Array("kvraftpi".utf8)
    static let version: UInt32 = 1

    public let directory: String
    public private(set) var known: [UInt64: UInt64]

    private init(directory: String, known: [UInt64: UInt64]) {
        self.directory = directory
        self.known = known
    }

    /// Loads the record of `directory` (which must exist); none yet is an empty record.
    public static func open(directory: String) throws -> PeerIdentities {
        let path = "\(directory)/\(fileName)"
        guard SystemFile.exists(path) else { return PeerIdentities(directory: directory, known: [:]) }
        let fd = try SystemFile.open(path, flags: O_RDONLY)
        defer { SystemFile.close(fd) }
        let size = try SystemFile.size(fd, path: path)
        let bytes = try SystemFile.readAll(fd, size: min(size, 1 << 20), path: path)
        return PeerIdentities(directory: directory, known: try decode(bytes, path: path))
    }

    /// The data-dir id recorded for `peer`, nil if it was never seen.
    public func identity(of peer: UInt64) -> UInt64? {
        known[peer]
    }

    /// Records `dataDirID` as `peer`'s identity; durable when this returns. Does nothing when
    /// `peer` already has one recorded (the first sighting is the one that counts).
    public func record(_ dataDirID: UInt64, for peer: UInt64) throws {
        try record([peer: dataDirID])
    }

    /// Records every identity in `identities` (node id → data-dir id) whose node has none yet,
    /// with one durable write; the others are left as first recorded.
    public func record(_ identities: [UInt64: UInt64]) throws {
        var updated = known
        for (peer, dataDirID) in identities where updated[peer] == nil && dataDirID != 0 { updated[peer] = dataDirID }
        guard updated != known else { return }
        try SystemFile.replaceAtomically(directory: directory, name: Self.fileName, temporaryName: Self.temporaryFileName,
                                         with: Self.encode(updated))
        known = updated
    }

    /// Forgets the identities of `peers` (nodes removed from the cluster), durably, so the
    /// same id may come back later on a fresh data dir once re-added.
    public func forget(_ peers: [UInt64]) throws {
        var updated = known
        for peer in peers { updated[peer] = nil }
        guard updated != known else { return }
        try SystemFile.replaceAtomically(directory: directory, name: Self.fileName, temporaryName: Self.temporaryFileName,
                                         with: Self.encode(updated))
        known = updated
    }

    static func encode(_ known: [UInt64: UInt64]) -> [UInt8] {
        var bytes = magic
        bytes.appendLittleEndian(version)
        bytes.appendLittleEndian(UInt32(known.count))
        for peer in known.keys.sorted() {
            bytes.appendLittleEndian(peer)
            bytes.appendLittleEndian(known[peer]!)
        }
        bytes.appendLittleEndian(CRC32C.checksum(bytes))
        return bytes
    }

    static func decode(_ bytes: [UInt8], path: String) throws -> [UInt64: UInt64] {
        func corrupt(_ reason: String) -> StorageError {
            .corruptPeerIdentities(path: path, reason: reason)
        }
        guard bytes.count >= 20, Array(bytes[0..<8]) == magic else { throw corrupt("not a kvraft peer identity file") }
        return try bytes.withUnsafeBytes { raw in
            let version = raw.loadLittleEndian(at: 8, as: UInt32.self)
            guard version == Self.version else { throw corrupt("format version \(version), this build reads \(Self.version)") }
            let count = Int(raw.loadLittleEndian(at: 12, as: UInt32.self))
            guard bytes.count == 16 + 16 * count + 4 else { throw corrupt("\(bytes.count) bytes for \(count) records") }
            let checksumOffset = bytes.count - 4
            guard raw.loadLittleEndian(at: checksumOffset, as: UInt32.self)
                    == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<checksumOffset])) else {
                throw corrupt("checksum mismatch")
            }
            var known: [UInt64: UInt64] = [:]
            for record in 0..<count {
                let offset = 16 + 16 * record
                known[raw.loadLittleEndian(at: offset, as: UInt64.self)] = raw.loadLittleEndian(at: offset + 8, as: UInt64.self)
            }
            return known
        }
    }
}

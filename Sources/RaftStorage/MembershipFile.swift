import Glibc
import Raft

/// `<data dir>/membership`: the configuration entries of the durable log, and the configuration
/// of the durable snapshot, by log index, so a restart knows the configuration at its snapshot's
/// index (the snapshot file holds only the state machine's bytes).
///
/// Kept in step with the log by the shell: configuration entries are recorded when written,
/// records at or after a replaced suffix are dropped, an installed snapshot replaces them all.
/// It is written before the log entries it describes, so at startup the shell rebuilds the
/// records past the snapshot from the durable log (`logWritten(from:entries:)`).
/// The configuration at index `i` is the latest record at or before `i`. Format: magic
/// "kvmember", u32 version 1, u32 count, count × (u64 index, u32 length, bytes), CRC32C;
/// replaced atomically. A missing file means the seed configuration (`--peers`).
public final class MembershipFile {
    static let fileName = "membership"
    static let temporaryFileName = "membership.tmp"
    static let magic: [UInt8] = Array("kvmember".utf8)
    static let version: UInt32 = 1

    public let directory: String
    public private(set) var records: [(index: UInt64, configuration: Configuration)]

    private init(directory: String, records: [(index: UInt64, configuration: Configuration)]) {
        self.directory = directory
        self.records = records
    }

    public static func open(directory: String) throws -> MembershipFile {
        let path = "\(directory)/\(fileName)"
        guard SystemFile.exists(path) else { return MembershipFile(directory: directory, records: []) }
        let fd = try SystemFile.open(path, flags: O_RDONLY)
        defer { SystemFile.close(fd) }
        let size = try SystemFile.size(fd, path: path)
        let bytes = try SystemFile.readAll(fd, size: min(size, 16 << 20), path: path)
        guard let records = decode(bytes) else {
            throw StorageError.corruptSnapshot(path: path, reason: "membership file is damaged; restore it or start from a fresh data dir")
        }
        return MembershipFile(directory: directory, records: records)
    }

    /// The configuration in force at `index`, nil when no record reaches back that far.
    public func configuration(at index: UInt64) -> Configuration? {
        records.last { $0.index <= index }?.configuration
    }

    /// The log from `firstIndex` on was (re)written with `entries`: records there are replaced
    /// by the configuration entries among them. Durable when this returns; writes only on change.
    public func logWritten(from firstIndex: UInt64, entries: [Entry]) throws {
        var updated = records.filter { $0.index < firstIndex }
        for entry in entries where entry.kind == .config {
            if let configuration = Configuration(encoded: entry.data) { updated.append((entry.index, configuration)) }
        }
        try save(updated)
    }

    /// A snapshot replaced the log: its configuration is the only one.
    public func snapshotInstalled(index: UInt64, configuration: Configuration?) throws {
        guard let configuration else { return }
        try save([(index, configuration)])
    }

    /// The log up to `index` is compacted: only the latest record at or before it still matters.
    public func compacted(through index: UInt64) throws {
        let before = records.filter { $0.index <= index }
        guard before.count > 1 else { return }
        try save([before.last!] + records.filter { $0.index > index })
    }

    private func save(_ updated: [(index: UInt64, configuration: Configuration)]) throws {
        guard !Self.same(updated, records) else { return }
        try SystemFile.replaceAtomically(directory: directory, name: Self.fileName, temporaryName: Self.temporaryFileName,
                                         with: Self.encode(updated))
        records = updated
    }

    private static func same(_ a: [(index: UInt64, configuration: Configuration)], _ b: [(index: UInt64, configuration: Configuration)]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.index == $1.index && $0.configuration == $1.configuration }
    }

    static func encode(_ records: [(index: UInt64, configuration: Configuration)]) -> [UInt8] {
        var bytes = magic
        bytes.appendLittleEndian(version)
        bytes.appendLittleEndian(UInt32(records.count))
        for record in records {
            let encoded = record.configuration.encoded
            bytes.appendLittleEndian(record.index)
            bytes.appendLittleEndian(UInt32(encoded.count))
            bytes.append(contentsOf: encoded)
        }
        bytes.appendLittleEndian(CRC32C.checksum(bytes))
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> [(index: UInt64, configuration: Configuration)]? {
        guard bytes.count >= 20, Array(bytes[0..<8]) == magic else { return nil }
        let body = Array(bytes[..<(bytes.count - 4)])
        let stored = bytes.withUnsafeBytes { $0.loadLittleEndian(at: bytes.count - 4, as: UInt32.self) }
        guard CRC32C.checksum(body) == stored else { return nil }
        var position = 8
        func read(_ size: Int) -> UInt64? {
            guard body.count - position >= size else { return nil }
            var value: UInt64 = 0
            for shift in 0..<size { value |= UInt64(body[position + shift]) << (8 * UInt64(shift)) }
            position += size
            return value
        }
        guard read(4) == UInt64(version), let count = read(4) else { return nil }
        var records: [(index: UInt64, configuration: Configuration)] = []
        for _ in 0..<count {
            guard let index = read(8), let length = read(4), body.count - position >= Int(length),
                  let configuration = Configuration(encoded: Array(body[position..<position + Int(length)])) else { return nil }
            position += Int(length)
            records.append((index, configuration))
        }
        return position == body.count ? records : nil
    }
}

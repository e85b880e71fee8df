import Foundation
import Raft
import Testing
@testable import RaftStorage

/// The snapshot file on its own: format, atomic replacement, and refusal of damage.
@Suite struct SnapshotFileTests {
    private func snapshotPath(_ dir: TemporaryDirectory) -> String { dir.dataDir + "/snapshot" }

    @Test func noFileReadsAsNoSnapshot() throws {
        let dir = try makeDataDir()
        #expect(try SnapshotFile.read(directory: dir.dataDir) == nil)
    }

    @Test func roundTripAndReplace() throws {
        let dir = try makeDataDir()
        let first = Snapshot(index: 42, term: 7, data: Array("state at 42".utf8))
        try SnapshotFile.write(first, directory: dir.dataDir)
        #expect(try SnapshotFile.read(directory: dir.dataDir) == first)
        #expect(try fileSize(snapshotPath(dir)) == 36 + first.data.count + 4)

        // The documented layout, byte for byte.
        let bytes = try readFile(snapshotPath(dir))
        #expect(Array(bytes[0..<8]) == Array("kvraftsn".utf8))
        #expect(Array(bytes[8..<12]) == [1, 0, 0, 0])
        #expect(Array(bytes[12..<20]) == [42, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(bytes[20..<28]) == [7, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(bytes[28..<36]) == [UInt8(first.data.count), 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(bytes[36..<(36 + first.data.count)]) == first.data)
        let crc = CRC32C.checksum(bytes[0..<(36 + first.data.count)])
        #expect(Array(bytes[(36 + first.data.count)...]) == withUnsafeBytes(of: crc.littleEndian) { Array($0) })

        let second = Snapshot(index: 90, term: 8, data: [])
        try SnapshotFile.write(second, directory: dir.dataDir)
        #expect(try SnapshotFile.read(directory: dir.dataDir) == second)
        #expect(!FileManager.default.fileExists(atPath: dir.dataDir + "/snapshot.tmp"))
    }

    /// Hundreds of MB go through in one pass; this checks the bytes, not the speed.
    @Test func largeSnapshotRoundTrips() throws {
        let dir = try makeDataDir()
        var data = [UInt8](repeating: 0, count: 300 << 20)
        data.withUnsafeMutableBufferPointer { buffer in
            var seed: UInt32 = 0x9E37_79B9
            for offset in stride(from: 0, to: buffer.count, by: 4096) {
                seed = seed &* 1_664_525 &+ 1_013_904_223
                buffer[offset] = UInt8(truncatingIfNeeded: seed >> 24)
            }
            buffer[buffer.count - 1] = 0xAB
        }
        let snapshot = Snapshot(index: 1_000_000, term: 12, data: data)
        try SnapshotFile.write(snapshot, directory: dir.dataDir)
        #expect(try fileSize(snapshotPath(dir)) == 36 + data.count + 4)
        let read = try #require(try SnapshotFile.read(directory: dir.dataDir))
        #expect(read.index == 1_000_000)
        #expect(read.term == 12)
        #expect(read.data.count == data.count)
        #expect(read.data == data)
    }

    @Test func truncatedFileIsRefusedAtEveryLength() throws {
        let dir = try makeDataDir()
        let snapshot = Snapshot(index: 5, term: 2, data: Array(0..<100))
        try SnapshotFile.write(snapshot, directory: dir.dataDir)
        let pristine = try readFile(snapshotPath(dir))
        for length in 0..<pristine.count {
            try writeFile(snapshotPath(dir), Array(pristine[..<length]))
            let error = #expect(throws: StorageError.self, "cut at \(length)") { try SnapshotFile.read(directory: dir.dataDir) }
            guard case let .corruptSnapshot(path, reason) = error else {
                Issue.record("expected corruptSnapshot at length \(length), got \(String(describing: error))")
                continue
            }
            #expect(path == snapshotPath(dir))
            if length < 40 {
                #expect(reason == "\(length) bytes, shorter than the 40-byte header and checksum")
            } else {
                #expect(reason == "the header describes 140 bytes but the file is \(length) bytes (truncated or damaged)")
            }
        }
        // Bytes after the checksum are damage too.
        try writeFile(snapshotPath(dir), pristine + [0])
        #expect(throws: StorageError.corruptSnapshot(
            path: snapshotPath(dir), reason: "the header describes 140 bytes but the file is 141 bytes (truncated or damaged)")) {
            try SnapshotFile.read(directory: dir.dataDir)
        }
    }

    @Test func flippedBitAnywhereIsRefused() throws {
        let dir = try makeDataDir()
        let snapshot = Snapshot(index: 5, term: 2, data: Array(0..<64))
        try SnapshotFile.write(snapshot, directory: dir.dataDir)
        let pristine = try readFile(snapshotPath(dir))
        // Skip the length field (28..<36): damage there reads as a size mismatch, checked above.
        for offset in Array(0..<28) + Array(36..<pristine.count) {
            var bytes = pristine
            bytes[offset] ^= 0x10
            try writeFile(snapshotPath(dir), bytes)
            let error = #expect(throws: StorageError.self, "flip at \(offset)") { try SnapshotFile.read(directory: dir.dataDir) }
            guard case let .corruptSnapshot(_, reason) = error else {
                Issue.record("expected corruptSnapshot at offset \(offset), got \(String(describing: error))")
                continue
            }
            if offset < 8 {
                #expect(reason == "not a kvraft snapshot file")
            } else {
                #expect(reason.hasPrefix("checksum mismatch"), "flip at \(offset): \(reason)")
            }
        }
        // A flipped length no longer matches the file's size.
        var bytes = pristine
        bytes[35] ^= 0x80
        try writeFile(snapshotPath(dir), bytes)
        let error = #expect(throws: StorageError.self) { try SnapshotFile.read(directory: dir.dataDir) }
        #expect(error.map { "\($0)" }?.contains("the header describes more than fits but the file is 104 bytes") == true)
    }

    @Test func errorSaysWhatToDo() {
        let error = StorageError.corruptSnapshot(path: "/var/kv/1/snapshot", reason: "checksum mismatch")
        #expect(error.description.hasPrefix("snapshot file /var/kv/1/snapshot is unreadable (checksum mismatch);"))
        #expect(error.description.contains("restore this node's data dir from a replica or start it with an empty --data-dir"))
    }

    /// A crash mid-write leaves `snapshot.tmp` beside the intact previous snapshot.
    @Test func staleTemporaryFileIsIgnoredAndRemoved() throws {
        let dir = try makeDataDir()
        let snapshot = Snapshot(index: 9, term: 3, data: [1, 2, 3])
        try SnapshotFile.write(snapshot, directory: dir.dataDir)
        try writeFile(dir.dataDir + "/snapshot.tmp", Array("kvraftsn half a snap".utf8))
        #expect(try SnapshotFile.read(directory: dir.dataDir) == snapshot)
        #expect(try SnapshotFile.removeStaleTemporary(directory: dir.dataDir))
        #expect(!FileManager.default.fileExists(atPath: dir.dataDir + "/snapshot.tmp"))
        #expect(try !SnapshotFile.removeStaleTemporary(directory: dir.dataDir))
        #expect(try SnapshotFile.read(directory: dir.dataDir) == snapshot)
    }
}

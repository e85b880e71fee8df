import Foundation
import Raft
import Testing
@testable import RaftStorage

/// Streaming the snapshot file from disk, and a log that keeps only a snapshot's index and term.
@Suite struct SnapshotReaderTests {
    private func readAll(_ reader: SnapshotReader, pieces: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while !reader.isAtEnd { bytes += try reader.read(upTo: pieces) }
        return bytes
    }

    @Test func readsTheDataInPiecesAndKeepsTheFileItOpened() throws {
        let dir = try makeDataDir()
        #expect(try SnapshotReader.open(directory: dir.dataDir) == nil)
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try SnapshotFile.write(Snapshot(index: 42, term: 7, data: data), directory: dir.dataDir)
        let reader = try #require(try SnapshotReader.open(directory: dir.dataDir))
        #expect(reader.index == 42 && reader.term == 7 && reader.dataSize == 10_000 && reader.offset == 0)

        // A newer snapshot replaces the file meanwhile: the open reader still reads the old one.
        let first = try reader.read(upTo: 3_000)
        try SnapshotFile.write(Snapshot(index: 90, term: 8, data: [1, 2, 3]), directory: dir.dataDir)
        let rest = try readAll(reader, pieces: 3_000)
        #expect(first + rest == data)
        #expect(reader.isAtEnd && reader.offset == 10_000)
        #expect(try reader.read(upTo: 10).isEmpty)

        let newer = try #require(try SnapshotReader.open(directory: dir.dataDir))
        #expect(newer.index == 90 && newer.term == 8)
        #expect(try readAll(newer, pieces: 1) == [1, 2, 3])

        try SnapshotFile.write(Snapshot(index: 91, term: 8, data: []), directory: dir.dataDir)
        let empty = try #require(try SnapshotReader.open(directory: dir.dataDir))
        #expect(empty.dataSize == 0 && empty.isAtEnd)
    }

    /// Damage in the data shows when the reader reaches the end: every piece before the last is
    /// handed out, the last one never.
    @Test func damagedDataFailsTheChecksumBeforeTheLastPiece() throws {
        let dir = try makeDataDir()
        let data = [UInt8](repeating: 0x5A, count: 4_000)
        try SnapshotFile.write(Snapshot(index: 5, term: 2, data: data), directory: dir.dataDir)
        let path = dir.dataDir + "/snapshot"
        var bytes = try readFile(path)
        bytes[36 + 100] ^= 0x01
        try writeFile(path, bytes)

        let reader = try #require(try SnapshotReader.open(directory: dir.dataDir))
        var handedOut = 0
        let error = #expect(throws: StorageError.self) {
            while !reader.isAtEnd { handedOut += try reader.read(upTo: 1_000).count }
        }
        #expect(handedOut == 3_000)
        #expect(!reader.isAtEnd)
        guard case let .corruptSnapshot(_, reason)? = error else {
            Issue.record("expected corruptSnapshot, got \(String(describing: error))")
            return
        }
        #expect(reason.hasPrefix("checksum mismatch"))
    }

    @Test func damagedHeadersAreRefusedAtOpen() throws {
        let dir = try makeDataDir()
        try SnapshotFile.write(Snapshot(index: 5, term: 2, data: Array(0..<64)), directory: dir.dataDir)
        let path = dir.dataDir + "/snapshot"
        let pristine = try readFile(path)
        for (offset, expected) in [(0, "not a kvraft snapshot file"), (8, "format version 17, this build reads 1"),
                                   (28, "the header describes 120 bytes but the file is 104 bytes (truncated or damaged)")] {
            var bytes = pristine
            bytes[offset] ^= 0x10
            try writeFile(path, bytes)
            #expect(throws: StorageError.corruptSnapshot(path: path, reason: expected)) {
                try SnapshotReader.open(directory: dir.dataDir)
            }
        }
    }

    /// A log opened with `keepsSnapshotData: false` holds a snapshot's index and term, never its
    /// bytes, whether it saved, installed or recovered the snapshot; the bytes are in the file.
    @Test func aLogThatKeepsNoSnapshotDataHoldsIndexAndTermOnly() throws {
        let dir = TemporaryDirectory()
        func open(keeping: Bool) throws -> DurableLog { try openLog(dir, segmentSize: 4096, keepsSnapshotData: keeping) }
        let saved = Snapshot(index: 30, term: 1, data: Array("state at 30".utf8))
        let installed = Snapshot(index: 80, term: 3, data: Array(repeating: 7, count: 5_000))
        do {
            let log = try open(keeping: false)
            #expect(!log.keepsSnapshotData && log.snapshot == nil && log.snapshotDataSize == 0)
            try log.save(hardState: HardState(term: 1, vote: 0, commit: 0))
            try log.append(makeEntries(1...40, term: 1))
            try log.saveSnapshot(saved)
            #expect(log.snapshot == Snapshot(index: 30, term: 1, data: []))
            #expect(log.snapshotDataSize == saved.data.count && log.firstIndex == 31)
            let reader = try #require(try SnapshotReader.open(directory: dir.dataDir))
            #expect(try readAll(reader, pieces: 4) == saved.data)

            try log.installSnapshot(installed)
            #expect(log.snapshot == Snapshot(index: 80, term: 3, data: []))
            #expect(log.snapshotDataSize == 5_000 && log.lastIndex == 80)
            log.close()
        }
        do {
            let reopened = try open(keeping: false)
            #expect(reopened.snapshot == Snapshot(index: 80, term: 3, data: []) && reopened.snapshotDataSize == 5_000)
            reopened.close()
        }
        let keeping = try open(keeping: true)
        #expect(keeping.snapshot == installed && keeping.snapshotDataSize == 5_000)
    }
}

import Foundation
import Raft
import Testing
@testable import RaftStorage

/// A snapshot file written as its data arrives: what ends up on disk, and what a failure leaves.
@Suite struct SnapshotFileWriterTests {
    private func incoming(_ dir: TemporaryDirectory) -> String { dir.dataDir + "/snapshot.incoming.tmp" }

    @Test func piecesBecomeTheSnapshotFileOnCommit() throws {
        let dir = try makeDataDir()
        let data = (0..<5_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let writer = SnapshotFileWriter(directory: dir.dataDir, index: 40, term: 3, dataSize: data.count)
        #expect(!FileManager.default.fileExists(atPath: incoming(dir)), "nothing is written before the first piece")
        for start in stride(from: 0, to: data.count, by: 1_024) {
            try writer.append(Array(data[start..<min(data.count, start + 1_024)]))
        }
        #expect(writer.written == 5_000)
        #expect(try SnapshotFile.read(directory: dir.dataDir) == nil, "not the snapshot before commit")
        try writer.commit()
        #expect(try SnapshotFile.read(directory: dir.dataDir) == Snapshot(index: 40, term: 3, data: data))
        #expect(!FileManager.default.fileExists(atPath: incoming(dir)))
        #expect(throws: StorageError.self) { try writer.append([1]) }

        // An empty snapshot is a header and a checksum.
        let empty = SnapshotFileWriter(directory: dir.dataDir, index: 41, term: 3, dataSize: 0)
        try empty.commit()
        #expect(try SnapshotFile.read(directory: dir.dataDir) == Snapshot(index: 41, term: 3, data: []))
    }

    @Test func incompleteOverrunOrAbandonedWritesLeaveTheOldSnapshot() throws {
        let dir = try makeDataDir()
        let old = Snapshot(index: 10, term: 1, data: Array("old state".utf8))
        try SnapshotFile.write(old, directory: dir.dataDir)

        let short = SnapshotFileWriter(directory: dir.dataDir, index: 20, term: 2, dataSize: 100)
        try short.append(Array(repeating: 1, count: 60))
        #expect(throws: StorageError.corruptSnapshot(path: incoming(dir), reason: "only 60 of 100 bytes of data were written")) {
            try short.commit()
        }
        short.abandon()
        #expect(!FileManager.default.fileExists(atPath: incoming(dir)))

        // The first error sticks: later pieces and the commit fail with it.
        let overrun = SnapshotFileWriter(directory: dir.dataDir, index: 20, term: 2, dataSize: 10)
        try overrun.append(Array(repeating: 1, count: 8))
        let expected = StorageError.corruptSnapshot(path: incoming(dir), reason: "12 bytes of data for a snapshot of 10")
        #expect(throws: expected) { try overrun.append(Array(repeating: 1, count: 4)) }
        #expect(throws: expected) { try overrun.append([1, 1]) }
        #expect(throws: expected) { try overrun.commit() }
        overrun.abandon()

        let abandoned = SnapshotFileWriter(directory: dir.dataDir, index: 20, term: 2, dataSize: 3)
        try abandoned.append([1, 2, 3])
        abandoned.abandon()
        #expect(throws: StorageError.self) { try abandoned.commit() }
        #expect(!FileManager.default.fileExists(atPath: incoming(dir)))
        #expect(try SnapshotFile.read(directory: dir.dataDir) == old)
    }

    /// The file a writer commits compacts a log that keeps no snapshot data; a crash's leftover
    /// incoming file is removed when the log is opened.
    @Test func aWrittenSnapshotCompactsTheLogAndLeftoversAreRemovedOnOpen() throws {
        let dir = TemporaryDirectory()
        func open() throws -> DurableLog { try openLog(dir, segmentSize: 4096, keepsSnapshotData: false) }
        let state = Array("state at 25".utf8)
        do {
            let log = try open()
            try log.save(hardState: HardState(term: 1, vote: 0, commit: 0))
            try log.append(makeEntries(1...40, term: 1))
            try log.sync()
            let writer = SnapshotFileWriter(directory: dir.dataDir, index: 25, term: 1, dataSize: state.count)
            try writer.append(state)
            try writer.commit()
            try log.saveSnapshot(writtenIndex: 25, term: 1, dataSize: state.count)
            #expect(log.snapshot == Snapshot(index: 25, term: 1, data: []) && log.snapshotDataSize == state.count)
            #expect(log.firstIndex == 26 && log.entries == makeEntries(26...40, term: 1))

            // A crash while the next snapshot was arriving.
            let unfinished = SnapshotFileWriter(directory: dir.dataDir, index: 35, term: 1, dataSize: 100)
            try unfinished.append(Array(repeating: 9, count: 50))
            log.close()
        }
        #expect(FileManager.default.fileExists(atPath: dir.dataDir + "/snapshot.incoming.tmp"))
        let reopened = try open()
        #expect(!FileManager.default.fileExists(atPath: dir.dataDir + "/snapshot.incoming.tmp"))
        #expect(reopened.snapshot == Snapshot(index: 25, term: 1, data: []) && reopened.snapshotDataSize == state.count)
        #expect(reopened.entries == makeEntries(26...40, term: 1))
        #expect(try SnapshotFile.read(directory: dir.dataDir)?.data == state)
    }

    /// A leader's snapshot that arrived into a file replaces the log from it; one not newer than
    /// the current snapshot is abandoned and changes nothing.
    @Test func aLeadersSnapshotIsInstalledFromItsFile() throws {
        let dir = TemporaryDirectory()
        func open() throws -> DurableLog { try openLog(dir, segmentSize: 4096, keepsSnapshotData: false) }
        let state = Array(repeating: UInt8(3), count: 3_000)
        do {
            let log = try open()
            try log.save(hardState: HardState(term: 2, vote: 0, commit: 0))
            try log.append(makeEntries(1...10, term: 1))
            let file = SnapshotFileWriter(directory: dir.dataDir, index: 50, term: 2, dataSize: state.count, name: "link-1")
            try file.append(Array(state[..<1_000]))
            try file.append(Array(state[1_000...]))
            try log.installSnapshot(from: file)
            #expect(log.snapshot == Snapshot(index: 50, term: 2, data: []) && log.snapshotDataSize == 3_000)
            #expect(log.entries.isEmpty && log.lastIndex == 50)
            try log.append(makeEntries(51...52, term: 2))
            try log.sync()

            // An older one: abandoned, its file removed, nothing else changes.
            let stale = SnapshotFileWriter(directory: dir.dataDir, index: 40, term: 1, dataSize: 2, name: "link-2")
            try stale.append([1, 2])
            #expect(FileManager.default.fileExists(atPath: dir.dataDir + "/snapshot.link-2.tmp"))
            try log.installSnapshot(from: stale)
            #expect(!FileManager.default.fileExists(atPath: dir.dataDir + "/snapshot.link-2.tmp"))
            #expect(log.snapshot?.index == 50 && log.lastIndex == 52)

            // A crash while another arrived leaves its file, removed on open.
            let unfinished = SnapshotFileWriter(directory: dir.dataDir, index: 90, term: 3, dataSize: 10, name: "link-3")
            try unfinished.append([1])
            log.close()
        }
        let reopened = try open()
        #expect(try SystemFile.listDirectory(dir.dataDir).filter { $0.hasSuffix(".tmp") }.isEmpty)
        #expect(reopened.snapshot == Snapshot(index: 50, term: 2, data: []) && reopened.snapshotDataSize == 3_000)
        #expect(reopened.entries == makeEntries(51...52, term: 2))
        #expect(try SnapshotFile.read(directory: dir.dataDir)?.data == state)
    }
}

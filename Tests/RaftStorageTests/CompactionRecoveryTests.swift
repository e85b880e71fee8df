import Foundation
import Raft
import Testing
@testable import RaftStorage

/// Crashes in the middle of compaction, and data dirs whose snapshot and segments do not fit.
@Suite struct CompactionRecoveryTests {
    private func snapshotPath(_ dir: TemporaryDirectory) -> String { dir.dataDir + "/snapshot" }

    private func inconsistency(_ dir: TemporaryDirectory, _ reason: String) -> StorageError {
        .inconsistentDataDir(directory: dir.dataDir, reason: reason)
    }

    // MARK: installSnapshot interrupted between the snapshot file and the reset record

    /// The snapshot file is durable, the reset record is not, and the log holds another term at
    /// the snapshot's index: every entry goes, and recovery writes the reset record itself.
    @Test func snapshotWithoutResetRecordOverAConflictingLog() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...10, term: 1))
            try log.save(hardState: HardState(term: 2, vote: 1, commit: 6))
            log.close()
        }
        try SnapshotFile.write(Snapshot(index: 8, term: 2, data: [8]), directory: dir.dataDir)

        let capture = LogCapture()
        do {
            let log = try openLog(dir, capture: capture)
            #expect(log.snapshot == Snapshot(index: 8, term: 2, data: [8]))
            #expect(log.entries.isEmpty)
            #expect(log.lastIndex == 8)
            #expect(log.hardState == HardState(term: 2, vote: 1, commit: 6))
            #expect(log.recovery.snapshotIndex == 8)
            #expect(log.recovery.entries == 0)
            let warning = try #require(capture.messages(at: .warning).first)
            #expect(warning.message.contains("the log holds term 1 at index 8, not the snapshot's entry (index 8, term 2)"))
            #expect(warning.metadata["droppedEntries"] == "10")
            // The reset record now stands in a new segment; the old one is superseded and gone.
            log.waitForSegmentDeletions()
            #expect(try segmentNames(dir) == ["wal-0000000000000002.log"])
            // Appends after the snapshot replay on top of the reset.
            try log.append(makeEntries(9...12, term: 2))
            try log.sync()
            log.close()
        }
        let again = LogCapture()
        let reopened = try openLog(dir, capture: again)
        #expect(reopened.entries == makeEntries(9...12, term: 2))
        #expect(reopened.hardState == HardState(term: 2, vote: 1, commit: 6))
        #expect(again.messages(at: .warning).isEmpty)
    }

    @Test func snapshotWithoutResetRecordBeyondTheLog() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir, segmentSize: 256)
            try appendEach(log, makeEntries(1...10, term: 1))
            log.close()
        }
        #expect(try segmentNames(dir).count > 1)
        try SnapshotFile.write(Snapshot(index: 25, term: 3, data: []), directory: dir.dataDir)
        let capture = LogCapture()
        do {
            let log = try openLog(dir, segmentSize: 256, capture: capture)
            #expect(log.entries.isEmpty)
            #expect(log.lastIndex == 25)
            #expect(capture.messages(at: .warning).first?.message.contains("the log holds entries up to index 10") == true)
            log.waitForSegmentDeletions()
            #expect(try segmentNames(dir).count == 1)
            try log.append(makeEntries(26...27, term: 3))
            log.close()
        }
        let reopened = try openLog(dir, segmentSize: 256)
        #expect(reopened.entries == makeEntries(26...27, term: 3))
        #expect(reopened.snapshot?.index == 25)
    }

    /// The log holds the snapshot's entry: keep what follows it (etcd's rule); nothing to repair.
    @Test func snapshotWithoutResetRecordOverAMatchingLog() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...10, term: 1))
            log.close()
        }
        let segmentBefore = try readFile(segmentPaths(dir)[0])
        try SnapshotFile.write(Snapshot(index: 8, term: 1, data: []), directory: dir.dataDir)
        let capture = LogCapture()
        let log = try openLog(dir, capture: capture)
        #expect(log.entries == makeEntries(9...10, term: 1))
        #expect(log.firstIndex == 9)
        #expect(log.lastIndex == 10)
        #expect(capture.messages(at: .warning).isEmpty)
        #expect(try segmentNames(dir) == ["wal-0000000000000001.log"])
        #expect(try readFile(segmentPaths(dir)[0]) == segmentBefore, "nothing was written")
    }

    /// A crash while writing the reset record, after the snapshot file: the torn reset is cut off,
    /// and recovery does what the install did not.
    @Test func tornResetRecordWithOldSegmentsStillThere() throws {
        let dir = TemporaryDirectory()
        var oldSegments: [(String, [UInt8])] = []
        do {
            let log = try openLog(dir, segmentSize: 256)
            try appendEach(log, makeEntries(1...10, term: 1))
            oldSegments = try segmentPaths(dir).map { ($0, try readFile($0)) }
            try log.installSnapshot(Snapshot(index: 20, term: 2, data: [20]))
            log.close()
        }
        let resetSegment = try #require(try segmentPaths(dir).last)
        #expect(try segmentPaths(dir) == [resetSegment])
        for (path, bytes) in oldSegments { try writeFile(path, bytes) }  // as if never deleted
        truncateFile(resetSegment, to: try fileSize(resetSegment) - 3)  // the reset record is torn

        let capture = LogCapture()
        let log = try openLog(dir, segmentSize: 256, capture: capture)
        #expect(log.snapshot == Snapshot(index: 20, term: 2, data: [20]))
        #expect(log.entries.isEmpty)
        #expect(log.lastIndex == 20)
        #expect(log.recovery.truncatedBytes > 0)
        #expect(capture.messages(at: .warning).contains { $0.message.contains("a crash interrupted installing that snapshot") })
        log.waitForSegmentDeletions()
        let names = try segmentNames(dir)
        #expect(names.count == 1)
        #expect(!oldSegments.map { String($0.0.split(separator: "/").last!) }.contains(names[0]))
        try log.append(makeEntries(21...21, term: 2))
        log.close()
        #expect(try openLog(dir, segmentSize: 256).entries == makeEntries(21...21, term: 2))
    }

    // MARK: Deletion interrupted

    /// The reset record is durable but the superseded segments were not deleted yet.
    @Test func resetRecordDurableButOldSegmentsNotDeleted() throws {
        let dir = TemporaryDirectory()
        var oldSegments: [(String, [UInt8])] = []
        do {
            let log = try openLog(dir, segmentSize: 256)
            try appendEach(log, makeEntries(1...10, term: 1) + makeEntries(11...30, term: 2))
            oldSegments = try segmentPaths(dir).map { ($0, try readFile($0)) }
            try log.installSnapshot(Snapshot(index: 15, term: 3, data: [3]))
            try log.append(makeEntries(16...17, term: 3))
            log.close()
        }
        for (path, bytes) in oldSegments { try writeFile(path, bytes) }
        let capture = LogCapture()
        let log = try openLog(dir, segmentSize: 256, capture: capture)
        #expect(log.recovery.segments == oldSegments.count + 1)
        #expect(log.entries == makeEntries(16...17, term: 3), "the reset record supersedes the old entries")
        #expect(capture.messages(at: .warning).isEmpty)
        log.waitForSegmentDeletions()
        #expect(try segmentPaths(dir).count == 1, "recovery finished the deletion")
    }

    /// A crash after deleting the first of several covered segments: the rest are deleted on open.
    @Test func saveSnapshotDeletionInterrupted() throws {
        let dir = TemporaryDirectory()
        var deleted: [(String, [UInt8])] = []
        do {
            let log = try openLog(dir, segmentSize: 256)
            try appendEach(log, makeEntries(1...40, term: 1))
            let before = try segmentPaths(dir).map { ($0, try readFile($0)) }
            try log.saveSnapshot(Snapshot(index: 30, term: 1, data: []))
            log.waitForSegmentDeletions()
            let after = try segmentPaths(dir)
            deleted = before.filter { !after.contains($0.0) }
            log.close()
        }
        #expect(deleted.count >= 3)
        for (path, bytes) in deleted.dropFirst() { try writeFile(path, bytes) }
        let log = try openLog(dir, segmentSize: 256)
        #expect(log.recovery.segments > deleted.count - 1)
        #expect(log.entries == makeEntries(31...40, term: 1))
        log.waitForSegmentDeletions()
        for (path, _) in deleted { #expect(!FileManager.default.fileExists(atPath: path)) }
    }

    @Test func tornTailAfterAResetRecord() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...10, term: 1))
            try log.installSnapshot(Snapshot(index: 20, term: 2, data: []))
            try log.append(makeEntries(21...23, term: 2))
            try log.sync()
            try log.append(makeEntries(24...25, term: 2))
            try log.sync()
            log.close()
        }
        let path = try #require(try segmentPaths(dir).last)
        truncateFile(path, to: try fileSize(path) - 5)
        let log = try openLog(dir)
        #expect(log.snapshot?.index == 20)
        #expect(log.entries == makeEntries(21...23, term: 2))
        #expect(log.recovery.truncatedBytes > 0)
        try log.append(makeEntries(24...24, term: 3))
        try log.sync()
        log.close()
        let reopened = try openLog(dir)
        #expect(reopened.entries == makeEntries(21...23, term: 2) + makeEntries(24...24, term: 3))
        #expect(reopened.recovery.truncatedBytes == 0)
    }

    /// A crash right after a roll created the next segment, before its hard state record was
    /// durable: recovery gives the empty segment its hard state record, so compaction can later
    /// delete everything before it.
    @Test func emptySegmentLeftByACrashedRoll() throws {
        let dir = TemporaryDirectory()
        let hard = HardState(term: 5, vote: 1, commit: 20)
        let names: [String]
        do {
            let log = try openLog(dir, segmentSize: 256)
            try log.save(hardState: hard)
            try appendEach(log, makeEntries(1...20, term: 5))
            log.close()
            names = try segmentNames(dir)
        }
        let next = WALSegment.fileName(sequence: UInt64(names.count + 1))
        try writeFile(dir.dataDir + "/" + next, [])
        let log = try openLog(dir, segmentSize: 256)
        #expect(log.entries == makeEntries(1...20, term: 5))
        #expect(try replaySegment(dir, next).segments[0].startsWithHardState)
        try log.saveSnapshot(Snapshot(index: 20, term: 5, data: []))
        log.waitForSegmentDeletions()
        #expect(try segmentNames(dir) == [next])
        log.close()
        let reopened = try openLog(dir, segmentSize: 256)
        #expect(reopened.hardState == hard)
        #expect(reopened.lastIndex == 20)
    }

    // MARK: The snapshot file on open

    @Test func staleSnapshotTemporaryFileIsIgnoredAndRemovedOnOpen() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...5, term: 1))
            try log.saveSnapshot(Snapshot(index: 3, term: 1, data: [3]))
            log.close()
        }
        try writeFile(dir.dataDir + "/snapshot.tmp", Array("kvraftsn and then the crash".utf8))
        let capture = LogCapture()
        let log = try openLog(dir, capture: capture)
        #expect(log.snapshot == Snapshot(index: 3, term: 1, data: [3]))
        #expect(log.entries == makeEntries(4...5, term: 1))
        #expect(!FileManager.default.fileExists(atPath: dir.dataDir + "/snapshot.tmp"))
        #expect(capture.messages(at: .notice).contains { $0.message.hasPrefix("removed an unfinished snapshot file") })
    }

    @Test func corruptSnapshotFileStopsOpen() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...5, term: 1))
            try log.saveSnapshot(Snapshot(index: 3, term: 1, data: Array(repeating: 7, count: 100)))
            log.close()
        }
        var bytes = try readFile(snapshotPath(dir))
        bytes[60] ^= 0x01
        try writeFile(snapshotPath(dir), bytes)
        let error = #expect(throws: StorageError.self) { try openLog(dir) }
        guard case let .corruptSnapshot(path, reason) = error else {
            Issue.record("expected corruptSnapshot, got \(String(describing: error))")
            return
        }
        #expect(path == snapshotPath(dir))
        #expect(reason.hasPrefix("checksum mismatch"))

        truncateFile(snapshotPath(dir), to: 50)
        #expect(throws: StorageError.corruptSnapshot(
            path: snapshotPath(dir), reason: "the header describes 140 bytes but the file is 50 bytes (truncated or damaged)")) {
            try openLog(dir)
        }
    }

    // MARK: Snapshot and segments that do not fit

    @Test func gapBetweenSnapshotAndFirstSegmentIsRefused() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir, segmentSize: 256)
            try appendEach(log, makeEntries(1...60, term: 1))
            try log.saveSnapshot(Snapshot(index: 50, term: 1, data: []))
            log.close()
        }
        let first = try segmentNames(dir)[0]
        let firstEntry = try #require(try replaySegment(dir, first).base) + 1
        #expect(firstEntry > 12)
        #expect(firstEntry <= 51)
        // An older snapshot than the one the segments were deleted for.
        try SnapshotFile.write(Snapshot(index: 10, term: 1, data: []), directory: dir.dataDir)
        let error = #expect(throws: StorageError.self) { try openLog(dir, segmentSize: 256) }
        #expect(error == inconsistency(
            dir, "the snapshot file reaches index 10 but the WAL starts at index \(firstEntry), so entries 11…\(firstEntry - 1) are missing"))
        #expect(error?.description.contains("restore this node's data dir from a replica or start it with an empty --data-dir") == true)
    }

    @Test func segmentsDeletedWithoutASnapshotAreRefused() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir, segmentSize: 256)
            try appendEach(log, makeEntries(1...30, term: 1))
            log.close()
        }
        try FileManager.default.removeItem(atPath: try segmentPaths(dir)[0])
        #expect(throws: inconsistency(
            dir, "the WAL segments before wal-0000000000000002.log were deleted but there is no snapshot file covering them")) {
            try openLog(dir, segmentSize: 256)
        }
    }

    @Test func snapshotFileRemovedAfterCompactionIsRefused() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir, segmentSize: 256)
            try appendEach(log, makeEntries(1...30, term: 1))
            try log.saveSnapshot(Snapshot(index: 25, term: 1, data: []))
            log.close()
        }
        let first = try segmentNames(dir)[0]
        #expect(first != "wal-0000000000000001.log")
        try FileManager.default.removeItem(atPath: snapshotPath(dir))
        #expect(throws: inconsistency(dir, "the WAL segments before \(first) were deleted but there is no snapshot file covering them")) {
            try openLog(dir, segmentSize: 256)
        }
    }

    @Test func snapshotWithoutAnySegmentIsRefused() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...5, term: 1))
            try log.saveSnapshot(Snapshot(index: 5, term: 1, data: []))
            log.close()
        }
        for path in try segmentPaths(dir) { try FileManager.default.removeItem(atPath: path) }
        #expect(throws: inconsistency(dir, "it holds a snapshot (index 5) but no WAL segments, so the term and vote are lost")) {
            try openLog(dir)
        }
    }

    @Test func resetRecordWithoutASnapshotFileIsRefused() throws {
        let dir = TemporaryDirectory()
        try openLog(dir).close()
        var bytes: [UInt8] = []
        WALRecord.appendHardState(HardState(term: 2, vote: 1, commit: 0), to: &bytes)
        WALRecord.appendReset(index: 40, term: 2, to: &bytes)
        try writeFile(try segmentPaths(dir)[0], bytes)
        #expect(throws: inconsistency(dir, "the WAL restarts after index 40 (an installed snapshot) but there is no snapshot file")) {
            try openLog(dir)
        }
    }

    @Test func resetRecordBeyondTheSnapshotIsRefused() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.installSnapshot(Snapshot(index: 40, term: 2, data: []))
            log.close()
        }
        try SnapshotFile.write(Snapshot(index: 30, term: 2, data: []), directory: dir.dataDir)
        #expect(throws: inconsistency(
            dir, "the WAL restarts after index 40 (an installed snapshot) but the snapshot file only reaches index 30")) {
            try openLog(dir)
        }
    }

    @Test func firstRemainingSegmentWithoutHardStateIsRefused() throws {
        let dir = TemporaryDirectory()
        try openLog(dir).close()
        try FileManager.default.removeItem(atPath: try segmentPaths(dir)[0])
        var bytes: [UInt8] = []
        WALRecord.appendEntries(makeEntries(11...12, term: 1), to: &bytes)
        try writeFile(dir.dataDir + "/wal-0000000000000002.log", bytes)
        try SnapshotFile.write(Snapshot(index: 10, term: 1, data: []), directory: dir.dataDir)
        #expect(throws: inconsistency(
            dir,
            "the segments before wal-0000000000000002.log were deleted but it does not start with a hard state record, so the term and vote are lost")) {
            try openLog(dir)
        }
    }
}

import Foundation
import Raft
import Testing
@testable import RaftStorage

@Suite struct DurableLogTests {
    @Test func emptyDataDirOpensEmpty() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir)
        #expect(log.entries.isEmpty)
        #expect(log.lastIndex == 0)
        #expect(log.hardState == HardState())
        log.close()
        #expect(try segmentPaths(dir).map { $0.split(separator: "/").last! } == ["wal-0000000000000001.log"])
    }

    @Test func roundTrip() throws {
        let dir = TemporaryDirectory()
        let written = makeEntries(1...3, term: 1) + [Entry(term: 2, index: 4, kind: .noop)] + makeEntries(5...20, term: 2)
        do {
            let log = try openLog(dir)
            try log.append(Array(written[0..<4]))
            try log.sync()
            try log.append(Array(written[4...]))
            try log.sync()
            #expect(log.entries == written)
            #expect(log.lastIndex == 20)
            log.close()
        }
        let reopened = try openLog(dir)
        #expect(reopened.entries == written)
        #expect(reopened.lastIndex == 20)
        #expect(reopened.recovery.truncatedBytes == 0)
        #expect(reopened.recovery.entries == 20)
    }

    @Test func overwritingASuffixSurvivesReopen() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...4, term: 1))
            try log.append(makeEntries(5...10, term: 2))
            try log.sync()
            try log.append(makeEntries(7...8, term: 3))
            try log.sync()
            let expected = makeEntries(1...4, term: 1) + makeEntries(5...6, term: 2) + makeEntries(7...8, term: 3)
            #expect(log.entries == expected)
            #expect(log.lastIndex == 8)
            log.close()
        }
        let reopened = try openLog(dir)
        #expect(reopened.entries == makeEntries(1...4, term: 1) + makeEntries(5...6, term: 2) + makeEntries(7...8, term: 3))
        // And appending after the overwrite continues from 9.
        try reopened.append(makeEntries(9...9, term: 3))
        try reopened.sync()
        reopened.close()
        #expect(try openLog(dir).lastIndex == 9)
    }

    @Test func overwritingFromIndexOneEmptiesTheOldLog() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...5, term: 1))
            try log.append(makeEntries(1...2, term: 2))
            try log.sync()
            log.close()
        }
        #expect(try openLog(dir).entries == makeEntries(1...2, term: 2))
    }

    @Test func hardStatePersists() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.save(hardState: HardState(term: 1, vote: 3, commit: 0))
            try log.append(makeEntries(1...3, term: 1))
            try log.save(hardState: HardState(term: 2, vote: 2, commit: 3))
            try log.sync()
            #expect(log.hardState == HardState(term: 2, vote: 2, commit: 3))
            log.close()
        }
        let reopened = try openLog(dir)
        #expect(reopened.hardState == HardState(term: 2, vote: 2, commit: 3))
        #expect(reopened.entries == makeEntries(1...3, term: 1))
    }

    @Test func rolloverAcrossManySegments() throws {
        let dir = TemporaryDirectory()
        var expected: [Entry] = []
        do {
            let log = try openLog(dir, segmentSize: 512)
            for batch in 0..<60 {
                let first = UInt64(batch * 5 + 1)
                let entries = makeEntries(first...(first + 4), term: UInt64(batch / 10 + 1))
                try log.append(entries)
                try log.save(hardState: HardState(term: UInt64(batch / 10 + 1), vote: 1, commit: first / 2))
                try log.sync()
                expected += entries
            }
            // An overwrite that reaches back into an earlier segment.
            try log.append(makeEntries(250...252, term: 9))
            try log.sync()
            expected = Array(expected[0..<249]) + makeEntries(250...252, term: 9)
            log.close()
        }
        let segments = try segmentPaths(dir)
        #expect(segments.count > 10)
        for (position, path) in segments.enumerated() {
            #expect(path.hasSuffix(WALSegment.fileName(sequence: UInt64(position + 1))))
        }
        let reopened = try openLog(dir, segmentSize: 512)
        #expect(reopened.recovery.segments == segments.count)
        #expect(reopened.entries == expected)
        #expect(reopened.hardState == HardState(term: 6, vote: 1, commit: 148))
        try reopened.append(makeEntries(253...260, term: 9))
        try reopened.sync()
        reopened.close()
        #expect(try openLog(dir, segmentSize: 512).entries == expected + makeEntries(253...260, term: 9))
    }

    @Test func syncWritesOnceAndOnlyWhenSomethingChanged() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir)
        let path = try segmentPaths(dir)[0]
        try log.append(makeEntries(1...3, term: 1))
        try log.save(hardState: HardState(term: 1, vote: 2, commit: 0))
        #expect(try fileSize(path) == 0, "append and save only buffer")
        try log.sync()
        let size = try fileSize(path)
        #expect(size > 0)
        try log.save(hardState: HardState(term: 1, vote: 2, commit: 0))
        try log.sync()
        #expect(try fileSize(path) == size, "saving an unchanged hard state writes nothing")
    }

    @Test func wrongClusterIsRefused() throws {
        let dir = TemporaryDirectory()
        try openLog(dir).close()
        let error = #expect(throws: StorageError.self) {
            _ = try DurableLog.open(directory: dir.dataDir, clusterID: 0x91c2, nodeID: testNode, logger: LogCapture().logger)
        }
        #expect(error?.description ==
            "data dir \(dir.dataDir) holds cluster 7f3a0000000000a1 node 2, but this raftd is cluster 00000000000091c2 node 2; start with the right --data-dir or an empty one")
    }

    @Test func wrongNodeIsRefused() throws {
        let dir = TemporaryDirectory()
        try openLog(dir).close()
        let error = #expect(throws: StorageError.self) {
            _ = try DurableLog.open(directory: dir.dataDir, clusterID: testCluster, nodeID: 3, logger: LogCapture().logger)
        }
        #expect(error == .identityMismatch(
            directory: dir.dataDir, foundCluster: testCluster, foundNode: 2, expectedCluster: testCluster, expectedNode: 3))
        #expect(error?.description.contains("holds cluster 7f3a0000000000a1 node 2, but this raftd is cluster 7f3a0000000000a1 node 3") == true)
    }

    @Test func segmentsWithoutMetadataAreRefused() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...1, term: 1))
            log.close()
        }
        try FileManager.default.removeItem(atPath: dir.dataDir + "/metadata")
        #expect(throws: StorageError.missingMetadata(directory: dir.dataDir)) { try openLog(dir) }
    }

    @Test func corruptMetadataIsRefused() throws {
        let dir = TemporaryDirectory()
        try openLog(dir).close()
        var bytes = try readFile(dir.dataDir + "/metadata")
        bytes[14] ^= 0x01
        try writeFile(dir.dataDir + "/metadata", bytes)
        let error = #expect(throws: StorageError.self) { try openLog(dir) }
        #expect(error == .corruptMetadata(path: dir.dataDir + "/metadata", reason: "checksum mismatch"))
    }

    @Test func secondOpenOfSameDataDirIsRefused() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir)
        #expect(throws: StorageError.locked(directory: dir.dataDir)) { try openLog(dir) }
        log.close()
        try openLog(dir).close()
    }

    @Test func invalidAppendsAreRejectedWithoutChangingTheLog() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir)
        try log.append(makeEntries(1...5, term: 1))
        try log.save(hardState: HardState(term: 1, vote: 2, commit: 3))
        #expect(throws: StorageError.appendGap(lastIndex: 5, firstIndex: 7)) { try log.append(makeEntries(7...8, term: 1)) }
        #expect(throws: StorageError.appendGap(lastIndex: 5, firstIndex: 0)) { try log.append([Entry(term: 1, index: 0)]) }
        #expect(throws: StorageError.nonContiguousEntries(previousIndex: 6, nextIndex: 8)) {
            try log.append([Entry(term: 1, index: 6), Entry(term: 1, index: 8)])
        }
        #expect(throws: StorageError.overwritesCommitted(commit: 3, firstIndex: 3)) { try log.append(makeEntries(3...6, term: 2)) }
        // Re-appending identical committed entries is harmless and allowed.
        try log.append(makeEntries(2...6, term: 1))
        #expect(log.entries == makeEntries(1...6, term: 1))
        try log.sync()
        log.close()
        #expect(try openLog(dir).entries == makeEntries(1...6, term: 1))
    }

    @Test func closedLogRefusesWrites() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir)
        log.close()
        log.close()
        #expect(throws: StorageError.closed) { try log.append(makeEntries(1...1, term: 1)) }
        #expect(throws: StorageError.closed) { try log.sync() }
    }

    @Test func closeSyncsPendingWrites() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...3, term: 1))
            log.close()
        }
        #expect(try openLog(dir).entries == makeEntries(1...3, term: 1))
    }

    @Test func largeEntriesSpanRecordsAndSurvive() throws {
        let dir = TemporaryDirectory()
        let big = (1...3).map { Entry(term: 1, index: UInt64($0), data: [UInt8](repeating: UInt8($0), count: 300_000)) }
        do {
            let log = try openLog(dir, segmentSize: 100_000)
            try log.append(big)
            try log.sync()
            try log.append([Entry(term: 1, index: 4, data: [1, 2, 3])])
            try log.sync()
            log.close()
        }
        #expect(try openLog(dir).entries == big + [Entry(term: 1, index: 4, data: [1, 2, 3])])
    }
}

import Foundation
import Raft
import Testing
@testable import RaftStorage

/// Crashes and damage: what recovery keeps, what it cuts off, and what it refuses.
@Suite struct RecoveryTests {
    /// Writes `batches` as separate synced appends and returns the segment's size after each one.
    private func writeBatches(_ dir: TemporaryDirectory, _ batches: [[Entry]]) throws -> [Int] {
        let log = try openLog(dir)
        defer { log.close() }
        let path = try segmentPaths(dir)[0]
        var sizes: [Int] = []
        for batch in batches {
            try log.append(batch)
            try log.sync()
            sizes.append(try fileSize(path))
        }
        return sizes
    }

    @Test func tornWriteAtEveryOffsetOfTheLastRecord() throws {
        let dir = TemporaryDirectory()
        let earlier = makeEntries(1...4, term: 1)
        let last = makeEntries(5...6, term: 2)
        let sizes = try writeBatches(dir, [Array(earlier[0..<2]), Array(earlier[2...]), last])
        let path = try segmentPaths(dir)[0]
        let pristine = try readFile(path)

        for length in sizes[1]..<sizes[2] {
            try writeFile(path, Array(pristine[..<length]))
            let capture = LogCapture()
            let log = try openLog(dir, capture: capture)
            #expect(log.entries == earlier, "cut at \(length)")
            let dropped = length - sizes[1]
            #expect(log.recovery.truncatedBytes == dropped)
            #expect(try fileSize(path) == sizes[1], "torn bytes are cut off the file")
            if dropped > 0 {
                let warning = capture.messages(at: .warning).first
                #expect(warning?.metadata["droppedBytes"] == "\(dropped)")
            }
            // Appendable again, and the result reopens cleanly.
            try log.append(makeEntries(5...5, term: 3))
            try log.sync()
            log.close()
            let reopened = try openLog(dir)
            #expect(reopened.entries == earlier + makeEntries(5...5, term: 3))
            #expect(reopened.recovery.truncatedBytes == 0)
            reopened.close()
        }
    }

    /// Zeros after the last record are preallocated space nothing was written to: the log
    /// ends there, nothing is truncated, and appends continue inside them.
    @Test func zeroFilledTailIsPreallocatedSpace() throws {
        let dir = TemporaryDirectory()
        let entries = makeEntries(1...3, term: 1)
        let sizes = try writeBatches(dir, [entries])
        let path = try segmentPaths(dir)[0]
        try writeFile(path, try readFile(path) + [UInt8](repeating: 0, count: 4096))
        let log = try openLog(dir)
        #expect(log.entries == entries)
        #expect(log.recovery.truncatedBytes == 0)
        #expect(try fileSize(path) == sizes[0] + 4096)
        try log.append(makeEntries(4...4, term: 1))
        try log.sync()
        log.close()
        let reopened = try openLog(dir)
        #expect(reopened.entries == makeEntries(1...4, term: 1))
        #expect(try fileSize(path) == sizes[0] + 4096)
        reopened.close()
    }

    @Test func flippedBitInTailRecordIsTruncatedAndLogged() throws {
        let dir = TemporaryDirectory()
        let sizes = try writeBatches(dir, [makeEntries(1...3, term: 1), makeEntries(4...5, term: 1)])
        let path = try segmentPaths(dir)[0]
        var bytes = try readFile(path)
        bytes[sizes[0] + 20] ^= 0x04
        try writeFile(path, bytes)

        let capture = LogCapture()
        let log = try openLog(dir, capture: capture)
        #expect(log.entries == makeEntries(1...3, term: 1))
        #expect(log.recovery.truncatedBytes == sizes[1] - sizes[0])
        let warnings = capture.messages(at: .warning)
        #expect(warnings.count == 1)
        #expect(warnings.first?.metadata["droppedBytes"] == "\(sizes[1] - sizes[0])")
        #expect(warnings.first?.metadata["reason"]?.description.contains("checksum mismatch") == true)
    }

    @Test func flippedBitInMiddleRecordIsRefused() throws {
        let dir = TemporaryDirectory()
        let sizes = try writeBatches(dir, [makeEntries(1...3, term: 1), makeEntries(4...5, term: 1), makeEntries(6...7, term: 1)])
        let path = try segmentPaths(dir)[0]
        var bytes = try readFile(path)
        bytes[sizes[0] + 20] ^= 0x04
        try writeFile(path, bytes)

        let error = #expect(throws: StorageError.self) { try openLog(dir) }
        guard case let .corruptRecord(errorPath, offset, reason) = error else {
            Issue.record("expected corruptRecord, got \(String(describing: error))")
            return
        }
        #expect(errorPath == path)
        #expect(offset == sizes[0])
        #expect(reason.contains("checksum mismatch"))
        #expect(reason.contains("a valid record follows at offset \(sizes[1])"))
        #expect(error!.description.contains("WAL \(path) is corrupt at offset \(sizes[0])"))
        #expect(try fileSize(path) == sizes[2], "a refused log is left untouched")
    }

    @Test func corruptLengthInMiddleRecordIsRefused() throws {
        let dir = TemporaryDirectory()
        let sizes = try writeBatches(dir, [makeEntries(1...3, term: 1), makeEntries(4...5, term: 1), makeEntries(6...7, term: 1)])
        let path = try segmentPaths(dir)[0]
        var bytes = try readFile(path)
        bytes[sizes[0] + 2] = 0x7F  // length now runs past the end of the file
        try writeFile(path, bytes)
        #expect(throws: StorageError.self) { try openLog(dir) }
    }

    @Test func damageInANonLastSegmentIsRefused() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir, segmentSize: 200)
            for index in UInt64(1)...30 {
                try log.append(makeEntries(index...index, term: 1))
                try log.sync()
            }
            log.close()
        }
        let segments = try segmentPaths(dir)
        #expect(segments.count >= 3)
        // Cut the end off the first segment: a torn tail there is corruption, later segments depend on it.
        truncateFile(segments[0], to: try fileSize(segments[0]) - 3)
        let error = #expect(throws: StorageError.self) { try openLog(dir, segmentSize: 200) }
        guard case let .corruptRecord(errorPath, _, reason) = error else {
            Issue.record("expected corruptRecord, got \(String(describing: error))")
            return
        }
        #expect(errorPath == segments[0])
        #expect(reason.contains("later segments follow"))
    }

    @Test func missingSegmentIsRefused() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir, segmentSize: 200)
            for index in UInt64(1)...30 {
                try log.append(makeEntries(index...index, term: 1))
                try log.sync()
            }
            log.close()
        }
        let segments = try segmentPaths(dir)
        try FileManager.default.removeItem(atPath: segments[1])
        #expect(throws: StorageError.missingSegment(directory: dir.dataDir, expectedName: "wal-0000000000000002.log")) {
            try openLog(dir, segmentSize: 200)
        }
    }

    /// Bytes written but never fdatasynced may vanish in a crash, wholly or partly. Whatever part of them
    /// survives, recovery must return everything synced plus a prefix of the unsynced appends — never garbage.
    @Test func crashBetweenWriteAndSyncLosesOnlyUnsyncedData() throws {
        let dir = TemporaryDirectory()
        let synced = makeEntries(1...4, term: 1)
        let path: String
        let syncedSize: Int
        let writtenSize: Int
        do {
            let log = try openLog(dir)
            path = try segmentPaths(dir)[0]
            try log.append(synced)
            try log.save(hardState: HardState(term: 1, vote: 2, commit: 4))
            try log.sync()
            syncedSize = try fileSize(path)
            try log.append(makeEntries(5...6, term: 1))
            try log.save(hardState: HardState(term: 1, vote: 2, commit: 6))
            try log.append(makeEntries(7...8, term: 2))
            try log.flush()  // written to the file, not synced
            writtenSize = try fileSize(path)
            // The process dies here: no sync, no close.
        }
        let pristine = try readFile(path)
        #expect(writtenSize > syncedSize)
        for length in syncedSize...writtenSize {
            try writeFile(path, Array(pristine[..<length]))
            let log = try openLog(dir)
            #expect(Array(log.entries.prefix(4)) == synced, "cut at \(length)")
            let unsyncedSurvivors = Array(log.entries.dropFirst(4))
            let possible = [[], makeEntries(5...6, term: 1), makeEntries(5...6, term: 1) + makeEntries(7...8, term: 2)]
            #expect(possible.contains(unsyncedSurvivors), "cut at \(length)")
            #expect(log.hardState.commit == 4 || log.hardState.commit == 6)
            log.close()
        }
    }

    @Test func droppingTheLogWithoutCloseLosesUnsyncedAppends() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...2, term: 1))
            try log.sync()
            try log.append(makeEntries(3...4, term: 1))
        }
        #expect(try openLog(dir).entries == makeEntries(1...2, term: 1))
    }
}

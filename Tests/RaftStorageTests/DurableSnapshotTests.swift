import Foundation
import Raft
import Testing
@testable import RaftStorage
import SeededRandom

/// `saveSnapshot` and `installSnapshot`: what the log holds afterwards, what is left on disk,
/// and what reopening finds.
@Suite struct SnapshotTests {
    @Test func saveSnapshotDropsCoveredEntriesDeletesCoveredSegmentsAndReopens() throws {
        let dir = TemporaryDirectory()
        let hard = HardState(term: 2, vote: 3, commit: 90)
        let snapshot = Snapshot(index: 60, term: 2, data: Array("state at 60".utf8))
        let remaining: [String]
        do {
            let log = try openLog(dir, segmentSize: 512)
            try log.save(hardState: HardState(term: 1, vote: 3, commit: 0))
            try appendEach(log, makeEntries(1...50, term: 1))
            try log.save(hardState: hard)
            try appendEach(log, makeEntries(51...100, term: 2))
            let before = try segmentNames(dir)
            #expect(before.count > 8)
            // Compaction at 60 may delete the oldest segments whose entries are all at or below 60.
            let lastIndexes = try before.map { try replaySegment(dir, $0).segments[0].lastIndex }
            let deletable = before.dropLast().indices.prefix { lastIndexes[$0] <= 60 }.count
            #expect(deletable >= 4)

            try log.saveSnapshot(snapshot)
            #expect(log.snapshot == snapshot)
            #expect(log.firstIndex == 61)
            #expect(log.lastIndex == 100)
            #expect(log.entries == makeEntries(61...100, term: 2))
            log.waitForSegmentDeletions()
            remaining = try segmentNames(dir)
            #expect(remaining == Array(before.dropFirst(deletable)))
            #expect(lastIndexes[deletable] > 60, "the first segment kept holds entries after the snapshot")
            #expect(try SnapshotFile.read(directory: dir.dataDir) == snapshot)
            log.close()
        }
        let reopened = try openLog(dir, segmentSize: 512)
        #expect(reopened.snapshot == snapshot)
        #expect(reopened.entries == makeEntries(61...100, term: 2))
        #expect(reopened.firstIndex == 61)
        #expect(reopened.lastIndex == 100)
        #expect(reopened.hardState == hard)
        #expect(reopened.recovery.snapshotIndex == 60)
        #expect(reopened.recovery.entries == 40)
        #expect(reopened.recovery.segments == remaining.count)
        // And the log goes on from there.
        try reopened.append(makeEntries(101...103, term: 3))
        try reopened.sync()
        reopened.close()
        #expect(try openLog(dir, segmentSize: 512).entries == makeEntries(61...100, term: 2) + makeEntries(101...103, term: 3))
    }

    @Test func droppedPrefixGivesItsMemoryBack() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir)
        try log.append(makeEntries(1...5000, term: 1))
        try log.sync()
        #expect(log.entries.capacity >= 5000)
        try log.saveSnapshot(Snapshot(index: 4990, term: 1, data: []))
        #expect(log.entries == makeEntries(4991...5000, term: 1))
        #expect(log.entries.capacity <= 20, "capacity \(log.entries.capacity) for 10 entries")
        log.close()
    }

    @Test func snapshotCoveringTheWholeLogLeavesItEmpty() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...7, term: 2))
            try log.saveSnapshot(Snapshot(index: 7, term: 2, data: [7]))
            #expect(log.entries.isEmpty)
            #expect(log.firstIndex == 8)
            #expect(log.lastIndex == 7)
            log.close()
        }
        let reopened = try openLog(dir)
        #expect(reopened.entries.isEmpty)
        #expect(reopened.lastIndex == 7)
        try reopened.append(makeEntries(8...8, term: 2))
        #expect(reopened.entries == makeEntries(8...8, term: 2))
    }

    @Test func olderSnapshotsAreIgnoredAndMismatchesRefused() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir)
        try log.append(makeEntries(1...20, term: 1))
        try log.sync()
        let saved = Snapshot(index: 10, term: 1, data: Array("a".utf8))
        try log.saveSnapshot(saved)
        let file = try readFile(dir.dataDir + "/snapshot")

        try log.saveSnapshot(Snapshot(index: 10, term: 1, data: Array("b".utf8)))
        try log.saveSnapshot(Snapshot(index: 4, term: 1, data: Array("c".utf8)))
        try log.installSnapshot(Snapshot(index: 9, term: 1, data: Array("d".utf8)))
        #expect(log.snapshot == saved)
        #expect(try readFile(dir.dataDir + "/snapshot") == file)

        #expect(throws: StorageError.snapshotBeyondLog(snapshotIndex: 21, lastIndex: 20)) {
            try log.saveSnapshot(Snapshot(index: 21, term: 1, data: []))
        }
        #expect(throws: StorageError.snapshotTermMismatch(index: 15, snapshotTerm: 2, logTerm: 1)) {
            try log.saveSnapshot(Snapshot(index: 15, term: 2, data: []))
        }
        #expect(log.snapshot == saved)
        #expect(log.entries == makeEntries(11...20, term: 1))
        #expect(try readFile(dir.dataDir + "/snapshot") == file)
        // Refusals are caller bugs, not I/O failures: the log stays usable.
        try log.append(makeEntries(21...21, term: 1))
        try log.sync()
        log.close()
        #expect(try openLog(dir).entries == makeEntries(11...21, term: 1))
    }

    /// The log must be durable through the snapshot before the snapshot replaces it.
    @Test func saveSnapshotSyncsWhatIsPending() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...10, term: 1))
            try log.sync()
            try log.append(makeEntries(11...20, term: 1))
            try log.saveSnapshot(Snapshot(index: 15, term: 1, data: [15]))
            try log.append(makeEntries(21...22, term: 1))
            // Crash: no sync, no close.
        }
        let reopened = try openLog(dir)
        #expect(reopened.snapshot == Snapshot(index: 15, term: 1, data: [15]))
        #expect(reopened.entries == makeEntries(16...20, term: 1))
    }

    @Test func appendAtOrBelowTheSnapshotIsRefused() throws {
        let dir = TemporaryDirectory()
        let log = try openLog(dir)
        try log.append(makeEntries(1...20, term: 1))
        try log.save(hardState: HardState(term: 1, vote: 1, commit: 12))
        try log.saveSnapshot(Snapshot(index: 10, term: 1, data: []))

        #expect(throws: StorageError.appendBelowSnapshot(snapshotIndex: 10, firstIndex: 10)) {
            try log.append(makeEntries(10...10, term: 1))
        }
        let error = #expect(throws: StorageError.self) { try log.append(makeEntries(5...12, term: 1)) }
        #expect(error == .appendBelowSnapshot(snapshotIndex: 10, firstIndex: 5))
        #expect(error?.description.hasPrefix(
            "append starts at index 5 but the log is compacted through the snapshot at index 10;") == true)
        #expect(throws: StorageError.appendGap(lastIndex: 20, firstIndex: 0)) { try log.append([Entry(term: 1, index: 0)]) }
        #expect(throws: StorageError.appendGap(lastIndex: 20, firstIndex: 22)) { try log.append(makeEntries(22...22, term: 1)) }
        #expect(throws: StorageError.overwritesCommitted(commit: 12, firstIndex: 12)) {
            try log.append(makeEntries(11...11, term: 1) + makeEntries(12...13, term: 2))
        }
        #expect(log.entries == makeEntries(11...20, term: 1))

        // Just after the snapshot, identical committed entries and then an uncommitted overwrite are fine.
        try log.append(makeEntries(11...12, term: 1) + makeEntries(13...14, term: 2))
        try log.sync()
        log.close()
        #expect(try openLog(dir).entries == makeEntries(11...12, term: 1) + makeEntries(13...14, term: 2))
    }

    /// Only the first record of each rolled segment carries the hard state once the segment that
    /// recorded it is gone.
    @Test func hardStateSurvivesDeletingEveryOldSegment() throws {
        let dir = TemporaryDirectory()
        let hard = HardState(term: 4, vote: 2, commit: 40)
        let kept: String
        do {
            let log = try openLog(dir, segmentSize: 256)
            try log.save(hardState: hard)
            try appendEach(log, makeEntries(1...40, term: 4))
            let before = try segmentNames(dir)
            #expect(before.count > 5)
            try log.saveSnapshot(Snapshot(index: 40, term: 4, data: [4, 0]))
            log.waitForSegmentDeletions()
            #expect(try segmentNames(dir) == [before.last!])
            kept = before.last!
            log.close()
        }
        let segment = try replaySegment(dir, kept)
        #expect(segment.segments[0].startsWithHardState)
        #expect(segment.hardState == hard)
        let reopened = try openLog(dir, segmentSize: 256)
        #expect(reopened.hardState == hard)
        #expect(reopened.lastIndex == 40)
        #expect(reopened.entries.isEmpty)
    }

    @Test func installSnapshotBeyondTheLogReplacesItAndAppendsContinue() throws {
        let dir = TemporaryDirectory()
        let hard = HardState(term: 3, vote: 1, commit: 8)
        let snapshot = Snapshot(index: 50, term: 3, data: Array("the leader's state at 50".utf8))
        do {
            let log = try openLog(dir, segmentSize: 512)
            try appendEach(log, makeEntries(1...30, term: 1))
            try log.save(hardState: hard)
            try log.sync()
            let before = try segmentNames(dir)
            #expect(before.count > 2)

            try log.installSnapshot(snapshot)
            #expect(log.snapshot == snapshot)
            #expect(log.entries.isEmpty)
            #expect(log.firstIndex == 51)
            #expect(log.lastIndex == 50)
            // The reset record starts a new segment; every older one is superseded and deleted.
            log.waitForSegmentDeletions()
            #expect(try segmentNames(dir) == [WALSegment.fileName(sequence: UInt64(before.count + 1))])

            #expect(throws: StorageError.appendGap(lastIndex: 50, firstIndex: 53)) { try log.append(makeEntries(53...53, term: 3)) }
            #expect(throws: StorageError.appendBelowSnapshot(snapshotIndex: 50, firstIndex: 50)) {
                try log.append(makeEntries(50...51, term: 3))
            }
            try log.append(makeEntries(51...55, term: 3))
            try log.sync()
            log.close()
        }
        let reopened = try openLog(dir, segmentSize: 512)
        #expect(reopened.snapshot == snapshot)
        #expect(reopened.entries == makeEntries(51...55, term: 3))
        #expect(reopened.hardState == hard)
        #expect(reopened.recovery.snapshotIndex == 50)
        #expect(reopened.recovery.entries == 5)
    }

    @Test func installSnapshotOverAConflictingEntryDropsTheWholeLog() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...10, term: 1) + makeEntries(11...20, term: 2))
            try log.save(hardState: HardState(term: 2, vote: 1, commit: 10))
            try log.sync()
            // The leader's log has term 3 at 15: the held entries 11…20 are not the leader's.
            try log.installSnapshot(Snapshot(index: 15, term: 3, data: [3]))
            #expect(log.entries.isEmpty)
            #expect(log.lastIndex == 15)
            try log.append(makeEntries(16...18, term: 3))
            try log.sync()
            log.close()
        }
        let reopened = try openLog(dir)
        #expect(reopened.snapshot == Snapshot(index: 15, term: 3, data: [3]))
        #expect(reopened.entries == makeEntries(16...18, term: 3))
        #expect(reopened.lastIndex == 18)
    }

    /// Even when the held entry at the snapshot's index matches, an installed snapshot replaces the log.
    @Test func installSnapshotInsideTheLogDropsTheEntriesAfterItToo() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir)
            try log.append(makeEntries(1...20, term: 1))
            try log.installSnapshot(Snapshot(index: 12, term: 1, data: []))
            #expect(log.entries.isEmpty)
            #expect(log.lastIndex == 12)
            log.close()
        }
        let reopened = try openLog(dir)
        #expect(reopened.entries.isEmpty)
        #expect(reopened.lastIndex == 12)
    }

    @Test func snapshotsWithPreallocatedSegments() throws {
        let dir = TemporaryDirectory()
        do {
            let log = try openLog(dir, segmentSize: 4096, preallocate: true)
            try appendEach(log, makeEntries(1...200, term: 1))
            try log.saveSnapshot(Snapshot(index: 150, term: 1, data: [1]))
            try log.installSnapshot(Snapshot(index: 300, term: 2, data: [2]))
            try log.append(makeEntries(301...310, term: 2))
            try log.sync()
            log.waitForSegmentDeletions()
            #expect(try segmentPaths(dir).count == 1)
            #expect(try fileSize(segmentPaths(dir)[0]) == 4096)
            log.close()
        }
        let reopened = try openLog(dir, segmentSize: 4096, preallocate: true)
        #expect(reopened.snapshot == Snapshot(index: 300, term: 2, data: [2]))
        #expect(reopened.entries == makeEntries(301...310, term: 2))
        #expect(reopened.recovery.truncatedBytes == 0)
    }

    /// A seeded mix of appends, overwrites, hard states, both kinds of snapshot, syncs, clean
    /// reopens and crashes (dropping the log unsynced), checked against a model after every step.
    @Test(arguments: [UInt64(1), 2, 3])
    func randomOperationsMatchAModel(seed: UInt64) throws {
        struct Model: Equatable {
            var snapshot: Snapshot?
            var entries: [Entry] = []
            var hardState = HardState()
            var firstIndex: UInt64 { (snapshot?.index ?? 0) + 1 }
            var lastIndex: UInt64 { firstIndex - 1 + UInt64(entries.count) }
        }
        func state(_ log: DurableLog) -> Model {
            Model(snapshot: log.snapshot, entries: log.entries, hardState: log.hardState)
        }

        var random = SeededGenerator(seed: seed)
        func pick(_ range: ClosedRange<UInt64>) -> UInt64 { UInt64.random(in: range, using: &random) }
        let dir = TemporaryDirectory()
        var log: DurableLog! = try openLog(dir, segmentSize: 300)
        var model = Model()
        var durable = Model()
        var term: UInt64 = 1
        var reopens = 0
        var snapshots = 0

        for step in 0..<300 {
            let context = "seed \(seed) step \(step)"
            var compacted = false
            switch pick(0...19) {
            case 0...8:
                let low = max(model.hardState.commit + 1, model.firstIndex)
                var from = model.lastIndex + 1
                if low <= model.lastIndex, pick(0...3) == 0 {
                    from = pick(low...model.lastIndex)
                    term += 1
                }
                let batch = (from...(from + pick(0...3))).map {
                    Entry(term: term, index: $0, data: [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: Int(pick(0...40))))
                }
                try log.append(batch)
                model.entries.removeSubrange(Int(from - model.firstIndex)...)
                model.entries += batch
            case 9...11:
                model.hardState.commit = pick(model.hardState.commit...model.lastIndex)
                model.hardState.term = term
                model.hardState.vote = pick(0...3)
                try log.save(hardState: model.hardState)
            case 12...13:
                guard model.hardState.commit >= model.firstIndex else { break }
                let index = pick(model.firstIndex...model.hardState.commit)
                let snapshot = Snapshot(index: index, term: model.entries[Int(index - model.firstIndex)].term,
                                        data: Array("applied through \(index)".utf8))
                try log.saveSnapshot(snapshot)
                model.entries.removeFirst(Int(index - model.firstIndex + 1))
                model.snapshot = snapshot
                durable = model
                compacted = true
                snapshots += 1
            case 14:
                term += 1
                let snapshot = Snapshot(index: pick(max(model.firstIndex, model.hardState.commit)...(model.lastIndex + 5)),
                                        term: term, data: Array("installed at \(term)".utf8))
                try log.installSnapshot(snapshot)
                model.snapshot = snapshot
                model.entries = []
                durable = model
                compacted = true
                snapshots += 1
                model.hardState.commit = snapshot.index
                try log.save(hardState: model.hardState)
            case 15...16:
                try log.sync()
                durable = model
            default:
                if pick(0...1) == 0 {
                    log.close()
                    durable = model
                } else {
                    log = nil  // a crash: what was not synced is lost
                    model = durable
                }
                log = try openLog(dir, segmentSize: 300)
                reopens += 1
                compacted = true
            }
            #expect(state(log) == model, "\(context)")
            #expect(log.firstIndex == model.firstIndex, "\(context)")
            #expect(log.lastIndex == model.lastIndex, "\(context)")
            log.waitForSegmentDeletions()
            let names = try segmentNames(dir)
            if compacted, model.snapshot != nil, names.count > 1 {
                // Compaction left nothing behind that it could have deleted.
                let first = try replaySegment(dir, names[0]).segments[0]
                let second = try replaySegment(dir, names[1]).segments[0]
                #expect(first.lastIndex > model.snapshot!.index || !second.startsWithHardState, "\(context): \(names[0]) is covered")
            }
        }
        #expect(snapshots > 10, "the mix takes snapshots")
        #expect(reopens > 5, "the mix reopens the log")
        log.close()
    }
}

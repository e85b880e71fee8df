import Raft
import Testing
@testable import RaftStorage

/// Replay and reconciliation on their own, record by record.
@Suite struct LogReplayTests {
    /// Applies every record `build` encodes to `replay` (as one segment named `sequence`);
    /// returns what `apply` said about each.
    private func feed(_ replay: inout LogReplay, segment sequence: UInt64, _ build: (inout [UInt8]) -> Void) -> [String?] {
        var bytes: [UInt8] = []
        build(&bytes)
        replay.begin(WALSegment(directory: "/nonexistent", sequence: sequence))
        var problems: [String?] = []
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                guard case let .record(kind, payload, next) = WALRecord.frame(raw, at: offset) else {
                    Issue.record("unframeable record at \(offset)")
                    return
                }
                problems.append(replay.apply(kind, UnsafeRawBufferPointer(rebasing: raw[payload])))
                offset = next
            }
        }
        return problems
    }

    /// After deleted segments, an entries record may rewrite entries that were in them: the log
    /// then restarts at that record (everything before it is covered by the snapshot).
    @Test func rewriteReachingIntoDeletedSegmentsLowersTheStart() throws {
        var replay = LogReplay(firstSequence: 3)
        let problems = feed(&replay, segment: 3) { bytes in
            WALRecord.appendHardState(HardState(term: 1, vote: 1, commit: 2), to: &bytes)
            WALRecord.appendEntries(makeEntries(28...30, term: 1), to: &bytes)
            WALRecord.appendEntries(makeEntries(3...40, term: 2), to: &bytes)
        }
        #expect(problems == [nil, nil, nil])
        #expect(replay.base == 2)
        #expect(replay.entries == makeEntries(3...40, term: 2))
        #expect(replay.segments[0].startsWithHardState)
        #expect(replay.segments[0].lastIndex == 40)

        #expect(try replay.reconcile(with: Snapshot(index: 35, term: 2, data: []), directory: "/d") == .trimmed(dropped: 33))
        #expect(replay.entries == makeEntries(36...40, term: 2))
        #expect(replay.base == 35)
    }

    /// From wal-1 or after a reset the start is known: a record at or before it is corruption.
    @Test func recordsBeforeAKnownStartAreMalformed() {
        var fromOne = LogReplay(firstSequence: 1)
        let fromOneProblems = feed(&fromOne, segment: 1) { bytes in
            WALRecord.appendEntries(makeEntries(1...3, term: 1), to: &bytes)
            WALRecord.appendEntries(makeEntries(6...6, term: 1), to: &bytes)
        }
        #expect(fromOneProblems == [nil, "entries record starts at index 6 but the log ends at 3"])

        var afterReset = LogReplay(firstSequence: 4)
        let afterResetProblems = feed(&afterReset, segment: 4) { bytes in
            WALRecord.appendHardState(HardState(term: 3, vote: 0, commit: 20), to: &bytes)
            WALRecord.appendReset(index: 20, term: 3, to: &bytes)
            WALRecord.appendEntries(makeEntries(21...22, term: 3), to: &bytes)
            WALRecord.appendEntries(makeEntries(18...19, term: 3), to: &bytes)
        }
        #expect(afterResetProblems == [nil, nil, nil, "entries record starts at index 18 but the log restarted after index 20"])
    }

    @Test func resetSupersedesEverythingBeforeIt() throws {
        var replay = LogReplay(firstSequence: 1)
        _ = feed(&replay, segment: 1) { WALRecord.appendEntries(makeEntries(1...10, term: 1), to: &$0) }
        _ = feed(&replay, segment: 2) { bytes in
            WALRecord.appendHardState(HardState(term: 1, vote: 0, commit: 0), to: &bytes)
            WALRecord.appendEntries(makeEntries(11...30, term: 1), to: &bytes)
        }
        _ = feed(&replay, segment: 3) { bytes in
            WALRecord.appendHardState(HardState(term: 2, vote: 0, commit: 0), to: &bytes)
            WALRecord.appendEntries(makeEntries(31...32, term: 1), to: &bytes)
            WALRecord.appendReset(index: 25, term: 2, to: &bytes)
            WALRecord.appendEntries(makeEntries(26...27, term: 2), to: &bytes)
        }
        #expect(replay.entries == makeEntries(26...27, term: 2))
        #expect(replay.segments.map(\.lastIndex) == [0, 0, 27])
        #expect(replay.segments.map(\.startsWithHardState) == [false, true, true])
        #expect(replay.hardState == HardState(term: 2, vote: 0, commit: 0))
        #expect(try replay.reconcile(with: Snapshot(index: 25, term: 2, data: []), directory: "/d") == .continues)
        #expect(replay.entries == makeEntries(26...27, term: 2))
    }

    @Test func reconcileFollowsEtcd() throws {
        func replayed() -> LogReplay {
            var replay = LogReplay(firstSequence: 1)
            _ = feed(&replay, segment: 1) { WALRecord.appendEntries(makeEntries(1...10, term: 1), to: &$0) }
            return replay
        }
        var noSnapshot = replayed()
        #expect(try noSnapshot.reconcile(with: nil, directory: "/d") == .continues)
        #expect(noSnapshot.entries.count == 10)

        var matching = replayed()
        #expect(try matching.reconcile(with: Snapshot(index: 10, term: 1, data: []), directory: "/d") == .trimmed(dropped: 10))
        #expect(matching.entries.isEmpty)
        #expect(matching.base == 10)

        var conflicting = replayed()
        #expect(try conflicting.reconcile(with: Snapshot(index: 4, term: 2, data: []), directory: "/d")
            == .discarded(dropped: 10, logLastIndex: 10, logTerm: 1))
        #expect(conflicting.entries.isEmpty)
        #expect(conflicting.base == 4)

        var short = replayed()
        #expect(try short.reconcile(with: Snapshot(index: 12, term: 1, data: []), directory: "/d")
            == .discarded(dropped: 10, logLastIndex: 10, logTerm: nil))
        #expect(short.base == 12)
    }

    @Test func segmentsWithOnlyHardStateAfterDeletionContinueTheSnapshot() throws {
        var replay = LogReplay(firstSequence: 7)
        _ = feed(&replay, segment: 7) { WALRecord.appendHardState(HardState(term: 4, vote: 2, commit: 50), to: &$0) }
        #expect(replay.base == nil)
        #expect(try replay.reconcile(with: Snapshot(index: 50, term: 4, data: []), directory: "/d") == .continues)
        #expect(replay.base == 50)
        #expect(replay.hardState == HardState(term: 4, vote: 2, commit: 50))
    }

    @Test func resetWithAnotherTermThanTheSnapshotIsRefused() {
        var replay = LogReplay(firstSequence: 2)
        _ = feed(&replay, segment: 2) { bytes in
            WALRecord.appendHardState(HardState(), to: &bytes)
            WALRecord.appendReset(index: 9, term: 3, to: &bytes)
        }
        #expect(throws: StorageError.inconsistentDataDir(
            directory: "/d", reason: "the WAL restarts after index 9 term 3 but the snapshot file has term 4 there")) {
            try replay.reconcile(with: Snapshot(index: 9, term: 4, data: []), directory: "/d")
        }
    }

    @Test func removeFirstReleasingMemory() {
        var large = Array(0..<10_000)
        large.removeFirstReleasingMemory(9_990)
        #expect(large == Array(9_990..<10_000))
        #expect(large.capacity < 100)

        var small = Array(0..<100)
        small.reserveCapacity(100)
        small.removeFirstReleasingMemory(10)
        #expect(small == Array(10..<100))

        var all = Array(0..<50)
        all.removeFirstReleasingMemory(50)
        #expect(all.isEmpty)
        #expect(all.capacity == 0)
    }
}

@testable import Raft
import Testing

/// The in-memory log's index arithmetic once a prefix is compacted away.
@Suite struct RaftLogTests {
    /// Terms 1 (indexes 1–3), 2 (4–7), 3 (8–10), all committed and applied.
    static func appliedLog() -> RaftLog {
        RaftLog(entries: RaftNodeTests.log([(1, 3), (2, 4), (3, 3)]), commit: 10, applied: 10)
    }

    @Test func compactionKeepsTermLookupsRight() {
        var log = Self.appliedLog()
        log.compact(through: 5)
        #expect(log.offset == 5 && log.offsetTerm == 2)
        #expect(log.firstIndex == 6 && log.lastIndex == 10 && log.lastTerm == 3)
        #expect(log.term(at: 0) == .compacted)
        #expect(log.term(at: 4) == .compacted)
        #expect(log.term(at: 5) == .term(2), "the term just before the first held entry is kept")
        #expect(log.term(at: 6) == .term(2))
        #expect(log.term(at: 8) == .term(3))
        #expect(log.term(at: 11) == .beyondLog)
        #expect(log.entry(at: 5) == nil && log.entry(at: 6)?.index == 6)
        #expect(log.matches(index: 5, term: 2) && !log.matches(index: 4, term: 2) && !log.matches(index: 11, term: 3))
        #expect(log.entries(from: 6, maxBytes: .max).map(\.index) == [6, 7, 8, 9, 10])
        // Backtracking helpers stop at the first held entry / the offset.
        #expect(log.firstIndex(ofTermAt: 7) == 6)
        #expect(log.firstIndex(ofTermAt: 9) == 8)
        #expect(log.lastIndex(ofTerm: 2) == 7)
        #expect(log.lastIndex(ofTerm: 1) == nil, "term 1 is entirely compacted")
        #expect(log.lastIndex(ofTerm: 4) == nil)

        log.compact(through: 7)
        #expect(log.lastIndex(ofTerm: 2) == 7, "the offset itself still answers for its term")
        log.compact(through: 10)
        #expect(log.lastIndex == 10 && log.lastTerm == 3, "an empty log's last entry is the offset")
        #expect(log.entries.isEmpty && log.unpersistedEntries.isEmpty && log.entriesToApply.isEmpty)
        #expect(log.isUpToDate(lastIndex: 10, lastTerm: 3) && !log.isUpToDate(lastIndex: 9, lastTerm: 3))
    }

    @Test func followerAppendsAfterTheOffsetAndSkipsCompactedEntries() {
        var log = Self.appliedLog()
        log.compact(through: 8)
        // A duplicate append reaching back below the offset changes nothing.
        let last = log.appendAsFollower(after: 6, RaftNodeTests.log([(1, 3), (2, 4), (3, 3)]).suffix(4).map { $0 })
        #expect(last == 10 && log.lastIndex == 10 && log.persisted == 10)
        _ = log.appendAsFollower(after: 10, [Entry(term: 4, index: 11)])
        #expect(log.lastIndex == 11 && log.unpersistedEntries.map(\.index) == [11])
    }

    @Test func compactionReleasesTheArraysCapacity() {
        let count = 10_000
        let entries = (1...count).map { Entry(term: 1, index: UInt64($0)) }
        var log = RaftLog(entries: entries, commit: UInt64(count), applied: UInt64(count))
        log.compact(through: UInt64(count - 10))
        #expect(log.entries.count == 10)
        #expect(log.entries.capacity <= 2 * 10 + RaftLog.slackCapacity, "capacity \(log.entries.capacity) kept for 10 entries")
        #expect(log.entries.first?.index == UInt64(count - 9))
    }

    @Test func restoredLogStartsAfterTheSnapshot() {
        let snapshot = Snapshot(index: 10, term: 2, data: [])
        let log = RaftLog(snapshot: snapshot, entries: [Entry(term: 2, index: 11), Entry(term: 3, index: 12)], commit: 4, applied: 0)
        #expect(log.offset == 10 && log.offsetTerm == 2)
        #expect(log.commit == 10 && log.applied == 10 && log.persisted == 12)
        #expect(log.entriesToApply.isEmpty)
        #expect(log.term(at: 10) == .term(2) && log.term(at: 9) == .compacted)
    }
}

@testable import KVServer
import KVStore
import Testing
import Wire

/// Single scenarios of kvd's driver, step by step (the simulation covers their mixtures).
struct KVDriverTests {
    typealias H = KVDriverHarness

    @Test func groupCommitBatchesRequestsArrivingTogether() {
        var h = H()
        h.attachAsLeader()
        h.request(1, H.put(1, client: 7, seq: 1, "a", "1"))
        #expect(h.last.contains(.schedulePassEnd))
        h.request(2, H.put(2, client: 8, seq: 1, "b", "2"))
        #expect(h.sent.isEmpty, "nothing goes before the pass ends")
        h.passEnded()
        #expect(h.proposals.count == 1)
        #expect(h.proposals.first?.batch.commands.map(\.key) == [Array("a".utf8), Array("b".utf8)])
        let first = h.proposals[0]

        // One proposal in flight (the default): the next pass's requests wait for it.
        h.request(3, H.put(3, client: 9, seq: 1, "c", "3"))
        h.request(3, H.put(4, client: 10, seq: 1, "d", "4"))
        h.passEnded()
        #expect(h.proposals.isEmpty)
        #expect(h.driver.proposalsInFlight == 1)
        // …until the first applies: then they go together, as one entry.
        h.raft(.results([ProposeResult(proposalID: first.id, accepted: true, index: 1, term: 2)]))
        h.raft(.committed([H.entry(1, term: 2, first.batch)]))
        #expect(h.replies.map(\.response.requestID).sorted() == [1, 2])
        h.passEnded()
        #expect(h.proposals.count == 1 && h.proposals[0].batch.commands.count == 2)
    }

    @Test func heldBackBatchGoesAfterTheMaxWait() {
        var h = H { $0.groupCommitMaxWait = .milliseconds(2) }
        h.attachAsLeader()
        h.request(1, H.put(1, seq: 1, "a", "1"))
        h.passEnded()
        h.request(1, H.put(2, client: 8, seq: 1, "b", "2"))
        #expect(h.last.contains(.armTimer(at: (h.nowMs + 2) * H.ms)))
        h.passEnded()
        #expect(h.proposals.isEmpty)
        h.advance(ms: 2)
        #expect(h.proposals.count == 1 && h.proposals[0].batch.commands.first?.key == Array("b".utf8))
        #expect(h.driver.proposalsInFlight == 2)
    }

    @Test func appliedEntryAnswersItsRequestOnlyAtTheSameIndexAndTerm() {
        var h = H()
        h.attachAsLeader(term: 3)
        h.request(1, H.put(10, seq: 1, "k", "v"))
        h.passEnded()
        let ours = h.proposals[0]
        h.raft(.results([ProposeResult(proposalID: ours.id, accepted: true, index: 1, term: 3)]))
        h.raft(.committed([H.entry(1, term: 3, ours.batch)]))
        #expect(h.replies.count == 1)
        #expect(h.replies.first?.client == 1)
        #expect(h.replies.first?.response.requestID == 10 && h.replies.first?.response.status == .ok)
        #expect(h.replies.first?.response.leaderTerm == 3)

        // The next one lands at index 2, but another leader's entry (term 4) commits there.
        h.request(1, H.put(11, seq: 2, "k", "w"))
        h.passEnded()
        let second = h.proposals[0]
        h.raft(.results([ProposeResult(proposalID: second.id, accepted: true, index: 2, term: 3)]))
        let theirs = CommandBatch(timestampMs: 5, commands: [Command(clientID: 99, seq: 1, op: .put, key: Array("x".utf8), value: [1])])
        h.raft(.committed([H.entry(2, term: 4, theirs)]))
        #expect(h.replies.map(\.response.status) == [.wrongLeader])
        #expect(h.replies.first?.response.requestID == 11)
        #expect(h.driver.machine.get(Array("k".utf8)) == Array("v".utf8), "ours was never applied")
        #expect(h.driver.pendingRequests == 0)
    }

    @Test func leadershipLossFailsPendingRequests() {
        var h = H()
        h.attachAsLeader(term: 2)
        h.request(1, H.put(1, seq: 1, "a", "1"))
        h.passEnded()
        h.request(2, H.get(2, "a"))
        h.passEnded()
        h.request(3, H.put(3, client: 8, seq: 1, "b", "1"))  // still in the batch
        #expect(h.driver.pendingRequests == 3)
        h.raft(.leadership(Leadership(term: 3, leaderID: 2, isLeader: false)))
        #expect(h.replies.count == 3)
        #expect(h.replies.allSatisfy { $0.response.status == .wrongLeader && $0.response.leaderHint == "2" && $0.response.leaderTerm == 3 })
        #expect(h.driver.pendingRequests == 0)
        h.passEnded()
        #expect(h.sent.isEmpty)
        // A follower redirects at once.
        h.request(1, H.put(4, seq: 2, "a", "2"))
        #expect(h.replies.first?.response.status == .wrongLeader && h.replies.first?.response.leaderHint == "2")
    }

    @Test func readIndexReadsWaitForTheIndexToApply() {
        var h = H()
        h.attachAsLeader(term: 2)
        h.request(1, H.put(1, seq: 1, "k", "v1"))
        h.passEnded()
        let write = h.proposals[0]
        h.raft(.results([ProposeResult(proposalID: write.id, accepted: true, index: 1, term: 2)]))
        h.request(2, H.get(2, "k"))
        h.request(3, H.get(3, "k"))
        h.passEnded()
        #expect(h.sent == [.read(ids: [1])], "one read id for the pass's Gets")
        h.raft(.readResults([ReadResult(readID: 1, outcome: .ready(index: 1, term: 2))]))
        #expect(h.replies.isEmpty, "index 1 is not applied yet")
        h.raft(.committed([H.entry(1, term: 2, write.batch)]))
        let answers = h.replies.filter { $0.client != 1 }
        #expect(answers.count == 2)
        #expect(answers.allSatisfy { $0.response.status == .ok && $0.response.value == Array("v1".utf8) && $0.response.leaderTerm == 2 })

        // raftd no longer leads: the read fails with its hint.
        h.request(2, H.get(4, "k"))
        h.passEnded()
        h.raft(.readResults([ReadResult(readID: 2, outcome: .notLeader(leaderID: 3))]))
        #expect(h.replies.map(\.response.status) == [.wrongLeader])
        #expect(h.replies.first?.response.leaderHint == "3")
    }

    @Test func readsTimeOutAndUseLogModeProposesThem() {
        var h = H { $0.requestTimeout = .milliseconds(100) }
        h.attachAsLeader()
        h.request(2, H.get(1, "k"))
        h.passEnded()
        h.advance(ms: 100)
        #expect(h.replies.map(\.response.status) == [.timeout])
        h.request(2, H.get(2, "k"))
        h.passEnded()
        h.raft(.readResults([ReadResult(readID: 2, outcome: .useLog)]))
        h.passEnded()
        #expect(h.proposals.count == 1 && h.proposals[0].batch.commands.first?.op == .get)
        h.request(2, H.get(3, "k"))
        h.passEnded()
        #expect(h.sent.allSatisfy { if case .read = $0 { false } else { true } }, "later Gets go through the log too")
    }

    @Test func duplicateRetryIsAnsweredFromTheSessionTable() {
        var h = H()
        h.attachAsLeader()
        h.request(1, H.append(1, client: 7, seq: 1, "k", "x"))
        h.passEnded()
        let first = h.proposals[0]
        h.raft(.results([ProposeResult(proposalID: first.id, accepted: true, index: 1, term: 2)]))
        h.raft(.committed([H.entry(1, term: 2, first.batch)]))
        #expect(h.replies.first?.response.status == .ok)
        // The client did not hear the answer and retries the same (client_id, seq).
        h.request(1, H.append(2, client: 7, seq: 1, "k", "x"))
        h.passEnded()
        let retry = h.proposals[0]
        h.raft(.results([ProposeResult(proposalID: retry.id, accepted: true, index: 2, term: 2)]))
        h.raft(.committed([H.entry(2, term: 2, retry.batch)]))
        #expect(h.replies.map(\.response.requestID) == [2])
        #expect(h.replies.first?.response.status == .ok)
        #expect(h.driver.machine.get(Array("k".utf8)) == Array("x".utf8), "applied once")
    }

    @Test func statusQueriesTimeOutWithKvdsOwnView() {
        var h = H { $0.statusAnswerTimeout = .seconds(1) }
        h.attachAsLeader(term: 5)
        h.request(4, KvRequest(requestID: 8, op: .status))
        #expect(h.sent == [.statusQuery(queryID: 1)])
        h.request(4, KvRequest(requestID: 9, op: .member))
        h.advance(ms: 999)
        #expect(h.replies.isEmpty)
        h.advance(ms: 1)
        let byID = Dictionary(uniqueKeysWithValues: h.replies.map { ($0.response.requestID, $0.response) })
        #expect(byID[8]?.status == .ok && byID[8]?.nodes.first?.error.contains("did not answer") == true)
        #expect(byID[8]?.nodes.first?.term == 5)
        #expect(byID[9]?.status == .unavailable)
        // A late answer is dropped.
        h.raft(.status(queryID: 1, NodeStatus(nodeID: 1)))
        #expect(h.replies.isEmpty)
    }

    @Test func snapshotRequestStreamsChunksAsTheLinkHasRoom() {
        var h = H()
        h.attachAsLeader()
        h.raft(.snapshotRequest(appliedAtLeast: 0))
        guard case let .encodeSnapshot(id, machine)? = h.last.first(where: { if case .encodeSnapshot = $0 { true } else { false } }) else {
            Issue.record("no encoding asked for: \(h.last)")
            return
        }
        #expect(machine == h.driver.machine)
        h.raft(.snapshotRequest(appliedAtLeast: 0))
        #expect(!h.last.contains { if case .encodeSnapshot = $0 { true } else { false } }, "one at a time")
        let chunk = SnapshotChunker.defaultChunkSize
        let part = [UInt8](repeating: 7, count: 2 * chunk + 10)
        h.step { $0.snapshotEncodingStarted(id: id, index: 0, size: part.count, raftRoom: 1, at: $1) }
        h.step { $0.snapshotPartEncoded(id: id, part: part, raftRoom: 1, at: $1) }
        #expect(h.sent.count == 1, "a full link takes one chunk, then waits")
        #expect(!h.last.contains(.snapshotPartSent(id: id)))
        h.step { $0.raftWritable(room: chunk, at: $1) }
        #expect(h.sent.count == 1)
        h.step { $0.raftWritable(room: 10 * chunk, at: $1) }
        let chunks = h.sent.compactMap { if case let .snapshot(c) = $0 { c } else { nil } }
        #expect(chunks.count == 1 && chunks[0].offset == UInt64(2 * chunk) && chunks[0].data.count == 10)
        #expect(h.last.contains(.snapshotPartSent(id: id)))
        #expect(h.last.contains(.releaseFreeMemory))
        h.step { $0.snapshotEncodingFinished(id: id, keys: 0, sessions: 0, duration: .zero, raftRoom: 1, at: $1) }
        h.raft(.snapshotRequest(appliedAtLeast: 0))
        #expect(h.last.contains { if case .encodeSnapshot = $0 { true } else { false } }, "the next request starts another")
    }

    @Test func snapshotIsCancelledWhenRaftdGoesAway() {
        var h = H()
        h.attachAsLeader()
        h.raft(.snapshotRequest(appliedAtLeast: 0))
        h.step { $0.raftDisconnected(reason: "gone", at: $1) }
        #expect(h.last.contains(.cancelSnapshotEncoding(id: 1)))
        h.step { $0.snapshotEncodingStarted(id: 1, index: 0, size: 10, raftRoom: 100, at: $1) }
        #expect(h.sent.isEmpty)
    }

    @Test func incomingSnapshotRestoresTheState() {
        var source = KVStateMachine()
        let batch = CommandBatch(timestampMs: 1, commands: [Command(clientID: 3, seq: 1, op: .put, key: Array("k".utf8), value: Array("v".utf8))])
        _ = source.apply(batch: batch, index: 1)
        for index: UInt64 in 2...5 { source.applyNoop(index: index) }
        let bytes = source.snapshot()
        var h = H()
        h.step { $0.raftConnected(at: $1) }
        for offset in stride(from: 0, to: bytes.count, by: 7) {
            let end = min(bytes.count, offset + 7)
            h.raft(.snapshot(SnapshotChunk(index: 5, term: 1, offset: UInt64(offset), totalSize: UInt64(bytes.count), data: Array(bytes[offset..<end]))))
        }
        #expect(h.driver.machine.appliedIndex == 5)
        #expect(h.driver.machine.get(Array("k".utf8)) == Array("v".utf8))
        #expect(h.driver.machine == source)
        // Entries after it follow on.
        h.raft(.committed([LogEntry(term: 1, index: 6, isNoop: true)]))
        #expect(h.driver.machine.appliedIndex == 6)
    }

    @Test func reconnectSaysHelloWithLastAppliedAndResumes() {
        var h = H()
        h.attachAsLeader(term: 2)
        h.raft(.committed([LogEntry(term: 2, index: 1, isNoop: true), LogEntry(term: 2, index: 2, isNoop: true)]))
        h.request(1, H.put(1, seq: 1, "a", "1"))
        h.passEnded()
        h.step { $0.raftDisconnected(reason: "reset", at: $1) }
        #expect(h.replies.map(\.response.status) == [.unavailable])
        h.request(1, H.put(2, seq: 1, "a", "1"))
        #expect(h.replies.map(\.response.status) == [.unavailable], "nothing waits while raftd is away")
        h.step { $0.raftConnected(at: $1) }
        #expect(h.sent == [.hello(lastApplied: 2)])
        // raftd replays from there (an old entry is skipped), and serving resumes.
        h.raft(.committed([LogEntry(term: 2, index: 2, isNoop: true), LogEntry(term: 3, index: 3, isNoop: true)]))
        #expect(h.driver.machine.appliedIndex == 3)
        h.raft(.leadership(Leadership(term: 3, leaderID: 1, isLeader: true)))
        h.request(1, H.put(3, seq: 1, "a", "1"))
        h.passEnded()
        #expect(h.proposals.count == 1)
    }

    @Test func gapInTheStreamResetsTheLink() {
        var h = H()
        h.attachAsLeader()
        h.raft(.committed([LogEntry(term: 2, index: 2, isNoop: true)]))
        #expect(h.last.contains(.resetRaftLink))
        #expect(!h.driver.raftAttached)
        h.raft(.committed([LogEntry(term: 2, index: 1, isNoop: true)]))
        #expect(h.driver.machine.appliedIndex == 0, "nothing from the dropped connection is applied")
    }
}

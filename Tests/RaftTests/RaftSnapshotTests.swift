import Raft
import Testing

/// Log compaction and snapshots through the public API: the leader compacts, followers behind
/// the compacted prefix get its snapshot, followers handle stale, matching and conflicting ones,
/// and a node restarts from (snapshot, entries).
@Suite struct SnapshotTests {
    typealias Pump = RaftNodeTests.Pump
    static let peers: [UInt64] = [1, 2, 3]

    static func cluster(electionTicks: Int = 10) -> (Pump, [RaftNode]) {
        let nodes = peers.map { RaftNode(config: RaftConfig(id: $0, peers: peers, electionTicks: electionTicks, randomSeed: $0)) }
        return (Pump(nodes), nodes)
    }

    /// Drains a node's pending `Ready` (restart or setup), acknowledging it unchanged.
    static func settle(_ node: RaftNode) {
        while node.hasReady { node.advance(node.ready()) }
    }

    /// Node 1 leads; node 3 hears nothing while `count` commands commit on 1 and 2.
    static func leaderWithLaggingFollower(commands count: Int) -> (Pump, [RaftNode]) {
        let (pump, nodes) = cluster()
        pump.elect(1)
        pump.drop = { $0.to == 3 || $0.from == 3 }
        for value in 0..<count {
            _ = nodes[0].propose(command(value))
            pump.run()
        }
        return (pump, nodes)
    }

    @Test func compactRecordsTheSnapshotAndKeepsTheRetainedEntries() {
        let (_, nodes) = Self.leaderWithLaggingFollower(commands: 20)
        let leader = nodes[0]
        #expect(leader.status.appliedIndex == 21, "no-op plus 20 commands")
        #expect(leader.compact(through: 0, data: [], retaining: 0) == nil)
        let made = leader.compact(through: 12, data: [1, 2], retaining: 100)
        #expect(made == Snapshot(index: 12, term: 1, data: [1, 2], configuration: Configuration(voters: [1, 2, 3])))
        #expect(leader.snapshot == made && leader.firstIndex == 1, "retaining more than exists keeps the whole log")
        #expect(leader.compact(through: 12, data: [9], retaining: 0) == nil, "not past the latest snapshot")
        #expect(leader.compact(through: 11, data: [9], retaining: 0) == nil)
        #expect(leader.snapshot == made)
        let second = leader.compact(through: 21, data: [3], retaining: 4)
        #expect(second?.index == 21)
        #expect(leader.firstIndex == 18 && leader.status.firstIndex == 18 && leader.status.snapshotIndex == 21)
        #expect(leader.entry(at: 17) == nil && leader.entry(at: 18)?.data == command(16))
        #expect(leader.status.lastIndex == 21 && leader.status.commitIndex == 21)
        #expect(!leader.hasReady, "a snapshot the shell made is not handed back in a Ready")
    }

    /// A shell that keeps snapshot bytes on disk gives the core none: the core compacts all the
    /// same, and sends followers the snapshot's index and term for the shell to fill in.
    @Test func aSnapshotWithoutDataIsSentWithoutIt() {
        let (pump, nodes) = Self.leaderWithLaggingFollower(commands: 20)
        let leader = nodes[0]
        leader.compact(through: 21, data: [], retaining: 0)
        #expect(leader.snapshot == Snapshot(index: 21, term: 1, data: [], configuration: Configuration(voters: [1, 2, 3])))
        #expect(leader.firstIndex == 22 && leader.status.snapshotIndex == 21)
        pump.drop = { $0.type == .snapshot }  // kept aside to look at
        for _ in 0..<10 {
            leader.tick()
            pump.run()
        }
        let snapshots = pump.dropped.filter { $0.to == 3 && $0.type == .snapshot }
        #expect(snapshots.first?.snapshot == Snapshot(index: 21, term: 1, data: [], configuration: Configuration(voters: [1, 2, 3])), "\(snapshots.map(\.description))")
    }

    @Test func leaderSendsItsSnapshotToAFollowerBehindTheCompactedPrefix() {
        let (pump, nodes) = Self.leaderWithLaggingFollower(commands: 20)
        let (leader, lagging) = (nodes[0], nodes[2])
        let snapshot = leader.compact(through: 21, data: [0xAB], retaining: 5)!
        #expect(leader.firstIndex == 17)
        pump.drop = { _ in false }
        let before = pump.delivered.count
        // Heartbeat answers show node 3 stalled; its next entry (2) is compacted, so it gets the
        // snapshot, then appends from 22 on.
        for _ in 0..<10 where lagging.status.commitIndex < 21 {
            leader.tick()
            pump.run()
        }
        let toLagging = pump.delivered[before...].filter { $0.to == 3 && $0.type != .heartbeat }
        let transcript = toLagging.map(\.description).joined(separator: "\n")
        #expect(toLagging.first?.type == .snapshot, "\(transcript)")
        #expect(toLagging.first?.snapshot == snapshot)
        #expect(toLagging.first?.description == "1→3 snapshot t1 through=(1,21) 1B")
        #expect(toLagging.filter { $0.type == .snapshot }.count == 1, "\(transcript)")
        #expect(pump.installed.map(\.node) == [3] && pump.installed.first?.snapshot == snapshot)
        #expect(lagging.status.commitIndex == 21 && lagging.status.appliedIndex == 21)
        #expect(lagging.status.firstIndex == 22 && lagging.status.snapshotIndex == 21 && lagging.snapshot == snapshot)

        // Replication continues with ordinary appends after the snapshot.
        #expect(leader.propose(command(100)) == .accepted(firstIndex: 22, term: 1))
        pump.run()
        leader.tick()
        pump.run()
        let append = pump.delivered.last { $0.to == 3 && $0.type == .append && !$0.entries.isEmpty }
        #expect(append?.index == 21 && append?.logTerm == 1 && append?.entries.map(\.index) == [22], "\(pump.transcript)")
        #expect(lagging.entry(at: 22) == leader.entry(at: 22))
        #expect(lagging.status.commitIndex == 22)
    }

    @Test func followerWithinTheRetainedEntriesIsCaughtUpWithAppends() {
        let (pump, nodes) = Self.cluster()
        pump.elect(1)
        let leader = nodes[0]
        for value in 0..<15 {
            _ = leader.propose(command(value))
            pump.run()
        }
        pump.drop = { $0.to == 3 || $0.from == 3 }
        for value in 15..<20 {
            _ = leader.propose(command(value))
            pump.run()
        }
        #expect(nodes[2].status.lastIndex == 16)
        leader.compact(through: 21, data: [], retaining: 8)  // keeps 14...21: node 3 needs 17 on
        pump.drop = { _ in false }
        for _ in 0..<10 where nodes[2].status.commitIndex < 21 {
            leader.tick()
            pump.run()
        }
        #expect(nodes[2].status.commitIndex == 21)
        #expect(!pump.delivered.contains { $0.type == .snapshot }, "\(pump.transcript)")
        #expect(pump.installed.isEmpty)
    }

    @Test func lostSnapshotIsResentAfterTheTimeout() {
        let electionTicks = 10
        let (pump, nodes) = Self.leaderWithLaggingFollower(commands: 20)
        let (leader, lagging) = (nodes[0], nodes[2])
        leader.compact(through: 21, data: [7], retaining: 0)
        // Node 3 is reachable again, but the first snapshot to it is lost.
        var snapshotsToLagging = 0
        pump.drop = { message in
            guard message.type == .snapshot else { return false }
            snapshotsToLagging += 1
            return snapshotsToLagging == 1
        }
        var sentAtTick: [Int] = []
        for tick in 0..<60 where lagging.status.commitIndex < 21 {
            let sentBefore = snapshotsToLagging
            leader.tick()
            pump.run()
            if snapshotsToLagging > sentBefore { sentAtTick.append(tick) }
        }
        #expect(sentAtTick.count == 2, "one lost snapshot, one resent: \(sentAtTick)\n\(pump.transcript)")
        if sentAtTick.count == 2 {
            let waited = sentAtTick[1] - sentAtTick[0]
            #expect(waited >= 2 * electionTicks && waited <= 2 * electionTicks + 2,
                    "resent after \(waited) ticks; the timeout is \(2 * electionTicks)")
        }
        #expect(leader.status.role == .leader, "the leader kept hearing from its followers meanwhile")
        #expect(lagging.status.commitIndex == 21 && lagging.status.snapshotIndex == 21)
        #expect(pump.installed.map(\.node) == [3])
    }

    // MARK: Follower side

    /// A follower of node 1 in term 2 holding `log`, with `commit` applied.
    static func follower(log: [Entry], term: UInt64 = 2, commit: UInt64) -> RaftNode {
        let node = RaftNode(config: RaftConfig(id: 2, peers: peers), hardState: HardState(term: term, commit: commit), entries: log)
        settle(node)
        return node
    }

    static func snapshotMessage(_ snapshot: Snapshot, term: UInt64 = 2) -> Message {
        Message(type: .snapshot, from: 1, to: 2, term: term, snapshot: snapshot)
    }

    static func appendResponse(index: UInt64, term: UInt64 = 2) -> Message {
        Message(type: .appendResponse, from: 2, to: 1, term: term, index: index)
    }

    @Test func followerAnswersAStaleSnapshotWithItsCommitIndex() {
        let node = Self.follower(log: RaftNodeTests.log([(1, 5), (2, 2)]), commit: 5)
        let before = node.status
        node.step(Self.snapshotMessage(Snapshot(index: 4, term: 1, data: [1])))
        let ready = node.ready()
        #expect(ready.snapshot == nil && ready.entries.isEmpty && ready.committedEntries.isEmpty)
        #expect(ready.messagesAfterPersist == [Self.appendResponse(index: 5)])
        node.advance(ready)
        #expect(node.status.lastIndex == before.lastIndex && node.status.commitIndex == 5)
        #expect(node.snapshot == nil && node.status.firstIndex == 1)
    }

    @Test func followerHoldingTheSnapshotsLastEntryFastForwards() {
        let node = Self.follower(log: RaftNodeTests.log([(1, 5), (2, 3)]), commit: 2)
        node.step(Self.snapshotMessage(Snapshot(index: 6, term: 2, data: [1])))
        let ready = node.ready()
        #expect(ready.snapshot == nil, "no restore: the log already holds the snapshot's prefix")
        #expect(ready.hardState?.commit == 6)
        #expect(ready.committedEntries.map(\.index) == [3, 4, 5, 6], "applied from the log as usual")
        #expect(ready.messagesAfterPersist == [Self.appendResponse(index: 6)])
        node.advance(ready)
        #expect(node.status.lastIndex == 8 && node.status.appliedIndex == 6)
        #expect(node.snapshot == nil && node.status.firstIndex == 1)
    }

    @Test func followerWithAConflictingLogRestoresTheSnapshot() {
        // Indexes 4–7 hold term 2, never committed; the new leader's snapshot says index 5 is term 3.
        let node = Self.follower(log: RaftNodeTests.log([(1, 3), (2, 4)]), commit: 3)
        let snapshot = Snapshot(index: 5, term: 3, data: [0x55])
        node.step(Self.snapshotMessage(snapshot, term: 3))
        #expect(node.hasReady)
        let ready = node.ready()
        #expect(ready.snapshot == snapshot)
        #expect(ready.entries.isEmpty && ready.committedEntries.isEmpty, "the snapshot replaces the log and the state machine")
        #expect(ready.hardState == HardState(term: 3, vote: 0, commit: 5))
        #expect(ready.messages.isEmpty, "the acknowledgement vouches for the persisted snapshot")
        #expect(ready.messagesAfterPersist == [Self.appendResponse(index: 5, term: 3)])
        node.advance(ready)
        #expect(!node.hasReady, "advance acknowledged the snapshot")
        let status = node.status
        #expect(status.leader == 1 && status.term == 3)
        #expect(status.commitIndex == 5 && status.appliedIndex == 5 && status.persistedIndex == 5)
        #expect(status.firstIndex == 6 && status.lastIndex == 5 && status.snapshotIndex == 5)
        #expect(node.entry(at: 4) == nil && node.snapshot == snapshot)

        // The log continues right after the snapshot.
        node.step(Message(type: .append, from: 1, to: 2, term: 3, logTerm: 3, index: 5, commit: 6,
                          entries: [Entry(term: 3, index: 6, data: [6])]))
        let next = node.ready()
        #expect(next.snapshot == nil && next.entries.map(\.index) == [6])
        #expect(next.messagesAfterPersist == [Self.appendResponse(index: 6, term: 3)])
        node.advance(next)
        #expect(node.ready().committedEntries.map(\.index) == [6])
    }

    @Test func followerWithAShortLogRestoresTheSnapshot() {
        let node = Self.follower(log: RaftNodeTests.log([(1, 3)]), commit: 3)
        node.step(Self.snapshotMessage(Snapshot(index: 10, term: 1, data: [])))
        let ready = node.ready()
        #expect(ready.snapshot?.index == 10)
        #expect(ready.messagesAfterPersist == [Self.appendResponse(index: 10)])
        node.advance(ready)
        #expect(node.status.lastIndex == 10 && node.status.firstIndex == 11)
    }

    @Test func candidateFollowsTheLeaderThatSendsASnapshot() {
        let node = RaftNode(config: RaftConfig(id: 2, peers: Self.peers, preVote: false))
        for _ in 0..<30 where node.status.role != .candidate { node.tick() }
        Self.settle(node)
        let term = node.status.term
        node.step(Self.snapshotMessage(Snapshot(index: 4, term: term, data: []), term: term))
        #expect(node.status.role == .follower && node.status.leader == 1)
        let ready = node.ready()
        #expect(ready.snapshot?.index == 4)
        node.advance(ready)
    }

    /// With an asynchronous disk the shell steps messages between `ready()` and `advance()`:
    /// a snapshot restored meanwhile must survive the older Ready's acknowledgement.
    @Test func snapshotRestoredWhileAReadyIsOutstanding() {
        let node = Self.follower(log: RaftNodeTests.log([(1, 3)]), term: 1, commit: 3)
        node.step(Message(type: .append, from: 1, to: 2, term: 2, logTerm: 1, index: 3, commit: 3,
                          entries: (4...10).map { Entry(term: 2, index: $0) }))
        let outstanding = node.ready()
        #expect(outstanding.entries.map(\.index) == Array(4...10))
        let first = Snapshot(index: 8, term: 3, data: [8])
        node.step(Self.snapshotMessage(first, term: 3))
        node.step(Message(type: .append, from: 1, to: 2, term: 3, logTerm: 3, index: 8, commit: 8,
                          entries: [Entry(term: 3, index: 9)]))
        node.advance(outstanding)
        #expect(node.status.persistedIndex == 8, "entries 4–10 of the replaced log say nothing about the new index 9")
        let withSnapshot = node.ready()
        #expect(withSnapshot.snapshot == first && withSnapshot.entries.map(\.index) == [9])
        #expect(withSnapshot.messagesAfterPersist.map(\.index) == [8, 9])
        // A second, newer snapshot arrives before this Ready is acknowledged.
        let second = Snapshot(index: 12, term: 3, data: [12])
        node.step(Self.snapshotMessage(second, term: 3))
        node.advance(withSnapshot)
        #expect(node.hasReady, "the newer snapshot is still to be handed out")
        let withSecond = node.ready()
        #expect(withSecond.snapshot == second && withSecond.entries.isEmpty)
        node.advance(withSecond)
        #expect(!node.hasReady)
        #expect(node.status.appliedIndex == 12 && node.status.persistedIndex == 12 && node.status.lastIndex == 12)
    }

    // MARK: Restart

    @Test func restartFromSnapshotAndEntriesThenBringFreshPeersUpToDate() {
        let snapshot = Snapshot(index: 10, term: 2, data: [10])
        let entries = [Entry(term: 2, index: 11, data: [11]), Entry(term: 3, index: 12, data: [12]), Entry(term: 3, index: 13, data: [13])]
        let restarted = RaftNode(config: RaftConfig(id: 1, peers: Self.peers, randomSeed: 1),
                                 hardState: HardState(term: 3, vote: 1, commit: 4), snapshot: snapshot, entries: entries)
        let status = restarted.status
        #expect(status.commitIndex == 10 && status.appliedIndex == 10, "the caller restored its state machine from the snapshot")
        #expect(status.firstIndex == 11 && status.lastIndex == 13 && status.snapshotIndex == 10)
        #expect(restarted.snapshot == snapshot && restarted.firstIndex == 11)
        #expect(restarted.entry(at: 10) == nil && restarted.entry(at: 11) == entries[0])
        let ready = restarted.ready()
        #expect(ready.snapshot == nil && ready.entries.isEmpty && ready.committedEntries.isEmpty)
        #expect(ready.hardState == HardState(term: 3, vote: 1, commit: 10), "commit moved up to the snapshot")
        restarted.advance(ready)

        let fresh = [2, 3].map { RaftNode(config: RaftConfig(id: $0, peers: Self.peers, randomSeed: $0)) }
        let pump = Pump([restarted] + fresh)
        pump.elect(1)
        pump.run()
        #expect(pump.installed.map(\.node).sorted() == [2, 3], "\(pump.transcript)")
        #expect(pump.installed.allSatisfy { $0.snapshot == snapshot })
        pump.heartbeat(from: 1)
        for node in fresh {
            #expect(node.status.commitIndex == 14 && node.status.firstIndex == 11)
            #expect((11...14).allSatisfy { node.entry(at: $0) == restarted.entry(at: $0) })
        }
    }
}

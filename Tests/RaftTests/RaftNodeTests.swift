import Raft
import Testing

/// Direct tests of one or a few `RaftNode`s, with a hand-driven, reliable, in-order message pump.
@Suite struct RaftNodeTests {
    /// Delivers every message until nothing moves, persisting and applying nothing but acknowledging
    /// each `Ready` (durability is irrelevant here). Records every message it delivered, and every
    /// snapshot a `Ready` handed out for installing. `drop` loses the messages it returns true for.
    final class Pump {
        let nodes: [UInt64: RaftNode]
        private(set) var delivered: [Message] = []
        private(set) var dropped: [Message] = []
        private(set) var installed: [(node: UInt64, snapshot: Snapshot)] = []
        var drop: (Message) -> Bool = { _ in false }

        init(_ nodes: [RaftNode]) {
            var byID: [UInt64: RaftNode] = [:]
            for node in nodes { byID[node.status.id] = node }
            self.nodes = byID
        }

        func run(maxRounds: Int = 1000) {
            for _ in 0..<maxRounds {
                var outgoing: [Message] = []
                for id in nodes.keys.sorted() where nodes[id]!.hasReady {
                    let ready = nodes[id]!.ready()
                    if let snapshot = ready.snapshot { installed.append((id, snapshot)) }
                    outgoing += ready.messages + ready.messagesAfterPersist
                    nodes[id]!.advance(ready)
                }
                if outgoing.isEmpty { return }
                for message in outgoing {
                    if drop(message) {
                        dropped.append(message)
                        continue
                    }
                    delivered.append(message)
                    nodes[message.to]?.step(message)
                }
            }
            Issue.record("pump did not settle")
        }

        func elect(_ id: UInt64) {
            let node = nodes[id]!
            for _ in 0..<100 where node.status.role != .leader {
                node.tick()
                run()
            }
            #expect(node.status.role == .leader, "node \(id) did not win: \(node.status)")
        }

        /// One heartbeat round from `id`: followers learn the leader's commit index from
        /// heartbeats and later appends (a commit alone sends nothing).
        func heartbeat(from id: UInt64) {
            nodes[id]!.tick()
            run()
        }

        var transcript: String { delivered.map(\.description).joined(separator: "\n") }
    }

    static func log(_ runs: [(term: UInt64, count: Int)]) -> [Entry] {
        var entries: [Entry] = []
        for run in runs {
            for _ in 0..<run.count {
                entries.append(Entry(term: run.term, index: UInt64(entries.count + 1), data: [UInt8(run.term)]))
            }
        }
        return entries
    }

    @Test func singleNodeCountsItsOwnEntryOnlyOnceDurable() {
        let node = RaftNode(config: RaftConfig(id: 1, peers: [1]))
        for _ in 0..<20 where node.status.role != .leader { node.tick() }
        #expect(node.status.role == .leader)
        let first = node.ready()
        #expect(first.entries.map(\.kind) == [.noop], "the new leader's no-op is to be persisted")
        #expect(first.hardState == HardState(term: 1, vote: 1, commit: 0), "nothing is committed before the fsync")
        #expect(first.softState == SoftState(leader: 1, role: .leader, term: 1))
        #expect(first.committedEntries.isEmpty)
        node.advance(first)
        // Now durable, the no-op is a quorum of one: committed, then handed out to apply.
        let second = node.ready()
        #expect(second.hardState?.commit == 1)
        #expect(second.committedEntries.map(\.index) == [1])
        node.advance(second)
        #expect(node.status.appliedIndex == 1)
        #expect(!node.hasReady)

        #expect(node.propose(batch: [[7], [8]]) == .accepted(firstIndex: 2, term: 1))
        let third = node.ready()
        #expect(third.entries.map(\.data) == [[7], [8]])
        #expect(third.committedEntries.isEmpty)
        node.advance(third)
        let fourth = node.ready()
        #expect(fourth.committedEntries.map(\.data) == [[7], [8]])
        node.advance(fourth)
    }

    @Test func votesWaitForPersistenceWhileLeaderAppendsDoNot() {
        let peers: [UInt64] = [1, 2, 3]
        let node = RaftNode(config: RaftConfig(id: 1, peers: peers, preVote: false))
        for _ in 0..<20 where node.status.role != .candidate { node.tick() }
        let campaign = node.ready()
        #expect(campaign.hardState == HardState(term: 1, vote: 1, commit: 0))
        #expect(campaign.messages.isEmpty, "vote requests must wait for the vote to be durable")
        #expect(campaign.messagesAfterPersist.map(\.type) == [.vote, .vote])
        #expect(campaign.messagesAfterPersist.map(\.to) == [2, 3], "peers in ascending order")
        node.advance(campaign)
        node.step(Message(type: .voteResponse, from: 2, to: 1, term: 1))
        #expect(node.status.role == .leader)
        let leading = node.ready()
        #expect(leading.entries.map(\.kind) == [.noop])
        #expect(leading.messages.map(\.type) == [.append, .append], "appends go out in parallel with the leader's fsync")
        #expect(leading.messagesAfterPersist.isEmpty)
        node.advance(leading)

        // A follower's acknowledgement is sent only after what it acknowledges is durable.
        let follower = RaftNode(config: RaftConfig(id: 2, peers: peers, preVote: false))
        follower.step(leading.messages[0])
        let answer = follower.ready()
        #expect(answer.entries.count == 1)
        #expect(answer.messages.isEmpty)
        #expect(answer.messagesAfterPersist.map(\.type) == [.appendResponse])
        #expect(answer.messagesAfterPersist.first?.index == 1)
    }

    @Test func fastBacktrackingSkipsWholeTerms() {
        let peers: [UInt64] = [1, 2, 3]
        let leaderLog = Self.log([(1, 3), (4, 50)])
        let leader = RaftNode(config: RaftConfig(id: 1, peers: peers, randomSeed: 1),
                              hardState: HardState(term: 4, commit: 3), entries: leaderLog)
        let voter = RaftNode(config: RaftConfig(id: 3, peers: peers, randomSeed: 3),
                             hardState: HardState(term: 4, commit: 3), entries: leaderLog)
        // Follower 2 holds 100 entries of terms 2 and 3 the leader never had.
        let follower = RaftNode(config: RaftConfig(id: 2, peers: peers, randomSeed: 2),
                                hardState: HardState(term: 3, commit: 3), entries: Self.log([(1, 3), (2, 50), (3, 50)]))
        let pump = Pump([leader, follower, voter])
        pump.elect(1)
        #expect(leader.propose([99]) == .accepted(firstIndex: 55, term: 5))
        pump.run()
        let rejections = pump.delivered.filter { $0.type == .appendResponse && $0.reject && $0.from == 2 }
        // One rejection names term 3 (unknown to the leader, so it jumps to the term's start at
        // 54), the next names term 2 (jump to 4); the one after that matches.
        #expect(rejections.count <= 2, "\(rejections.count) rejections:\n\(pump.transcript)")
        #expect(follower.status.lastIndex == 55)
        #expect((1...55).allSatisfy { follower.entry(at: $0) == leader.entry(at: $0) }, "follower's log differs from the leader's")
        pump.heartbeat(from: 1)
        #expect(follower.status.commitIndex == 55)
    }

    @Test func shortFollowerLogIsFoundInOneRoundTrip() {
        let peers: [UInt64] = [1, 2, 3]
        let leaderLog = Self.log([(1, 40)])
        let leader = RaftNode(config: RaftConfig(id: 1, peers: peers), hardState: HardState(term: 1, commit: 40), entries: leaderLog)
        let voter = RaftNode(config: RaftConfig(id: 3, peers: peers), hardState: HardState(term: 1, commit: 40), entries: leaderLog)
        let follower = RaftNode(config: RaftConfig(id: 2, peers: peers), hardState: HardState(term: 1, commit: 5), entries: Self.log([(1, 5)]))
        let pump = Pump([leader, follower, voter])
        pump.elect(1)
        let rejections = pump.delivered.filter { $0.type == .appendResponse && $0.reject && $0.from == 2 }
        #expect(rejections.count == 1, "\(pump.transcript)")
        #expect(rejections.first?.rejectTerm == 0 && rejections.first?.rejectHint == 6)
        #expect(follower.status.lastIndex == leader.status.lastIndex)
    }

    @Test func appendsAreBatchedByBytesAndPipelinedUpToTheWindow() {
        let peers: [UInt64] = [1, 2, 3]
        // Each 100-byte entry weighs 124 bytes (`Entry.byteSize`): two fit in 250 bytes.
        let config = { (id: UInt64) in
            RaftConfig(id: id, peers: peers, maxInflightAppends: 3, maxAppendBytes: 250, randomSeed: id)
        }
        let leader = RaftNode(config: config(1))
        let pump = Pump([leader, RaftNode(config: config(2)), RaftNode(config: config(3))])
        pump.elect(1)  // followers acknowledged the no-op: both in replicate mode
        _ = leader.propose(batch: Array(repeating: [UInt8](repeating: 1, count: 100), count: 10))
        let ready = leader.ready()
        let toFollower2 = ready.messages.filter { $0.to == 2 && $0.type == .append }
        #expect(toFollower2.map(\.entries.count) == [2, 2, 2], "three appends of two entries, then the window is full: \(toFollower2)")
        leader.advance(ready)
        for message in ready.messages { pump.nodes[message.to]!.step(message) }
        pump.run()
        #expect(leader.status.commitIndex == 11)
        pump.heartbeat(from: 1)
        #expect(pump.nodes[2]!.status.commitIndex == 11, "the rest follows as acknowledgements free the window: \(leader.status)\n\(pump.transcript)")
    }

    @Test func messagesWithoutSenderStaleTermsOrOtherAddresseesAreIgnored() {
        let node = RaftNode(config: RaftConfig(id: 1, peers: [1, 2, 3]), hardState: HardState(term: 5), entries: [])
        let before = node.status
        node.step(Message(type: .append, from: 0, to: 1, term: 7))  // no sender
        node.step(Message(type: .append, from: 1, to: 1, term: 7))  // from ourselves
        node.step(Message(type: .heartbeat, from: 2, to: 3, term: 7))  // not for us
        node.step(Message(type: .vote, from: 2, to: 1, term: 4, logTerm: 9, index: 9))  // stale term
        node.step(Message(type: .appendResponse, from: 2, to: 1, term: 5, index: 3))  // not a leader
        #expect(node.status == before)
        #expect(!node.hasReady)
        // A stale leader's heartbeat is answered with our term, so it learns to step down.
        node.step(Message(type: .heartbeat, from: 2, to: 1, term: 3))
        let ready = node.ready()
        #expect(ready.messagesAfterPersist.map(\.term) == [5])
        node.advance(ready)
    }

    @Test func restartRestoresDurableStateAndReappliesCommittedEntries() {
        let entries = Self.log([(1, 2), (2, 3)])
        let node = RaftNode(config: RaftConfig(id: 2, peers: [1, 2, 3]),
                            hardState: HardState(term: 3, vote: 1, commit: 4), entries: entries)
        #expect(node.status.term == 3)
        #expect(node.status.commitIndex == 4)
        #expect(node.status.lastIndex == 5)
        #expect(node.status.appliedIndex == 0)
        let ready = node.ready()
        #expect(ready.hardState == nil, "nothing changed since the restore")
        #expect(ready.entries.isEmpty, "the restored log is already durable")
        #expect(ready.committedEntries.map(\.index) == [1, 2, 3, 4])
        node.advance(ready)
        #expect(node.status.appliedIndex == 4)
        // It already voted in term 3 for node 1: no second vote in that term.
        node.step(Message(type: .vote, from: 3, to: 2, term: 3, logTerm: 9, index: 9))
        let answer = node.ready()
        #expect(answer.messagesAfterPersist.first?.reject == true)
        node.advance(answer)
    }

    /// The leader reports the lowest match among live followers (for compaction that spares
    /// them a snapshot); a follower it has not heard from for an election timeout no longer counts.
    @Test func slowestLiveFollowerMatchIgnoresSilentFollowers() {
        let peers: [UInt64] = [1, 2, 3]
        let leader = RaftNode(config: RaftConfig(id: 1, peers: peers, randomSeed: 1))
        let pump = Pump([leader, RaftNode(config: RaftConfig(id: 2, peers: peers, randomSeed: 2)),
                         RaftNode(config: RaftConfig(id: 3, peers: peers, randomSeed: 3))])
        pump.elect(1)
        #expect(pump.nodes[2]!.slowestLiveFollowerMatch == nil, "a follower reports nothing")
        let caughtUp = leader.status.lastIndex
        #expect(leader.slowestLiveFollowerMatch == caughtUp)

        // Node 3 stops receiving appends but still answers heartbeats: live, and behind.
        pump.drop = { $0.to == 3 && $0.type == .append }
        for i in 0..<5 {
            _ = leader.propose([UInt8(i)])
            pump.run()
        }
        #expect(leader.status.commitIndex == caughtUp + 5)
        pump.heartbeat(from: 1)
        #expect(leader.slowestLiveFollowerMatch == caughtUp, "node 3 still matches only up to \(caughtUp)")

        // Node 3 goes silent: after an election timeout it no longer holds compaction back.
        pump.drop = { $0.to == 3 || $0.from == 3 }
        for _ in 0..<10 { pump.heartbeat(from: 1) }
        #expect(leader.status.role == .leader)
        #expect(leader.slowestLiveFollowerMatch == caughtUp + 5)
    }
}

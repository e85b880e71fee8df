import Raft
import Testing

/// ReadIndex and lease reads on hand-driven nodes: batching into heartbeat rounds, the
/// own-term-commit rule, refusals when not (or no longer) leading, and the lease's clock.
@Suite struct ReadIndexTests {
    /// A reliable in-order pump that keeps every node's answered reads, and holds back the
    /// messages `hold` returns true for (in `held`) instead of delivering them.
    final class Cluster {
        let nodes: [UInt64: RaftNode]
        private(set) var reads: [UInt64: [ReadState]] = [:]
        private(set) var heartbeatsSent = 0
        var held: [Message] = []
        var hold: (Message) -> Bool = { _ in false }

        init(count: Int, lease: ReadLease? = nil) {
            let ids = (1...UInt64(count)).map { $0 }
            var nodes: [UInt64: RaftNode] = [:]
            for id in ids {
                nodes[id] = RaftNode(config: RaftConfig(id: id, peers: ids, electionTicks: 10, randomSeed: id, readLease: lease))
            }
            self.nodes = nodes
        }

        func node(_ id: UInt64) -> RaftNode { nodes[id]! }

        func run() {
            for _ in 0..<1000 {
                var outgoing: [Message] = []
                for id in nodes.keys.sorted() where nodes[id]!.hasReady {
                    let ready = nodes[id]!.ready()
                    reads[id, default: []] += ready.readStates
                    outgoing += ready.messages + ready.messagesAfterPersist
                    nodes[id]!.advance(ready)
                }
                if outgoing.isEmpty { return }
                for message in outgoing {
                    if message.type == .heartbeat { heartbeatsSent += 1 }
                    if hold(message) {
                        held.append(message)
                    } else {
                        nodes[message.to]?.step(message)
                    }
                }
            }
            Issue.record("cluster did not settle")
        }

        /// Delivers what was held (and what that causes), holding nothing more.
        func release() {
            hold = { _ in false }
            let messages = held
            held = []
            for message in messages { nodes[message.to]?.step(message) }
            run()
        }

        /// With leases, a node that just started votes only after an election timeout (it may
        /// have acknowledged a lease leader before it restarted): let that pass, in silence.
        func passStartupVoteHold() {
            hold = { _ in true }
            for _ in 0..<10 {
                for id in nodes.keys.sorted() { nodes[id]!.tick() }
                run()
            }
            held = []
            hold = { _ in false }
        }

        /// Ticks node 1 until it leads and has committed its no-op.
        func electOne() {
            let leader = node(1)
            for _ in 0..<100 where leader.status.role != .leader {
                leader.tick()
                run()
            }
            #expect(leader.status.role == .leader)
        }

        func answers(_ id: UInt64) -> [UInt64: ReadOutcome] {
            Dictionary(uniqueKeysWithValues: (reads[id] ?? []).map { ($0.id, $0.outcome) })
        }
    }

    @Test func readsArrivingDuringARoundShareTheNextOne() {
        let cluster = Cluster(count: 3)
        cluster.electOne()
        let leader = cluster.node(1)
        let commit = leader.status.commitIndex
        let term = leader.status.term
        cluster.hold = { $0.type == .heartbeatResponse }
        let before = cluster.heartbeatsSent
        leader.requestRead(ids: [1])
        cluster.run()
        #expect(cluster.heartbeatsSent == before + 2, "one round (a heartbeat to each follower) for the first read")
        leader.requestRead(ids: [2])
        leader.requestRead(ids: [3, 4])
        cluster.run()
        #expect(cluster.heartbeatsSent == before + 2, "reads arriving while a round is in flight wait for the next")
        #expect(cluster.answers(1).isEmpty)
        // The first round's answers release read 1 and send one round for 2, 3 and 4.
        cluster.hold = { $0.type == .heartbeatResponse && $0.readRound > 1_000_000 }
        cluster.release()
        let answers = cluster.answers(1)
        for id: UInt64 in 1...4 {
            #expect(answers[id] == .ready(index: commit, term: term), "read \(id): \(String(describing: answers[id]))")
        }
        #expect(cluster.heartbeatsSent == before + 4, "four reads cost two rounds")
    }

    @Test func oneFollowerOfThreeIsEnoughToConfirm() {
        let cluster = Cluster(count: 3)
        cluster.electOne()
        cluster.hold = { $0.to == 3 || $0.from == 3 }
        cluster.node(1).requestRead(ids: [7])
        cluster.run()
        #expect(cluster.answers(1)[7] == .ready(index: cluster.node(1).status.commitIndex, term: cluster.node(1).status.term))
    }

    @Test func aNewLeaderHoldsReadsUntilAnEntryOfItsTermCommits() {
        let cluster = Cluster(count: 3)
        // Votes go through; the append carrying the new leader's no-op is held.
        cluster.hold = { $0.type == .append }
        let leader = cluster.node(1)
        for _ in 0..<100 where leader.status.role != .leader {
            leader.tick()
            cluster.run()
        }
        #expect(leader.status.role == .leader && leader.status.commitIndex == 0)
        let before = cluster.heartbeatsSent
        leader.requestRead(ids: [1])
        cluster.run()
        #expect(cluster.answers(1).isEmpty, "answered before its own term committed")
        #expect(cluster.heartbeatsSent == before, "no round before the own-term commit")
        cluster.release()
        #expect(leader.status.commitIndex == 1)
        #expect(cluster.answers(1)[1] == .ready(index: 1, term: leader.status.term))
    }

    @Test func steppingDownFailsWaitingReadsAndFollowersRefuse() {
        let cluster = Cluster(count: 3)
        cluster.electOne()
        let leader = cluster.node(1)
        cluster.hold = { $0.type == .heartbeatResponse }
        leader.requestRead(ids: [1, 2])
        cluster.run()
        #expect(cluster.answers(1).isEmpty)
        // A newer term's leader (node 2) appends: node 1 steps down.
        leader.step(Message(type: .append, from: 2, to: 1, term: leader.status.term + 1,
                            logTerm: leader.status.term, index: leader.status.lastIndex, commit: leader.status.commitIndex))
        cluster.hold = { _ in true }
        cluster.run()
        #expect(cluster.answers(1)[1] == .notLeader(leader: 2))
        #expect(cluster.answers(1)[2] == .notLeader(leader: 2))
        // The confirmations arriving late change nothing.
        cluster.release()
        #expect(cluster.reads[1]?.count == 2)
        cluster.node(3).requestRead(ids: [9])
        cluster.run()
        #expect(cluster.answers(3)[9] == .notLeader(leader: 1), "a follower names the leader it knows")
    }

    @Test func aSingleNodeAnswersAtOnce() {
        let cluster = Cluster(count: 1)
        cluster.electOne()
        cluster.node(1).requestRead(ids: [1])
        cluster.run()
        #expect(cluster.answers(1)[1] == .ready(index: 1, term: cluster.node(1).status.term))
        #expect(cluster.heartbeatsSent == 0)
    }

    static let tick: UInt64 = 10_000_000  // 10 ms

    @Test func aLeaseAnswersWithoutARoundUntilItExpires() {
        let lease = ReadLease.longest(electionTicks: 10, tickNanos: Self.tick, driftBound: 0.1)
        #expect(lease.durationNanos == 72_000_000, "(10 - 2) ticks x 10 ms x 0.9")
        let cluster = Cluster(count: 3, lease: lease)
        let leader = cluster.node(1)
        cluster.passStartupVoteHold()
        leader.observeClock(nanos: 1_000_000_000)
        cluster.electOne()
        leader.requestRead(ids: [1])
        cluster.run()
        #expect(cluster.answers(1)[1] != nil)
        // Confirmed rounds were sent at t = 1 s: the lease runs to 1.072 s.
        let before = cluster.heartbeatsSent
        leader.observeClock(nanos: 1_071_000_000)
        leader.requestRead(ids: [2])
        cluster.hold = { _ in true }
        cluster.run()
        #expect(cluster.answers(1)[2] == .ready(index: leader.status.commitIndex, term: leader.status.term))
        #expect(cluster.heartbeatsSent == before, "a lease read needs no round")
        // Past the lease (a pause, say): a round again, and no answer until it is confirmed.
        leader.observeClock(nanos: 1_072_000_000)
        leader.requestRead(ids: [3])
        cluster.run()
        #expect(cluster.answers(1)[3] == nil)
        #expect(cluster.heartbeatsSent == before + 2)
        cluster.release()
        #expect(cluster.answers(1)[3] != nil)
        // That round was sent at 1.072 s: the lease now runs to 1.144 s.
        leader.observeClock(nanos: 1_143_000_000)
        leader.requestRead(ids: [4])
        cluster.run()
        #expect(cluster.answers(1)[4] != nil)
    }

    @Test func aTransferEndsLeaseReadsForTheTerm() {
        let lease = ReadLease.longest(electionTicks: 10, tickNanos: Self.tick, driftBound: 0.1)
        let cluster = Cluster(count: 3, lease: lease)
        let leader = cluster.node(1)
        cluster.passStartupVoteHold()
        cluster.electOne()
        leader.requestRead(ids: [1])
        cluster.run()
        // Hold the handover's timeoutNow so node 1 stays leader, then let the transfer lapse.
        cluster.hold = { $0.type == .timeoutNow }
        #expect(leader.transferLeadership(to: 2))
        cluster.run()
        for _ in 0..<10 {
            leader.tick()
            cluster.run()
        }
        #expect(leader.status.role == .leader)
        cluster.hold = { _ in true }
        let before = cluster.heartbeatsSent
        leader.requestRead(ids: [2])
        cluster.run()
        #expect(cluster.answers(1)[2] == nil, "answered from a lease after a transfer began")
        #expect(cluster.heartbeatsSent == before + 2)
    }

    @Test func aLeaseThatCouldOutliveAnElectionIsRefused() {
        let safe = ReadLease.longest(electionTicks: 30, tickNanos: Self.tick, driftBound: 0.1)
        #expect(safe.problem(electionTicks: 30, checkQuorum: true) == nil)
        var tooLong = safe
        tooLong.durationNanos += 1
        #expect(tooLong.problem(electionTicks: 30, checkQuorum: true)?.contains("could outlive an election") == true)
        #expect(safe.problem(electionTicks: 30, checkQuorum: false)?.contains("check quorum") == true)
        var drifty = safe
        drifty.driftBound = 0.9
        #expect(drifty.problem(electionTicks: 30, checkQuorum: true) != nil)
        #expect(safe.problem(electionTicks: 2, checkQuorum: true) != nil)
    }
}

import Raft
import Testing

/// Handing leadership over (as raftd does before a clean shutdown): the transferee is brought
/// up to date, campaigns at once with `timeoutNow`, and wins in the next term — despite the
/// other followers' leader lease — while the old leader refuses proposals during the handover.
@Suite struct LeadershipTransferTests {
    /// A reliable, in-order pump that can hold back every message to or from some nodes.
    final class Network {
        let nodes: [UInt64: RaftNode]
        var cut: Set<UInt64> = []
        private(set) var delivered: [Message] = []

        init(count: Int, electionTicks: Int = 10) {
            let peers = (1...UInt64(count)).map { $0 }
            var nodes: [UInt64: RaftNode] = [:]
            for id in peers {
                nodes[id] = RaftNode(config: RaftConfig(id: id, peers: peers, electionTicks: electionTicks, randomSeed: id))
            }
            self.nodes = nodes
        }

        func run(maxRounds: Int = 1000) {
            for _ in 0..<maxRounds {
                var outgoing: [Message] = []
                for id in nodes.keys.sorted() where nodes[id]!.hasReady {
                    let ready = nodes[id]!.ready()
                    outgoing += ready.messages + ready.messagesAfterPersist
                    nodes[id]!.advance(ready)
                }
                let deliverable = outgoing.filter { !cut.contains($0.from) && !cut.contains($0.to) }
                if deliverable.isEmpty { return }
                for message in deliverable {
                    delivered.append(message)
                    nodes[message.to]?.step(message)
                }
            }
        }

        func tick(_ ids: [UInt64]? = nil) {
            for id in ids ?? nodes.keys.sorted() { nodes[id]!.tick() }
            run()
        }

        func elect(_ id: UInt64) {
            for _ in 0..<100 where nodes[id]!.status.role != .leader {
                nodes[id]!.tick()
                run()
            }
        }

        var transcript: String { delivered.suffix(40).map(\.description).joined(separator: "\n") }
    }

    @Test func upToDateFollowerTakesOverInTheNextTerm() {
        let net = Network(count: 3)
        net.elect(1)
        let old = net.nodes[1]!
        #expect(old.status.role == .leader)
        _ = old.propose(batch: [[1], [2], [3]])
        net.run()
        let term = old.status.term
        let committed = old.status.commitIndex

        #expect(old.transferLeadership(to: 3))
        if case .notLeader(let hint) = old.propose([9]) {
            #expect(hint == 3, "proposals during the handover point at the transferee")
        } else {
            Issue.record("the old leader accepted a proposal during the handover")
        }
        net.run()
        let new = net.nodes[3]!
        #expect(new.status.role == .leader, "\(net.transcript)")
        #expect(new.status.term == term + 1)
        #expect(old.status.role == .follower && old.status.leader == 3)
        #expect(net.nodes[2]!.status.leader == 3, "the other follower set its lease aside for the transfer vote")

        // The new leader commits, and nothing committed before was lost.
        guard case .accepted(let index, _) = new.propose([7]) else { Issue.record("new leader refused"); return }
        net.run()
        net.tick([3])  // followers learn the commit index from the next heartbeat
        for node in net.nodes.values {
            #expect(node.status.commitIndex >= index)
            #expect(node.status.commitIndex > committed)
        }
    }

    @Test func laggingTransfereeIsCaughtUpBeforeItCampaigns() {
        let net = Network(count: 3)
        net.elect(1)
        let old = net.nodes[1]!
        net.cut = [3]
        for value in UInt8(1)...5 { _ = old.propose([value]) }
        net.run()
        #expect(net.nodes[3]!.status.lastIndex < old.status.lastIndex)
        net.cut = []
        #expect(old.transferLeadership(to: 3))
        net.run()
        for _ in 0..<3 { net.tick([1]) }  // heartbeats, in case the catch-up needs a probe
        let new = net.nodes[3]!
        #expect(new.status.role == .leader, "\(net.transcript)")
        #expect(new.status.lastIndex >= 6, "the transferee won with a complete log")
    }

    @Test func defaultTargetIsTheMostUpToDateFollower() {
        let net = Network(count: 3)
        net.elect(1)
        net.cut = [2]
        _ = net.nodes[1]!.propose([1])
        net.run()
        net.cut = []
        #expect(net.nodes[1]!.transferLeadership())
        net.run()
        #expect(net.nodes[3]!.status.role == .leader, "\(net.transcript)")
    }

    @Test func handoverGivesUpAfterAnElectionTimeout() {
        let net = Network(count: 3, electionTicks: 10)
        net.elect(1)
        let old = net.nodes[1]!
        net.cut = [3]
        #expect(old.transferLeadership(to: 3))
        if case .accepted = old.propose([1]) { Issue.record("accepted a proposal during the handover") }
        for _ in 0..<10 { net.tick([1, 2]) }
        #expect(old.status.role == .leader)
        guard case .accepted = old.propose([2]) else {
            Issue.record("the leader did not resume after the handover timed out")
            return
        }
    }

    @Test func onlyALeaderCanHandOver() {
        let net = Network(count: 3)
        net.elect(1)
        #expect(!net.nodes[2]!.transferLeadership(to: 3))
        #expect(!net.nodes[1]!.transferLeadership(to: 1))
        #expect(!net.nodes[1]!.transferLeadership(to: 9))
    }
}

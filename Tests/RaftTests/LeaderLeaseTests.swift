import Raft
import Testing

/// Pre-vote and check quorum: partitioned nodes cannot disrupt a healthy leader, an isolated leader
/// steps down, and non-leaders redirect clients.
@Suite struct LeaderLeaseTests {
    @Test func rejoiningPartitionedFollowerDoesNotDisruptLeader() {
        let cluster = SimulatedCluster(seed: 501, nodeCount: 3)
        #expect(cluster.one(command(1), expectedNodes: 3) != nil, "\(cluster.report())")
        let leader = cluster.awaitOneLeader()!
        let term = cluster.node(leader)!.status.term
        let follower = cluster.ids.first { $0 != leader }!
        cluster.disconnect(follower)
        cluster.run(ticks: 100)  // many election timeouts alone
        // Pre-vote: it never won a pre-election, so it never bumped its term.
        #expect(cluster.node(follower)!.status.term == term, "isolated follower bumped its term\n\(cluster.report())")
        cluster.reconnect(follower)
        cluster.run(ticks: 30)
        #expect(cluster.node(leader)!.status.role == .leader, "rejoining follower deposed the leader\n\(cluster.report())")
        #expect(cluster.agreedTerm == term, "rejoining follower changed the term\n\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func rejoiningNodeWithStaleLogNeverLeadsWithoutPreVote() {
        // Without pre-vote an isolated node bumps its term on every timeout; when it returns, its
        // higher term forces an election, but its stale log must lose it.
        let cluster = SimulatedCluster(seed: 502, nodeCount: 5, preVote: false)
        #expect(cluster.one(command(1), expectedNodes: 5) != nil, "\(cluster.report())")
        let leader = cluster.awaitOneLeader()!
        let isolated = cluster.ids.first { $0 != leader }!
        cluster.disconnect(isolated)
        for value in 2...4 {
            #expect(cluster.one(command(value), expectedNodes: 4) != nil, "\(cluster.report())")
        }
        cluster.run(ticks: 60)
        #expect(cluster.node(isolated)!.status.term > cluster.node(leader)!.status.term, "\(cluster.report())")
        cluster.reconnect(isolated)
        cluster.run(ticks: 40)
        let newLeader = cluster.awaitOneLeader()
        #expect(newLeader != nil && newLeader != isolated, "the node with a stale log won leadership\n\(cluster.report())")
        #expect(cluster.one(command(5), expectedNodes: 5) != nil, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func isolatedLeaderStepsDownWithinElectionTimeout() {
        let cluster = SimulatedCluster(seed: 503, nodeCount: 5)
        #expect(cluster.one(command(1), expectedNodes: 5) != nil, "\(cluster.report())")
        let leader = cluster.awaitOneLeader()!
        cluster.disconnect(leader)
        let stepTick = cluster.tick
        let steppedDown = cluster.run(upTo: 10 + 1) { cluster.node(leader)!.status.role != .leader }
        #expect(steppedDown, "isolated leader still leads \(cluster.tick - stepTick) ticks later\n\(cluster.report())")
        #expect(cluster.node(leader)!.status.leader == 0, "a deposed leader should not name a leader")
        if case .notLeader(let named) = cluster.node(leader)!.propose(command(2)) {
            #expect(named == 0)
        } else {
            Issue.record("an isolated former leader accepted a proposal")
        }
        let newLeader = cluster.awaitOneLeader()
        #expect(newLeader != nil && newLeader != leader, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func proposalAtFollowerNamesTheLeader() {
        let cluster = SimulatedCluster(seed: 504, nodeCount: 3)
        #expect(cluster.one(command(1), expectedNodes: 3) != nil, "\(cluster.report())")
        let leader = cluster.awaitOneLeader()!
        for id in cluster.ids where id != leader {
            #expect(cluster.node(id)!.propose(command(2)) == .notLeader(leader: leader))
            #expect(cluster.node(id)!.propose(batch: [command(3), command(4)]) == .notLeader(leader: leader))
        }
        // A freshly started node knows no leader yet.
        let fresh = RaftNode(config: RaftConfig(id: 1, peers: [1, 2, 3]))
        #expect(fresh.propose(command(5)) == .notLeader(leader: 0))
    }
}

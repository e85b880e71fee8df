import Raft
import Testing

/// Followers that see their leader's connection reset campaign (with a pre-vote) within a few
/// ticks instead of a whole election timeout; a reset while the leader lives changes nothing.
@Suite struct LeaderLinkLossTests {
    static let seeds: [UInt64] = Array(1...20)
    static let electionTicks = 10

    /// Ticks from the leader's crash until another node leads, or nil past `limit`.
    static func ticksToNewLeader(seed: UInt64, resets: Bool, limit: Int = 200) -> (ticks: Int?, report: String) {
        let cluster = SimulatedCluster(seed: seed, nodeCount: [3, 5][Int(seed % 2)], electionTicks: electionTicks)
        cluster.resetsOnCrash = resets
        guard let first = cluster.awaitOneLeader(), cluster.one([1], expectedNodes: cluster.ids.count) != nil else {
            return (nil, "no leader before the crash\n\(cluster.report())")
        }
        cluster.crash(first)
        var ticks = 0
        while ticks < limit, cluster.leader == nil || cluster.leader == first {
            cluster.runOneTick()
            ticks += 1
        }
        guard cluster.violations.isEmpty else { return (nil, cluster.report("safety violation")) }
        guard ticks < limit, cluster.one([2], expectedNodes: cluster.ids.count - 1) != nil else {
            return (nil, cluster.report("no new leader committing"))
        }
        return (ticks, cluster.report())
    }

    @Test(arguments: seeds)
    func aResetLeaderIsReplacedWithinHalfAnElectionTimeout(seed: UInt64) {
        let withResets = Self.ticksToNewLeader(seed: seed, resets: true)
        let ticks = withResets.ticks
        // A random head start of at most electionTicks / 2, then a pre-vote and a vote round.
        #expect((ticks ?? .max) <= Self.electionTicks / 2 + 3, "seed \(seed): \(ticks ?? -1) ticks\n\(withResets.report)")
        // Without the reset the followers wait out at least one election timeout.
        let without = Self.ticksToNewLeader(seed: seed, resets: false)
        #expect((without.ticks ?? .max) >= Self.electionTicks - 1, "seed \(seed)\n\(without.report)")
    }

    @Test(arguments: seeds)
    func aSpuriousResetWhileTheLeaderLivesChangesNothing(seed: UInt64) {
        let cluster = SimulatedCluster(seed: seed, nodeCount: [3, 5][Int(seed % 2)], electionTicks: Self.electionTicks)
        cluster.resetsOnCrash = true
        guard let leader = cluster.awaitOneLeader(), cluster.one([1], expectedNodes: cluster.ids.count) != nil else {
            Issue.record("no leader\n\(cluster.report())")
            return
        }
        let term = cluster.node(leader)!.status.term
        let follower = cluster.ids.first { $0 != leader }!
        cluster.resetConnection(of: follower, to: leader)
        cluster.run(ticks: 3 * Self.electionTicks)
        #expect(cluster.leader == leader, "seed \(seed): leadership moved\n\(cluster.report())")
        #expect(cluster.ids.allSatisfy { cluster.node($0)!.status.term == term }, "seed \(seed): the term moved\n\(cluster.report())")
        #expect(cluster.node(follower)!.status.role == .follower && cluster.node(follower)!.status.leader == leader)
        #expect(cluster.one([2], expectedNodes: cluster.ids.count) != nil, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func onlyTheLeadersLinkCounts() {
        let node = RaftNode(config: RaftConfig(id: 1, peers: [1, 2, 3], electionTicks: 10, randomSeed: 3))
        node.step(Message(type: .heartbeat, from: 2, to: 1, term: 4))
        _ = node.ready()
        node.peerConnectionLost(3)  // not our leader
        #expect(node.status.leader == 2)
        node.peerConnectionLost(2)
        #expect(node.status.leader == 0)
        var ticks = 0
        while node.status.role == .follower && ticks < 100 {
            node.tick()
            ticks += 1
        }
        #expect(node.status.role == .preCandidate && ticks <= 5, "campaigned after \(ticks) ticks")
    }
}

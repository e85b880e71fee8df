import Raft
import Testing

/// A node without its state machine (raftd whose kvd is gone) neither keeps leading nor rushes to
/// campaign, and a handover only goes to a live follower, preferably one with its state machine.
@Suite struct StateMachineAttachmentTests {
    typealias Network = LeadershipTransferTests.Network

    @Test func detachedLeaderHandsOverToAnAttachedFollower() {
        let net = Network(count: 3)
        net.elect(1)
        net.nodes[2]!.setStateMachineAttached(false)
        net.tick([1])  // node 2 reports it on its next answer
        net.nodes[1]!.setStateMachineAttached(false)
        for _ in 0..<5 where net.nodes[3]!.status.role != .leader { net.tick([1]) }
        #expect(net.nodes[3]!.status.role == .leader, "\(net.transcript)")
        #expect(net.nodes[1]!.status.role == .follower && net.nodes[1]!.status.leader == 3)
    }

    @Test func detachedLeaderWithoutAnAttachedFollowerLeadsOn() {
        let net = Network(count: 3)
        net.elect(1)
        for id: UInt64 in [2, 3] { net.nodes[id]!.setStateMachineAttached(false) }
        net.tick([1])
        net.nodes[1]!.setStateMachineAttached(false)
        let term = net.nodes[1]!.status.term
        for _ in 0..<30 { net.tick() }
        #expect(net.nodes[1]!.status.role == .leader && net.nodes[1]!.status.term == term, "\(net.transcript)")
        // Once a follower's state machine returns, leadership goes there.
        net.nodes[2]!.setStateMachineAttached(true)
        for _ in 0..<5 where net.nodes[2]!.status.role != .leader { net.tick([1]) }
        #expect(net.nodes[2]!.status.role == .leader, "\(net.transcript)")
    }

    @Test func reattachedLeaderKeepsLeading() {
        let net = Network(count: 3)
        net.elect(1)
        let leader = net.nodes[1]!
        leader.setStateMachineAttached(false)
        net.tick([1])  // a reconnect well within two heartbeats
        leader.setStateMachineAttached(true)
        for _ in 0..<10 { net.tick([1]) }
        #expect(leader.status.role == .leader, "\(net.transcript)")
    }

    @Test func detachedNodeDefersItsCampaignABoundedNumberOfTimes() {
        let electionTicks = 10
        let node = RaftNode(config: RaftConfig(id: 1, peers: [1], electionTicks: electionTicks, randomSeed: 7))
        node.setStateMachineAttached(false)
        var ticks = 0
        while node.status.role != .leader && ticks < 1000 {
            node.tick()
            ticks += 1
        }
        // Each randomized timeout lies in [electionTicks, 2 * electionTicks).
        let deferred = RaftNode.maxDeferredElections
        #expect(ticks >= (deferred + 1) * electionTicks, "campaigned after \(ticks) ticks")
        #expect(ticks < (deferred + 1) * 2 * electionTicks, "took \(ticks) ticks")

        let attached = RaftNode(config: RaftConfig(id: 1, peers: [1], electionTicks: electionTicks, randomSeed: 7))
        var attachedTicks = 0
        while attached.status.role != .leader && attachedTicks < 1000 {
            attached.tick()
            attachedTicks += 1
        }
        #expect(attachedTicks < 2 * electionTicks)
    }

    @Test func gracefulHandoverSkipsADeadFollower() {
        let net = Network(count: 3)
        net.elect(1)
        let leader = net.nodes[1]!
        net.cut = [3]
        _ = leader.propose([1])
        net.run()  // node 2 now holds more log than node 3
        net.cut = [2]  // and dies; node 3 catches up, so both have the leader's whole log
        for _ in 0..<12 { net.tick([1, 3]) }
        #expect(leader.status.role == .leader)
        #expect(leader.transferLeadership())
        net.run()
        #expect(net.nodes[3]!.status.role == .leader, "handed to the dead node?\n\(net.transcript)")
    }

    @Test func gracefulHandoverPrefersAFollowerWithItsStateMachine() {
        let net = Network(count: 3)
        net.elect(1)
        net.nodes[3]!.setStateMachineAttached(false)
        net.cut = [2]
        _ = net.nodes[1]!.propose([1])
        net.run()  // node 3 holds more log, but cannot serve
        net.cut = []
        net.tick([1])
        #expect(net.nodes[1]!.transferLeadership())
        net.run()
        for _ in 0..<3 where net.nodes[2]!.status.role != .leader { net.tick([1]) }
        #expect(net.nodes[2]!.status.role == .leader, "\(net.transcript)")
    }

    // MARK: Seeded simulation

    static let seeds: [UInt64] = Array(1...20)

    /// The leader's state machine detaches: within a few heartbeats plus a handover, an attached
    /// node leads, and the cluster commits again.
    @Test(arguments: seeds)
    func simulatedDetachedLeaderIsReplaced(seed: UInt64) {
        let cluster = SimulatedCluster(seed: seed, nodeCount: [3, 5][Int(seed % 2)])
        guard let first = cluster.awaitOneLeader() else { Issue.record("no leader\n\(cluster.report())"); return }
        #expect(cluster.one([1], expectedNodes: cluster.ids.count) != nil, "\(cluster.report())")
        cluster.setStateMachineAttached(first, false)
        let replaced = cluster.run(upTo: 40) {
            guard let leader = cluster.leader else { return false }
            return leader != first && !cluster.stateMachineDetached.contains(leader)
        }
        #expect(replaced, "seed \(seed): leader \(first) without its state machine still leads\n\(cluster.report())")
        #expect(cluster.one([2], expectedNodes: cluster.ids.count) != nil, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    /// The leader crashes while one follower is detached: the next stable leader is attached.
    @Test(arguments: seeds)
    func simulatedElectionAfterACrashSettlesOnAnAttachedNode(seed: UInt64) {
        let cluster = SimulatedCluster(seed: seed, nodeCount: [3, 5][Int(seed % 2)])
        guard let first = cluster.awaitOneLeader() else { Issue.record("no leader\n\(cluster.report())"); return }
        let detached = cluster.ids.first { $0 != first }!
        cluster.setStateMachineAttached(detached, false)
        cluster.crash(first)
        let settled = cluster.run(upTo: 120) {
            guard let leader = cluster.leader else { return false }
            return leader != detached
        }
        #expect(settled, "seed \(seed): no attached leader after the crash\n\(cluster.report())")
        #expect(cluster.one([3], expectedNodes: cluster.ids.count - 1) != nil, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    /// No state machine anywhere (all kvds down at a cluster's start): the cluster still elects,
    /// only later, and commits; when state machines return, leadership settles on one.
    @Test(arguments: seeds)
    func simulatedClusterWithoutStateMachinesStillElects(seed: UInt64) {
        let cluster = SimulatedCluster(seed: seed, nodeCount: [3, 5][Int(seed % 2)])
        for id in cluster.ids { cluster.setStateMachineAttached(id, false) }
        let bound = (RaftNode.maxDeferredElections + 1) * 2 * 10 + 60
        guard cluster.awaitOneLeader(maxTicks: bound) != nil else {
            Issue.record("seed \(seed): no leader within \(bound) ticks\n\(cluster.report())")
            return
        }
        #expect(cluster.one([4], expectedNodes: cluster.ids.count) != nil, "\(cluster.report())")
        let returning = cluster.ids.last!
        cluster.setStateMachineAttached(returning, true)
        let settled = cluster.run(upTo: 60) { cluster.leader == returning }
        #expect(settled, "seed \(seed): leadership did not move to the only node with a state machine\n\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }
}

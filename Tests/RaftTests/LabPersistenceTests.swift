import Raft
import Testing
import SeededRandom

/// MIT 6.824 Raft lab 2C (persistence, Figure 8, unreliable networks, churn), replayed in the
/// deterministic simulation. A crash loses everything a node had not fsynced.
@Suite struct LabPersistenceTests {
    @Test func persistenceRestartAll() {
        let cluster = SimulatedCluster(seed: 301, nodeCount: 3)
        #expect(cluster.one(command(11), expectedNodes: 3) != nil, "\(cluster.report())")
        for id in cluster.ids { cluster.crash(id) }
        for id in cluster.ids { cluster.restart(id) }
        #expect(cluster.one(command(12), expectedNodes: 3) != nil, "\(cluster.report())")
        // Restarted state machines re-apply the committed log from the start.
        #expect(cluster.appliedCount(of: command(11)) == 3, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func persistenceRestartLeaderAndFollowers() {
        let cluster = SimulatedCluster(seed: 302, nodeCount: 3)
        #expect(cluster.one(command(11), expectedNodes: 3) != nil, "\(cluster.report())")
        let leader1 = cluster.awaitOneLeader()!
        cluster.crash(leader1)
        cluster.restart(leader1)
        #expect(cluster.one(command(13), expectedNodes: 3) != nil, "\(cluster.report())")
        let leader2 = cluster.awaitOneLeader()!
        cluster.crash(leader2)
        #expect(cluster.one(command(14), expectedNodes: 2) != nil, "\(cluster.report())")
        cluster.restart(leader2)
        let leader3 = cluster.awaitOneLeader()!
        let follower = cluster.ids.first { $0 != leader3 }!
        cluster.crash(follower)
        #expect(cluster.one(command(15), expectedNodes: 2) != nil, "\(cluster.report())")
        cluster.restart(follower)
        #expect(cluster.one(command(16), expectedNodes: 3) != nil, "\(cluster.report())")

        // 6.824 TestPersist22C: five nodes, repeated crashes of majorities.
        let five = SimulatedCluster(seed: 303, nodeCount: 5)
        var value = 100
        for _ in 0..<5 {
            value += 1
            #expect(five.one(command(value), expectedNodes: 5) != nil, "\(five.report())")
            let leader = five.awaitOneLeader()!
            let buddy = leader % 5 + 1
            five.crash(leader)
            five.crash(buddy)
            value += 1
            #expect(five.one(command(value), expectedNodes: 3) != nil, "\(five.report())")
            let rest = five.upIDs
            for id in rest { five.crash(id) }
            five.restart(leader)
            five.restart(buddy)
            five.run(ticks: 10)
            five.restart(rest[0])
            value += 1
            #expect(five.one(command(value), expectedNodes: 3) != nil, "\(five.report())")
            for id in five.ids { five.restart(id) }
        }
        #expect(five.one(command(1000), expectedNodes: 5) != nil, "\(five.report())")
        #expect(cluster.violations.isEmpty && five.violations.isEmpty, "\(cluster.report())\n\(five.report())")
    }

    /// 6.824 TestPersist32C: a partitioned leader and a follower crash; the leader restarts first.
    @Test func persistencePartitionedLeaderCrashesAndRestarts() {
        let cluster = SimulatedCluster(seed: 304, nodeCount: 3)
        #expect(cluster.one(command(101), expectedNodes: 3) != nil, "\(cluster.report())")
        let leader = cluster.awaitOneLeader()!
        let others = cluster.ids.filter { $0 != leader }
        cluster.disconnect(others[1])
        #expect(cluster.one(command(102), expectedNodes: 2) != nil, "\(cluster.report())")
        cluster.crash(leader)
        cluster.crash(others[0])
        cluster.reconnect(others[1])
        cluster.restart(leader)
        #expect(cluster.one(command(103), expectedNodes: 2) != nil, "\(cluster.report())")
        cluster.restart(others[0])
        #expect(cluster.one(command(104), expectedNodes: 3) != nil, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    /// 6.824 TestFigure82C: leaders crash right after proposing, so entries of old terms linger
    /// on some nodes; only current-term replica counting may commit (Figure 8).
    @Test(arguments: [401, 402, 403] as [UInt64])
    func figure8(seed: UInt64) {
        // One entry per append, so an old-term entry can reach a majority without the no-op after it.
        let cluster = SimulatedCluster(seed: seed, nodeCount: 5, maxAppendBytes: 1)
        var random = SeededGenerator(seed: seed)
        #expect(cluster.one(command(0), expectedNodes: 1) != nil, "\(cluster.report())")
        for iteration in 0..<1000 where !cluster.failed {
            var proposedBy: UInt64?
            for id in cluster.upIDs {
                if case .accepted? = cluster.propose(command(iteration + 1), at: id) { proposedBy = id }
            }
            cluster.run(ticks: random.chance(0.1) ? random.int(in: 0...5) : random.int(in: 0...1))
            if let leader = proposedBy, cluster.isUp(leader) { cluster.crash(leader) }
            if cluster.upIDs.count < 3 {
                let down = cluster.ids.filter { !cluster.isUp($0) }
                cluster.restart(random.element(of: down))
            }
        }
        for id in cluster.ids { cluster.restart(id) }
        #expect(cluster.one(command(9999), expectedNodes: 5) != nil, "\(cluster.report())")
        #expect(cluster.checker.leaderOfTerm.count >= 20, "too few elections to exercise Figure 8\n\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    /// 6.824 TestFigure8Unreliable2C: the same on a lossy, reordering network with long delays,
    /// disconnecting leaders instead of crashing them.
    @Test(arguments: [411, 412, 413] as [UInt64])
    func figure8Unreliable(seed: UInt64) {
        let cluster = SimulatedCluster(seed: seed, nodeCount: 5, maxAppendBytes: 1)
        var random = SeededGenerator(seed: seed)
        cluster.network.faults = .unreliable
        #expect(cluster.one(command(0), expectedNodes: 1) != nil, "\(cluster.report())")
        for iteration in 0..<1000 where !cluster.failed {
            if iteration == 800 { cluster.network.faults.longDelayRate = 0 }
            for id in cluster.connectedUpIDs { cluster.propose(command(iteration + 1), at: id) }
            cluster.run(ticks: random.chance(0.1) ? random.int(in: 0...5) : random.int(in: 0...1))
            if let leader = cluster.leader, random.chance(0.5), !cluster.disconnected.contains(leader) {
                cluster.disconnect(leader)
            }
            if cluster.connectedUpIDs.count < 3 {
                cluster.reconnect(random.element(of: Array(cluster.disconnected).sorted()))
            }
        }
        cluster.healNetwork()
        cluster.network.faults = .reliable
        #expect(cluster.one(command(9999), expectedNodes: 5) != nil, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func unreliableAgreement() {
        let cluster = SimulatedCluster(seed: 421, nodeCount: 5)
        cluster.network.faults = .unreliable
        for iteration in 1..<30 {
            if let leader = cluster.leader {
                for j in 0..<4 { cluster.propose(command(100 * iteration + j), at: leader) }
            }
            #expect(cluster.one(command(iteration), expectedNodes: 1, maxTicks: 200) != nil, "\(cluster.report())")
        }
        cluster.network.faults = .reliable
        #expect(cluster.one(command(100), expectedNodes: 5) != nil, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    /// 6.824 TestReliableChurn2C / TestUnreliableChurn2C: random crashes, restarts, disconnects and
    /// reconnects under a stream of proposals; afterwards everything recovers.
    @Test(arguments: [false, true])
    func churn(unreliable: Bool) {
        let seed: UInt64 = unreliable ? 432 : 431
        let cluster = SimulatedCluster(seed: seed, nodeCount: 5)
        var random = SeededGenerator(seed: seed)
        if unreliable { cluster.network.faults = .unreliable }
        var accepted: [(value: Int, index: UInt64, term: UInt64)] = []
        for round in 0..<200 where !cluster.failed {
            let id = random.element(of: cluster.ids)
            if random.chance(0.2) { cluster.disconnect(id) }
            if random.chance(0.5) { cluster.reconnect(random.element(of: cluster.ids)) }
            if random.chance(0.2) { cluster.crash(random.element(of: cluster.ids)) }
            if random.chance(0.5) { cluster.restart(random.element(of: cluster.ids)) }
            if cluster.upIDs.count < 3 { for down in cluster.ids { cluster.restart(down) } }
            let target = random.chance(0.7) ? (cluster.leader ?? random.element(of: cluster.ids)) : random.element(of: cluster.ids)
            if case .accepted(let index, let term)? = cluster.propose(command(round + 1), at: target) {
                accepted.append((round + 1, index, term))
            }
            cluster.run(ticks: random.int(in: 0...3))
        }
        cluster.healNetwork()
        cluster.network.faults = .reliable
        for id in cluster.ids { cluster.restart(id) }
        #expect(cluster.one(command(99_999), expectedNodes: 5) != nil, "\(cluster.report())")
        // An accepted proposal committed iff its (index, term) made it into the committed log.
        let committed = cluster.checker.committed
        var committedCount = 0
        for proposal in accepted where proposal.index <= UInt64(committed.count) {
            let entry = committed[Int(proposal.index - 1)]
            if entry.term == proposal.term {
                #expect(entry.data == command(proposal.value), "index \(proposal.index) term \(proposal.term) holds other data")
                committedCount += 1
            }
        }
        #expect(committedCount > 0, "churn committed none of \(accepted.count) accepted proposals\n\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }
}

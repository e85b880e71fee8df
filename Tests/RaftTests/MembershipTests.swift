import Raft
import Testing

/// Membership changes in the core: learners, promotion, removal (the leader's too), one change
/// at a time, the own-term rule, configurations in the log (truncated with it) and in snapshots.
@Suite struct MembershipTests {
    /// A cluster of `voters` seed voters and `spares` nodes started with no configuration.
    private func cluster(seed: UInt64 = 7, voters: Int = 3, spares: Int = 1) -> (SimulatedCluster, UInt64) {
        let cluster = SimulatedCluster(seed: seed, nodeCount: voters, spareCount: spares)
        let leader = cluster.awaitOneLeader()!
        #expect(cluster.one([1], expectedNodes: voters) != nil)
        return (cluster, leader)
    }

    /// Runs until `condition` holds or fails the test with the cluster's report.
    private func settle(_ cluster: SimulatedCluster, _ what: String, ticks: Int = 200, _ condition: () -> Bool) {
        let held = cluster.run(upTo: ticks, until: condition)
        #expect(held && !cluster.failed, "\(what)\n\(cluster.report())")
    }

    @Test func configurationEncodingRoundTripsAndRejectsGarbage() {
        let configuration = Configuration(members: [
            Member(id: 3, role: .learner, autoPromote: true, raftAddress: "10.0.0.3:7003", kvdAddress: "10.0.0.3:9003"),
            Member(id: 1, role: .voter, raftAddress: "h1:7001", kvdAddress: "h1:9001"),
        ])
        #expect(Configuration(encoded: configuration.encoded) == configuration)
        #expect(configuration.ids == [1, 3])
        #expect(configuration.voters == [1] && configuration.learners == [3])
        #expect(Configuration(encoded: []) == nil)
        #expect(Configuration(encoded: Array(configuration.encoded.dropLast())) == nil)
        #expect(Configuration(encoded: configuration.encoded + [0]) == nil)
    }

    @Test func invalidChangesAreRefusedWithAReason() {
        let configuration = Configuration(voters: [1, 2])
        #expect(throws: ConfigChangeError.self) { try configuration.applying(.addLearner(Member(id: 2, role: .learner))).get() }
        #expect(throws: ConfigChangeError.self) { try configuration.applying(.promote(2)).get() }
        #expect(throws: ConfigChangeError.self) { try configuration.applying(.remove(9)).get() }
        #expect(throws: ConfigChangeError.self) { try Configuration(voters: [1]).applying(.remove(1)).get() }
        // An added member is a learner whatever role it was given.
        let added = try? configuration.applying(.addLearner(Member(id: 3, role: .voter))).get()
        #expect(added?.learners == [3])
    }

    @Test func learnerCatchesUpAndIsPromotedAutomatically() {
        let (cluster, leader) = cluster()
        for value in 2...30 { cluster.propose([UInt8(value)], at: leader) }
        let outcome = cluster.proposeConfigChange(.addLearner(Member(id: 4, role: .learner, autoPromote: true)), at: leader)
        #expect((try? outcome?.get()) != nil, "\(String(describing: outcome))")
        settle(cluster, "node 4 becomes a voter") {
            cluster.node(leader)?.configuration.voters == [1, 2, 3, 4]
        }
        settle(cluster, "every node knows") { [1, 2, 3, 4].allSatisfy { cluster.node($0)?.configuration.voters == [1, 2, 3, 4] } }
        #expect(cluster.one([99], expectedNodes: 4) != nil)
        #expect(cluster.stateMachine(4)!.commands.count == cluster.stateMachine(leader)!.commands.count)
    }

    @Test func learnerWithoutAutoPromotionStaysALearnerUntilPromoted() {
        let (cluster, leader) = cluster()
        _ = cluster.proposeConfigChange(.addLearner(Member(id: 4, role: .learner)), at: leader)
        settle(cluster, "node 4 applies like the others") { cluster.stateMachine(4)?.commands.contains([1]) ?? false }
        cluster.run(ticks: 30)
        #expect(cluster.node(leader)!.configuration.learners == [4])
        #expect(cluster.node(4)!.status.role == .follower)
        let promoted = cluster.proposeConfigChange(.promote(4), at: leader)
        #expect((try? promoted?.get()) != nil)
        settle(cluster, "node 4 is a voter") { cluster.node(4)?.configuration.voters == [1, 2, 3, 4] }
    }

    @Test func learnersAreNeverCountedInAQuorum() {
        let (cluster, leader) = cluster(voters: 3, spares: 2)
        for learner: UInt64 in [4, 5] {
            settle(cluster, "no change pending") { cluster.node(leader)!.configurationIndex <= cluster.node(leader)!.status.commitIndex }
            _ = cluster.proposeConfigChange(.addLearner(Member(id: learner, role: .learner)), at: leader)
        }
        settle(cluster, "learners caught up") { cluster.stateMachine(5)?.commands.contains([1]) ?? false }
        // Both other voters down: the leader and two learners hold the entry, which is not a majority of voters.
        for voter in [1, 2, 3] as [UInt64] where voter != leader { cluster.crash(voter) }
        let before = cluster.node(leader)!.status.commitIndex
        cluster.propose([42], at: leader)
        cluster.run(ticks: 8)  // under the check-quorum timeout
        #expect(cluster.node(leader)!.status.commitIndex == before, "\(cluster.report())")
        #expect(cluster.node(4)!.status.lastIndex > before, "the learner got the entry")
        #expect(!cluster.failed, "\(cluster.report())")
    }

    @Test func oneChangeAtATimeAndOnlyAfterAnEntryOfTheLeadersTerm() {
        let node = RaftNode(config: RaftConfig(id: 1, peers: [1, 2, 3], preVote: false, randomSeed: 1))
        while node.status.role != .candidate { node.tick() }
        var ready = node.ready()
        node.advance(ready)
        node.step(Message(type: .voteResponse, from: 2, to: 1, term: node.status.term))
        #expect(node.status.role == .leader)
        #expect(node.proposeConfigChange(.remove(3)).failureValue == .ownTermNotCommitted)
        ready = node.ready()
        node.advance(ready)
        let noop = node.status.lastIndex
        node.step(Message(type: .appendResponse, from: 2, to: 1, term: node.status.term, index: noop))
        #expect(node.status.commitIndex == noop)
        let first = node.proposeConfigChange(.addLearner(Member(id: 4, role: .learner)))
        #expect(first.successValue?.index == noop + 1)
        #expect(node.configuration.learners == [4], "in force once appended")
        #expect(node.proposeConfigChange(.remove(3)).failureValue == .changeInProgress(index: noop + 1))
        ready = node.ready()
        node.advance(ready)
        node.step(Message(type: .appendResponse, from: 2, to: 1, term: node.status.term, index: noop + 1))
        #expect(node.status.commitIndex == noop + 1)
        #expect(node.proposeConfigChange(.remove(3)).successValue != nil)
    }

    @Test func removedLeaderHandsOverAndStepsDown() {
        let (cluster, leader) = cluster(spares: 0)
        let outcome = cluster.proposeConfigChange(.remove(leader), at: leader)
        #expect((try? outcome?.get()) != nil)
        settle(cluster, "another leader") {
            guard let now = cluster.leader, now != leader else { return false }
            return cluster.node(now)!.configuration.voters.count == 2
        }
        #expect(cluster.node(leader)!.status.role == .follower)
        let marker: [UInt8] = [77]
        #expect(cluster.one(marker, expectedNodes: 2) != nil)
        // The removed node never campaigns again.
        cluster.run(ticks: 100)
        #expect(cluster.node(leader)!.status.role == .follower)
        #expect(cluster.leader != leader)
        #expect(!cluster.failed, "\(cluster.report())")
    }

    @Test func removedFollowerLearnsItIsOutAndStaysQuiet() {
        let (cluster, leader) = cluster(spares: 0)
        let victim: UInt64 = leader == 3 ? 2 : 3
        _ = cluster.proposeConfigChange(.remove(victim), at: leader)
        settle(cluster, "the victim learns its removal") { cluster.node(victim)!.configuration.member(victim) == nil }
        let term = cluster.node(leader)!.status.term
        cluster.run(ticks: 100)
        #expect(cluster.node(victim)!.status.role == .follower)
        #expect(cluster.node(leader)!.status.term == term, "the removed node disrupted nobody")
    }

    @Test func joiningNodeWaitsToBeContacted() {
        let cluster = SimulatedCluster(seed: 3, nodeCount: 1, spareCount: 1)
        cluster.disconnect(2)
        cluster.run(ticks: 100)
        #expect(cluster.node(2)!.status.role == .follower)
        #expect(cluster.node(2)!.status.term == 0)
        #expect(cluster.node(2)!.configuration.ids.isEmpty)
        cluster.reconnect(2)
        let leader = cluster.awaitOneLeader()!
        #expect(leader == 1)
        _ = cluster.proposeConfigChange(.addLearner(Member(id: 2, role: .learner, autoPromote: true)), at: 1)
        settle(cluster, "two voters") { cluster.node(2)!.configuration.voters == [1, 2] }
    }

    @Test func snapshotsCarryTheConfiguration() {
        let (cluster, leader) = cluster(spares: 1)
        _ = cluster.proposeConfigChange(.remove(leader == 3 ? 2 : 3), at: leader)
        settle(cluster, "committed") { cluster.node(leader)!.configurationIndex <= cluster.node(leader)!.status.commitIndex }
        for value in 2...40 { cluster.propose([UInt8(value)], at: leader) }
        cluster.run(ticks: 10)
        cluster.compactRate = 1
        cluster.maxRetaining = 0
        cluster.run(ticks: 2)
        cluster.compactRate = 0
        let snapshot = cluster.node(leader)!.snapshot
        #expect(snapshot?.configuration == cluster.node(leader)!.configuration)
        _ = cluster.proposeConfigChange(.addLearner(Member(id: 4, role: .learner)), at: leader)
        settle(cluster, "the learner got the snapshot and the configuration") {
            cluster.node(4)!.configuration == cluster.node(leader)!.configuration
                && (cluster.snapshotsInstalled[4] ?? 0) > 0
        }
    }

    /// The case the simulator found: a leader appends its own removal, reaches only a learner
    /// with it, and loses leadership. The only voter of the new configuration lacks the entry
    /// (so the old leader, holding more log, refuses it its vote), and the nodes that hold it
    /// are outside the new configuration or learners. The old leader may campaign because the
    /// change that removed it is uncommitted; counting only the new voters it wins, commits the
    /// removal and hands over.
    @Test func aHalfDoneRemovalOfTheLeaderIsFinished() {
        let (cluster, leader) = cluster(voters: 2, spares: 1)
        let other: UInt64 = leader == 1 ? 2 : 1
        _ = cluster.proposeConfigChange(.addLearner(Member(id: 3, role: .learner)), at: leader)
        settle(cluster, "learner added") { cluster.node(3)!.configuration.learners == [3] && cluster.node(leader)!.configurationIndex <= cluster.node(leader)!.status.commitIndex }
        cluster.network.cutLink(leader, other)
        cluster.network.cutLink(other, leader)
        let removal = cluster.proposeConfigChange(.remove(leader), at: leader)
        #expect((try? removal?.get()) != nil)
        settle(cluster, "the old leader steps down without committing it") { cluster.node(leader)!.status.role != .leader }
        #expect(cluster.node(other)!.configuration.voters == [1, 2], "the remaining voter never got the change")
        cluster.healNetwork()
        settle(cluster, "the removal completes and the remaining voter leads") {
            cluster.leader == other && cluster.node(other)!.configuration.voters == [other]
                && cluster.node(other)!.configurationIndex <= cluster.node(other)!.status.commitIndex
        }
        #expect(cluster.one([55], expectedNodes: 2) != nil, "\(cluster.report())")
    }

    @Test func truncatedConfigurationEntryTakesItsConfigurationAlong() {
        let node = RaftNode(config: RaftConfig(id: 2, peers: [1, 2, 3]))
        let added = Configuration(members: [Member(id: 1, role: .voter), Member(id: 2, role: .voter),
                                            Member(id: 3, role: .voter), Member(id: 4, role: .learner)])
        node.step(Message(type: .append, from: 1, to: 2, term: 1, logTerm: 0, index: 0, commit: 0,
                          entries: [Entry(term: 1, index: 1, kind: .noop), Entry(term: 1, index: 2, kind: .config, data: added.encoded)]))
        #expect(node.configuration == added)
        #expect(node.configurationIndex == 2)
        var ready = node.ready()
        #expect(ready.configuration == added)
        node.advance(ready)
        // A new leader of term 2 never had the entry: its append overwrites index 2.
        node.step(Message(type: .append, from: 3, to: 2, term: 2, logTerm: 1, index: 1, commit: 0,
                          entries: [Entry(term: 2, index: 2, kind: .noop)]))
        #expect(node.configuration == Configuration(voters: [1, 2, 3]))
        #expect(node.configurationIndex == 0)
        ready = node.ready()
        #expect(ready.configuration == Configuration(voters: [1, 2, 3]))
        node.advance(ready)
    }
}

extension Result {
    var successValue: Success? { if case .success(let value) = self { value } else { nil } }
    var failureValue: Failure? { if case .failure(let error) = self { error } else { nil } }
}

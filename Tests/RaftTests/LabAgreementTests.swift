import Raft
import Testing

/// MIT 6.824 Raft lab 2B (log agreement), replayed in the deterministic simulation.
@Suite struct LabAgreementTests {
    @Test func basicAgreement() {
        let cluster = SimulatedCluster(seed: 201, nodeCount: 3)
        var previous: UInt64?
        for value in 1...3 {
            #expect(cluster.committedIndex(of: command(value)) == nil, "committed before proposed")
            let index = cluster.one(command(value), expectedNodes: 3)
            #expect(index != nil, "command \(value) not applied on all nodes\n\(cluster.report())")
            if let previous, let index {
                #expect(index == previous + 1, "commands should be consecutive\n\(cluster.report())")
            }
            previous = index
        }
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func agreementDespiteFollowerDisconnection() {
        let cluster = SimulatedCluster(seed: 202, nodeCount: 3)
        #expect(cluster.one(command(101), expectedNodes: 3) != nil, "\(cluster.report())")
        let leader = cluster.awaitOneLeader()!
        let follower = cluster.ids.first { $0 != leader }!
        cluster.disconnect(follower)
        // The leader and the remaining follower still agree.
        for value in 102...105 {
            #expect(cluster.one(command(value), expectedNodes: 2) != nil, "\(value) not agreed by 2\n\(cluster.report())")
        }
        cluster.reconnect(follower)
        // The returning follower catches up, and new commands reach everyone.
        for value in 106...107 {
            #expect(cluster.one(command(value), expectedNodes: 3) != nil, "\(value) not agreed by 3\n\(cluster.report())")
        }
        #expect(cluster.appliedCount(of: command(103)) == 3, "the follower did not catch up\n\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func noAgreementWithoutMajority() {
        let cluster = SimulatedCluster(seed: 203, nodeCount: 5)
        #expect(cluster.one(command(10), expectedNodes: 5) != nil, "\(cluster.report())")
        let leader = cluster.awaitOneLeader()!
        let followers = cluster.ids.filter { $0 != leader }
        for id in followers.prefix(3) { cluster.disconnect(id) }
        let outcome = cluster.propose(command(20), at: leader)
        guard case .accepted? = outcome else {
            Issue.record("leader refused a proposal: \(String(describing: outcome))\n\(cluster.report())")
            return
        }
        cluster.run(ticks: 40)
        #expect(cluster.committedIndex(of: command(20)) == nil, "committed with 2 of 5 nodes\n\(cluster.report())")
        for id in followers.prefix(3) { cluster.reconnect(id) }
        #expect(cluster.awaitOneLeader() != nil, "\(cluster.report())")
        #expect(cluster.one(command(30), expectedNodes: 5) != nil, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func concurrentProposals() {
        let cluster = SimulatedCluster(seed: 204, nodeCount: 3)
        #expect(cluster.one(command(1), expectedNodes: 3) != nil, "\(cluster.report())")
        let leader = cluster.awaitOneLeader()!
        let term = cluster.node(leader)!.status.term
        var indexes: [UInt64] = []
        // Five single proposals and one batch, all in the same instant.
        for value in 10..<15 {
            if case .accepted(let index, _)? = cluster.propose(command(value), at: leader) { indexes.append(index) }
        }
        if case .accepted(let first, _) = cluster.node(leader)!.propose(batch: [command(20), command(21)]) {
            indexes.append(contentsOf: [first, first + 1])
        }
        #expect(indexes.count == 7 && Set(indexes).count == 7, "proposals not all accepted at distinct indexes: \(indexes)")
        let done = cluster.run(upTo: 30) {
            ([10, 11, 12, 13, 14, 20, 21]).allSatisfy { cluster.appliedCount(of: command($0)) == 3 }
        }
        #expect(done, "concurrent proposals not applied everywhere\n\(cluster.report())")
        for (value, index) in zip([10, 11, 12, 13, 14, 20, 21], indexes) {
            #expect(cluster.committedIndex(of: command(value)) == index, "command \(value) committed elsewhere than \(index)")
        }
        #expect(cluster.node(leader)!.status.term == term, "term changed without failures\n\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func rejoinOfPartitionedLeader() {
        let cluster = SimulatedCluster(seed: 205, nodeCount: 3)
        #expect(cluster.one(command(101), expectedNodes: 3) != nil, "\(cluster.report())")
        let leader1 = cluster.awaitOneLeader()!
        cluster.disconnect(leader1)
        // The isolated leader accepts proposals it can never commit.
        for value in 102...104 { cluster.propose(command(value), at: leader1) }
        #expect(cluster.one(command(103_000), expectedNodes: 2) != nil, "\(cluster.report())")
        let leader2 = cluster.awaitOneLeader()!
        cluster.disconnect(leader2)
        cluster.reconnect(leader1)
        // The old leader, back with a stale log, must be overruled, not obeyed.
        #expect(cluster.one(command(104_000), expectedNodes: 2) != nil, "\(cluster.report())")
        cluster.reconnect(leader2)
        #expect(cluster.one(command(105), expectedNodes: 3) != nil, "\(cluster.report())")
        for value in 102...104 {
            #expect(cluster.committedIndex(of: command(value)) == nil, "stale proposal \(value) of the partitioned leader committed\n\(cluster.report())")
        }
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    /// 6.824 TestBackup2B: followers with long divergent tails are brought back in a few round
    /// trips thanks to fast backtracking (one rejection per conflicting term, not per entry).
    @Test func leaderBacksUpQuicklyOverIncorrectFollowerLogs() {
        let cluster = SimulatedCluster(seed: 206, nodeCount: 5)
        #expect(cluster.one(command(1), expectedNodes: 5) != nil, "\(cluster.report())")
        let leader1 = cluster.awaitOneLeader()!
        let others = cluster.ids.filter { $0 != leader1 }
        // Leader and one follower in a minority; 50 proposals that cannot commit.
        let minorityFollower = others[0]
        for id in others.dropFirst() { cluster.disconnect(id) }
        for value in 1000..<1050 { cluster.propose(command(value), at: leader1) }
        cluster.run(ticks: 5)
        // The majority side elects a leader and commits 50 others.
        cluster.disconnect(leader1)
        cluster.disconnect(minorityFollower)
        for id in others.dropFirst() { cluster.reconnect(id) }
        for value in 2000..<2050 {
            #expect(cluster.one(command(value), expectedNodes: 3) != nil, "\(cluster.report())")
        }
        // One of the majority leaves; 50 more proposals that cannot commit.
        let leader2 = cluster.awaitOneLeader()!
        let dropped = others.dropFirst().first { $0 != leader2 }!
        cluster.disconnect(dropped)
        for value in 3000..<3050 { cluster.propose(command(value), at: leader2) }
        cluster.run(ticks: 5)
        // The first leader, its follower and the dropped node form a majority with divergent tails.
        for id in cluster.ids { cluster.disconnect(id) }
        cluster.reconnect(leader1)
        cluster.reconnect(minorityFollower)
        cluster.reconnect(dropped)
        let rejectionsBefore = cluster.network.rejectedAppendCount
        for value in 4000..<4050 {
            #expect(cluster.one(command(value), expectedNodes: 3) != nil, "\(cluster.report())")
        }
        // Everyone back: the 2000s side catches up too.
        for id in cluster.ids { cluster.reconnect(id) }
        #expect(cluster.one(command(5000), expectedNodes: 5) != nil, "\(cluster.report())")
        let rejections = cluster.network.rejectedAppendCount - rejectionsBefore
        // Four nodes each need at most a couple of rejections per conflicting term; one entry per
        // round trip would need dozens per node.
        #expect(rejections <= 16, "\(rejections) rejected appends while backing up; fast backtracking should need few\n\(cluster.report())")
        for value in 1000..<1050 { #expect(cluster.committedIndex(of: command(value)) == nil) }
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    /// 6.824 TestCount2B: an election and each agreement take a bounded number of messages.
    @Test func messageCountsStayReasonable() {
        let cluster = SimulatedCluster(seed: 207, nodeCount: 3)
        #expect(cluster.awaitOneLeader() != nil, "\(cluster.report())")
        let electionTypes: [MessageType] = [.preVote, .preVoteResponse, .vote, .voteResponse]
        let electionMessages = electionTypes.reduce(0) { $0 + (cluster.network.sentCountByType[$1] ?? 0) }
        #expect(electionMessages >= 4 && electionMessages <= 30, "election took \(electionMessages) messages\n\(cluster.report())")

        #expect(cluster.one(command(0), expectedNodes: 3) != nil, "\(cluster.report())")
        func replicationMessages() -> Int {
            (cluster.network.sentCountByType[.append] ?? 0) + (cluster.network.sentCountByType[.appendResponse] ?? 0)
        }
        let before = replicationMessages()
        let agreements = 10
        for value in 1...agreements {
            #expect(cluster.one(command(value), expectedNodes: 3) != nil, "\(cluster.report())")
        }
        // Per agreement and follower: the append, its response, the commit notice and its response.
        let used = replicationMessages() - before
        #expect(used <= agreements * 4 * 2 + 8, "\(agreements) agreements took \(used) append messages\n\(cluster.report())")

        // Idle: only heartbeats and their responses, one round per tick.
        let idleBefore = cluster.network.sentCount
        cluster.run(ticks: 20)
        let idle = cluster.network.sentCount - idleBefore
        #expect(idle <= 20 * 2 * 2 + 4, "idle cluster sent \(idle) messages in 20 ticks\n\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }
}

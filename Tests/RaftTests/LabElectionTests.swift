import Raft
import Testing
import SeededRandom

/// MIT 6.824 Raft lab 2A (leader election), replayed in the deterministic simulation.
@Suite struct LabElectionTests {
    @Test func initialElection() {
        let cluster = SimulatedCluster(seed: 101, nodeCount: 3)
        let leader = cluster.awaitOneLeader()
        #expect(leader != nil, "no leader elected\n\(cluster.report())")
        cluster.run(ticks: 5)
        let term = cluster.agreedTerm
        #expect(term != nil && term! >= 1, "nodes disagree on the term after the election\n\(cluster.report())")
        // With no failures the term must stay put and the leader keep its seat.
        cluster.run(ticks: 60)
        #expect(cluster.agreedTerm == term, "term changed with no failures\n\(cluster.report())")
        #expect(cluster.awaitOneLeader() == leader, "leader changed with no failures\n\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func reElection() {
        let cluster = SimulatedCluster(seed: 102, nodeCount: 3)
        guard let leader1 = cluster.awaitOneLeader() else {
            Issue.record("no initial leader\n\(cluster.report())")
            return
        }
        // The leader leaves: the other two elect a new one.
        cluster.disconnect(leader1)
        let leader2 = cluster.awaitOneLeader()
        #expect(leader2 != nil && leader2 != leader1, "no new leader after disconnecting \(leader1)\n\(cluster.report())")
        // The old leader rejoins: it must not disturb the new one.
        cluster.reconnect(leader1)
        #expect(cluster.awaitOneLeader() == leader2, "\(cluster.report())")

        // Without a quorum nobody may lead (the isolated leader steps down through check quorum).
        let other = cluster.ids.first { $0 != leader2! }!
        cluster.disconnect(leader2!)
        cluster.disconnect(other)
        cluster.run(ticks: 40)
        #expect(cluster.leaders.isEmpty, "a node leads without a quorum\n\(cluster.report())")

        // A quorum again: a leader appears, and stays when the last node returns.
        cluster.reconnect(other)
        #expect(cluster.awaitOneLeader() != nil, "\(cluster.report())")
        cluster.reconnect(leader2!)
        #expect(cluster.awaitOneLeader() != nil, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func manyElections() {
        let cluster = SimulatedCluster(seed: 103, nodeCount: 7)
        #expect(cluster.awaitOneLeader() != nil, "\(cluster.report())")
        var random = SeededGenerator(seed: 103)
        for round in 0..<10 {
            let victims = Array(random.shuffled(cluster.ids).prefix(3))
            for id in victims { cluster.disconnect(id) }
            // Four of seven remain: a majority, which must (re-)elect a leader among them.
            #expect(cluster.awaitOneLeader(maxTicks: 80) != nil, "round \(round): no leader with \(victims) disconnected\n\(cluster.report())")
            for id in victims { cluster.reconnect(id) }
        }
        #expect(cluster.awaitOneLeader() != nil, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }
}

import Raft
import Testing

/// The exact situation of the Raft paper's Figure 8, scripted: a leader must not commit an entry
/// of an earlier term by counting replicas, because a node holding a conflicting entry of a later
/// term can still be elected and overwrite it.
@Suite struct Figure8ScenarioTests {
    @Test func oldTermEntryOnMajorityIsNotCommittedUntilCurrentTermEntryIs() {
        typealias Disk = SimulatedCluster.Disk
        func log(_ terms: [UInt64]) -> [Entry] {
            terms.enumerated().map { Entry(term: $1, index: UInt64($0 + 1), data: [UInt8($1), UInt8($0 + 1)]) }
        }
        // (b) of Figure 8: S1 led term 2 and wrote (2, t2) on S1 and S2; S5 led term 3 and wrote
        // (2, t3) only on itself. Index 1 is committed everywhere.
        let disks: [UInt64: Disk] = [
            1: Disk(hardState: HardState(term: 3, vote: 0, commit: 1), entries: log([1, 2])),
            2: Disk(hardState: HardState(term: 3, vote: 0, commit: 1), entries: log([1, 2])),
            3: Disk(hardState: HardState(term: 3, vote: 5, commit: 1), entries: log([1])),
            4: Disk(hardState: HardState(term: 3, vote: 5, commit: 1), entries: log([1])),
            5: Disk(hardState: HardState(term: 3, vote: 5, commit: 1), entries: log([1, 3])),
        ]
        let cluster = SimulatedCluster(seed: 801, nodeCount: 5, maxAppendBytes: 1, disks: disks)
        cluster.crash(2)
        cluster.crash(5)
        // (c) S1 wins term 4 with S3 and S4 and replicates (2, t2) to them, but its own no-op never
        // arrives: (2, t2) is now on a majority (S1, S3, S4) without any term-4 entry after it.
        // Only the scripted candidate's (pre-)vote requests get through.
        func isCampaign(_ message: Message) -> Bool { message.type == .preVote || message.type == .vote }
        cluster.network.dropFilter = { [unowned cluster] message in
            if isCampaign(message) { return message.from != 1 }
            // Let S1's probes through (they are rejected), drop the no-op once (2, t2) is in place.
            return message.entries.contains { $0.term == 4 } && cluster.node(message.to)?.entry(at: 2)?.term == 2
        }
        let leader = cluster.awaitOneLeader(maxTicks: 40)
        #expect(leader == 1, "S1 should win term 4\n\(cluster.report())")
        cluster.run(upTo: 20) { (3...4).allSatisfy { cluster.node($0)!.entry(at: 2)?.term == 2 } }
        #expect(cluster.node(3)!.entry(at: 2)?.term == 2 && cluster.node(4)!.entry(at: 2)?.term == 2,
                "S3 and S4 should hold (2, t2)\n\(cluster.report())")
        cluster.run(ticks: 3)  // S3's and S4's acknowledgements reach S1
        #expect(cluster.node(1)!.status.commitIndex == 1,
                "S1 committed index 2 of term 2 by counting replicas (Figure 8)\n\(cluster.report())")

        // (d) S1 crashes; S5 returns and, with the newest last term (3), wins term 5 with S3/S4.
        cluster.crash(1)
        cluster.network.dropFilter = { message in isCampaign(message) && message.from != 5 }
        cluster.restart(5)
        let newLeader = cluster.awaitOneLeader(maxTicks: 60)
        #expect(newLeader == 5, "S5 should win term 5\n\(cluster.report())")
        // It overwrites (2, t2) on S3 and S4, which is safe precisely because it was never committed.
        cluster.network.dropFilter = nil
        for id in [1, 2] as [UInt64] { cluster.restart(id) }
        #expect(cluster.one(command(42), expectedNodes: 5) != nil, "\(cluster.report())")
        #expect(cluster.node(3)!.entry(at: 2)?.term == 3, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }
}

import Raft
import Testing

/// Snapshots in the simulated cluster, with the safety checker verifying every snapshot made,
/// sent, installed and restored: nodes that fall behind the leader's compacted prefix (crashed or
/// cut off) are caught up by its snapshot, and a cluster restarts from its own snapshots.
@Suite struct SnapshotSimulationTests {
    /// A 5-node cluster that compacts often and keeps at most 2 entries before each snapshot.
    static func compactingCluster(seed: UInt64) -> SimulatedCluster {
        let cluster = SimulatedCluster(seed: seed, nodeCount: 5)
        cluster.compactRate = 0.3
        cluster.maxRetaining = 2
        return cluster
    }

    /// Commits `values` one by one on the `expectedNodes` reachable nodes.
    static func commit(_ values: Range<Int>, on cluster: SimulatedCluster, expectedNodes: Int) {
        for value in values {
            #expect(cluster.one(command(value), expectedNodes: expectedNodes) != nil, "\(value) not committed\n\(cluster.report())")
            if cluster.failed { return }
        }
    }

    /// Runs until every live node's log starts past `index`, i.e. whoever leads has compacted it.
    static func awaitCompaction(past index: UInt64, _ cluster: SimulatedCluster) {
        let compacted = cluster.run(upTo: 100) {
            cluster.upIDs.allSatisfy { cluster.node($0)!.firstIndex > index + 1 }
        }
        #expect(compacted, "the live nodes never compacted past \(index)\n\(cluster.report())")
    }

    @Test(arguments: [UInt64(11), 12, 13])
    func crashedNodeIsCaughtUpByTheLeadersSnapshot(seed: UInt64) {
        let cluster = Self.compactingCluster(seed: seed)
        guard let leader = cluster.awaitOneLeader() else {
            Issue.record("no leader\n\(cluster.report())")
            return
        }
        Self.commit(0..<3, on: cluster, expectedNodes: 5)
        let victim = cluster.ids.first { $0 != leader }!
        cluster.crash(victim)
        let victimLast = cluster.disks[victim]!.lastIndex
        Self.commit(3..<30, on: cluster, expectedNodes: 4)
        Self.awaitCompaction(past: victimLast, cluster)
        let installedBefore = cluster.snapshotsInstalled[victim] ?? 0
        let sentBefore = cluster.network.sentCountByType[.snapshot] ?? 0

        cluster.restart(victim)
        #expect(cluster.one(command(1000), expectedNodes: 5) != nil, "restarted node did not catch up\n\(cluster.report())")
        #expect((cluster.network.sentCountByType[.snapshot] ?? 0) > sentBefore, "no snapshot was sent\n\(cluster.report())")
        #expect((cluster.snapshotsInstalled[victim] ?? 0) > installedBefore, "node \(victim) installed no snapshot\n\(cluster.report())")
        #expect((0..<30).allSatisfy { cluster.appliedCount(of: command($0)) == 5 }, "some command missing on some node\n\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test(arguments: [UInt64(21), 22, 23])
    func partitionedNodeIsCaughtUpByTheLeadersSnapshot(seed: UInt64) {
        let cluster = Self.compactingCluster(seed: seed)
        guard let leader = cluster.awaitOneLeader() else {
            Issue.record("no leader\n\(cluster.report())")
            return
        }
        Self.commit(0..<3, on: cluster, expectedNodes: 5)
        let lagging = cluster.ids.last { $0 != leader }!
        cluster.disconnect(lagging)
        let laggingLast = cluster.node(lagging)!.status.lastIndex
        Self.commit(3..<30, on: cluster, expectedNodes: 4)
        let compacted = cluster.run(upTo: 100) {
            cluster.connectedUpIDs.allSatisfy { cluster.node($0)!.firstIndex > laggingLast + 1 }
        }
        #expect(compacted, "\(cluster.report())")

        cluster.reconnect(lagging)
        #expect(cluster.one(command(1000), expectedNodes: 5) != nil, "reconnected node did not catch up\n\(cluster.report())")
        #expect((cluster.snapshotsInstalled[lagging] ?? 0) >= 1, "node \(lagging) installed no snapshot\n\(cluster.report())")
        #expect(cluster.node(lagging)!.status.snapshotIndex > laggingLast)
        #expect((0..<30).allSatisfy { cluster.appliedCount(of: command($0)) == 5 }, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }

    @Test func wholeClusterRestartsFromItsOwnSnapshots() {
        let cluster = Self.compactingCluster(seed: 31)
        Self.commit(0..<20, on: cluster, expectedNodes: 5)
        Self.awaitCompaction(past: 5, cluster)
        for id in cluster.ids { cluster.crash(id) }
        #expect(cluster.ids.allSatisfy { cluster.disks[$0]!.snapshot != nil }, "every node persisted a snapshot")
        for id in cluster.ids { cluster.restart(id) }
        #expect(cluster.restartsFromSnapshot == 5)
        // Commands covered by the snapshots are back in the restored state machines at once.
        let restored = (0..<20).filter { cluster.appliedCount(of: command($0)) == 5 }
        #expect(!restored.isEmpty, "\(cluster.report())")
        #expect(cluster.one(command(1000), expectedNodes: 5) != nil, "\(cluster.report())")
        #expect((0..<20).allSatisfy { cluster.appliedCount(of: command($0)) == 5 }, "\(cluster.report())")
        #expect(cluster.violations.isEmpty, "\(cluster.report())")
    }
}

import ClusterTestSupport
import Foundation
import KVClient
import Testing
import Wire

/// A raftd whose kvd is gone cannot answer clients: as leader it hands leadership to a follower
/// whose kvd is attached, instead of leading on while followers keep naming it.
@Suite(.serialized)
struct KvdLossTests {
    @Test(arguments: SnapshotMode.allCases) func leaderWhoseKvdDiesHandsOverAndWritesGoOn(snapshots: SnapshotMode) throws {
        var options = ClusterOptions(nodes: 3, gateways: 1)
        options.applySnapshotMode(snapshots)
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start()
        func fail(_ what: String) -> String { "\(what)\n\(cluster.logs())" }
        let leader = try #require(cluster.waitForLeader(), "no leader")
        let clerk = Clerk(endpoints: cluster.gatewayEndpoints)
        func put(_ i: Int) -> Bool {
            guard case let .completed(response) = clerk.put(Array("kvd-loss-\(i)".utf8), Array("v\(i)".utf8)) else { return false }
            return response.status == .ok
        }
        #expect(put(0), "\(fail("first put failed"))")

        cluster.kill9(cluster.kvd(leader))
        // The surviving kvds name a new leader (their raftds see it), and it is not the old one.
        var newLeader: Int?
        for _ in 0..<100 {
            let statuses = cluster.nodeStatuses()
            if let found = statuses.first(where: { $0.value.role == "leader" })?.key, found != leader {
                newLeader = found
                break
            }
            usleep(20_000)
        }
        #expect(newLeader != nil, "\(fail("leadership stayed with node \(leader), whose kvd is dead"))")
        #expect(cluster.raftd(leader).isRunning)
        for i in 1...20 { #expect(put(i), "\(fail("put \(i) failed after the handover"))") }

        // The old leader's kvd comes back and catches up, as a follower's.
        try cluster.kvd(leader).start()
        for i in 21...30 { #expect(put(i), "\(fail("put \(i) failed after the kvd returned"))") }
        let caughtUp = (0..<100).contains { _ in
            let statuses = cluster.nodeStatuses()
            if let mine = statuses[leader], let other = statuses[newLeader ?? 0], mine.appliedIndex >= other.commitIndex - 1,
               mine.appliedIndex > 0 { return true }
            usleep(20_000)
            return false
        }
        #expect(caughtUp, "\(fail("the returned kvd did not catch up"))")
    }
}

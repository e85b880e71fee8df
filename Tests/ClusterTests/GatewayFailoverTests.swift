import ClusterTestSupport
import EventLoop
import Foundation
import KVClient
import Testing
import Wire

/// The gateway under the faults that used to strand its clients: whole-cluster crashes,
/// a frozen leader, impatient clients, a gateway with no kvd yet. Many clients share a few
/// connections; the history is checked for linearizability and exactly-once appends. Waits are
/// bounded and generous: these tests check that things complete, not how fast.
@Suite(.serialized)
struct GatewayFailoverTests {
    /// 8 clients on 2 connections; every raftd and kvd is killed with -9 and restarted, three
    /// times. Afterwards every client gets answers again (no connection is left stranded).
    @Test(arguments: SnapshotMode.allCases) func sharedConnectionsSurviveKillAllRestartRounds(snapshots: SnapshotMode) throws {
        try withLoad(snapshots, connections: 2, clientsPerConnection: 4) { cluster, load, _ in
            for _ in 0..<3 {
                usleep(400_000)
                for process in cluster.raftds + cluster.kvds { cluster.kill9(process) }
                usleep(150_000)
                for process in cluster.raftds + cluster.kvds { try process.start() }
            }
            #expect(cluster.waitForLeader() != nil, "no leader after the restarts\n\(cluster.logs())")
            expectEveryClientProgresses(load, cluster, within: 10)
        }
    }

    /// The leader's raftd and kvd are frozen (SIGSTOP) under load: operations keep completing
    /// while they stay frozen, and after they thaw.
    @Test(arguments: SnapshotMode.allCases) func frozenLeaderDoesNotStopClients(snapshots: SnapshotMode) throws {
        try withLoad(snapshots, connections: 2, clientsPerConnection: 4) { cluster, load, leader in
            usleep(400_000)
            cluster.pause(cluster.raftd(leader))
            cluster.pause(cluster.kvd(leader))
            defer {
                cluster.resume(cluster.raftd(leader))
                cluster.resume(cluster.kvd(leader))
            }
            // The election and the gateway's suspicion take well under a second; then each client
            // completes operations while the old leader is still frozen.
            usleep(1_000_000)
            expectEveryClientProgresses(load, cluster, within: 4)
            cluster.resume(cluster.raftd(leader))
            cluster.resume(cluster.kvd(leader))
            expectEveryClientProgresses(load, cluster, within: 5)
        }
    }

    /// Clients that give up on an attempt long before the gateway does (100 ms against its
    /// 2 s) resend the same (client_id, seq) while the first copy is still in flight, across a
    /// leader crash: nothing is applied twice, and everyone keeps going.
    @Test(arguments: SnapshotMode.allCases) func clientsMoreImpatientThanTheGateway(snapshots: SnapshotMode) throws {
        try withLoad(snapshots, connections: 2, clientsPerConnection: 4, attemptTimeoutMs: 100) { cluster, load, leader in
            usleep(400_000)
            cluster.kill9(cluster.raftd(leader))
            cluster.kill9(cluster.kvd(leader))
            usleep(300_000)
            expectEveryClientProgresses(load, cluster, within: 5)
            try cluster.raftd(leader).start()
            try cluster.kvd(leader).start()
            usleep(300_000)
        }
    }

    /// A gateway that starts before any kvd: a request sent then waits for a kvd (not for an
    /// event that never comes) and is answered once they start.
    @Test func gatewayStartedBeforeAnyKvd() throws {
        var options = ClusterOptions(nodes: 3, gateways: 1)
        options.gatewayDeadlineMs = 8000
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start(raftdsOnly: true)
        try cluster.gateway(1).start()
        let early = BackgroundOperation(endpoint: cluster.gatewayEndpoints[0], op: .put, key: "early", value: "v")
        usleep(500_000)
        for kvd in cluster.kvds { try kvd.start() }
        #expect(early.wait(seconds: 15) == .ok, "the request sent before any kvd started was not answered OK\n\(cluster.logs())")
        let connection = KVConnection(endpoint: cluster.gatewayEndpoints[0])
        let read = try connection.call(KvRequest(op: .get, key: Array("early".utf8)), timeoutMs: 8000)
        #expect(read.status == .ok && read.value == Array("v".utf8), "\(read.status) \(read.message)")
    }

    // MARK: Support

    private func withLoad(_ snapshots: SnapshotMode, connections: Int, clientsPerConnection: Int, attemptTimeoutMs: Double = 1000,
                          _ faults: (LocalCluster, SharedConnectionLoad, _ leader: Int) throws -> Void) throws {
        var clusterOptions = ClusterOptions(nodes: 3, gateways: 1)
        clusterOptions.logLevel = "notice"
        clusterOptions.applySnapshotMode(snapshots)
        let cluster = try LocalCluster(clusterOptions)
        defer { cluster.shutdown() }
        try cluster.start()
        let leader = try #require(cluster.waitForLeader())
        var options = SharedConnectionLoad.Options()
        options.connections = connections
        options.clientsPerConnection = clientsPerConnection
        options.attemptTimeoutMs = attemptTimeoutMs
        options.seed = UInt64.random(in: 1...1_000_000)
        let load = SharedConnectionLoad(endpoint: cluster.gatewayEndpoints[0], options: options)
        load.start()
        do {
            try faults(cluster, load, leader)
        } catch {
            load.stop()
            throw error
        }
        for process in cluster.allProcesses where !process.isRunning { try process.start() }
        _ = cluster.waitForLeader()
        load.stop()
        #expect(load.completed > 0, "no operation completed\n\(cluster.logs())")
        let problems = load.verify(through: cluster.gatewayEndpoints)
        #expect(problems.isEmpty, "snapshots \(snapshots), seed \(options.seed): \(problems.joined(separator: "\n"))\n\(cluster.logs())")
    }

    /// Waits (at most `seconds`) until every client has completed at least one more operation.
    private func expectEveryClientProgresses(_ load: SharedConnectionLoad, _ cluster: LocalCluster, within seconds: Double) {
        let before = load.completedByClientNow
        let limit = Date().addingTimeInterval(seconds)
        var now = before
        while Date() < limit {
            now = load.completedByClientNow
            if before.allSatisfy({ now[$0.key, default: 0] > $0.value }) { return }
            usleep(20_000)
        }
        let stuck = before.filter { now[$0.key, default: 0] <= $0.value }.keys.sorted()
        Issue.record("clients \(stuck) completed nothing in \(seconds) s\n\(cluster.logs())")
    }
}

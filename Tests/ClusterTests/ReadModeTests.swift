import ClusterTestSupport
import Foundation
import Testing
import Wire

/// Reads from many clients on real processes, in every `--read-mode`, while the leader's
/// raftd and kvd are frozen (SIGSTOP) and continued, and while partitions move: the history
/// of Gets and Appends on a few shared keys must stay linearizable (a stale read from a
/// deposed or frozen leader would show up as a Get missing an acknowledged Append).
@Suite(.serialized) struct ReadModeTests {
    static let modes = ["index", "lease", "log"]

    @Test(arguments: modes)
    func leaderFrozenAndContinuedWhileClientsRead(mode: String) throws {
        try runUnderReadLoad(mode: mode) { cluster, workload, first in
            var leader = first
            for _ in 0..<2 {
                usleep(400_000)
                cluster.pause(cluster.raftd(leader))
                cluster.pause(cluster.kvd(leader))
                usleep(UInt32(cluster.options.electionMs * 4 * 1000))
                let during = workload.completed
                usleep(800_000)
                #expect(workload.completed > during, "no progress while the old leader was frozen\n\(cluster.logs())")
                // Both continue at once: the old leader's queued reads meet a cluster that moved on.
                cluster.resume(cluster.kvd(leader))
                cluster.resume(cluster.raftd(leader))
                usleep(600_000)
                leader = cluster.waitForLeader() ?? leader
            }
        }
    }

    @Test(arguments: modes)
    func partitionsMoveWhileClientsRead(mode: String) throws {
        var random = SystemRandomNumberGenerator()
        try runUnderReadLoad(mode: mode) { cluster, _, _ in
            for round in 0..<5 {
                var ids = [1, 2, 3]
                ids.shuffle(using: &random)
                if round % 2 == 0, let leader = cluster.leaderID() {
                    // The leader alone on one side: it must stop answering before the other side commits.
                    cluster.partition([[leader], [1, 2, 3].filter { $0 != leader }])
                } else {
                    cluster.partition([[ids[0]], [ids[1], ids[2]]])
                }
                usleep(UInt32.random(in: 500_000...900_000, using: &random))
                cluster.heal()
                usleep(300_000)
            }
        }
    }

    /// A 3-node cluster in `mode` with a gateway; 8 clients on 3 shared keys, mostly reading.
    private func runUnderReadLoad(mode: String, _ faults: (LocalCluster, Workload, _ leader: Int) throws -> Void) throws {
        var options = ClusterOptions(nodes: 3, gateways: 1)
        options.readMode = mode
        options.logLevel = "notice"
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start()
        let leader = try #require(cluster.waitForLeader(), "no leader\n\(cluster.logs())")
        #expect(cluster.nodeStatuses()[leader]?.readMode == mode, "raftd does not report --read-mode \(mode)")
        var workloadOptions = Workload.Options(clients: 8, randomKeys: 3)
        workloadOptions.readFraction = 0.7
        workloadOptions.maxOpsPerClient = 2000
        workloadOptions.thinkTimeMs = 20
        workloadOptions.seed = UInt64.random(in: 1...1_000_000)
        let workload = Workload(endpoints: cluster.gatewayEndpoints, options: workloadOptions)
        workload.start()
        do {
            try faults(cluster, workload, leader)
        } catch {
            workload.stop()
            throw error
        }
        cluster.heal()
        _ = cluster.waitForLeader()
        usleep(300_000)
        workload.stop()
        #expect(workload.completed > 0, "no operation completed\n\(cluster.logs())")
        let problems = workload.verify()
        #expect(problems.isEmpty, "read mode \(mode), workload seed \(workloadOptions.seed): \(problems.joined(separator: "\n"))\n\(cluster.logs())")
        print("read mode \(mode): completed=\(workload.completed) ops=\(workload.recorder.count)")
    }
}

import ClusterTestSupport
import EventLoop
import Foundation
import KVClient
import Testing
import Wire
import Raft
import SeededRandom

/// What one fault-injection scenario does to a cluster while clients run.
struct Scenario {
    var nodes = 3
    var gateways = 1
    var clients = 1
    var randomKeys: Int?
    var unreliable = false
    /// kill -9 and restart random processes (of the kinds listed).
    var crash: [ClusterProcess.Kind] = []
    var partitions = false
    /// FoundationDB-style swizzle: cut raftd links one at a time, heal them in another order.
    var swizzle = false
    var readFraction = 0.4
    var snapshots = SnapshotMode.regular

    /// Seconds of faults and load; KVRAFT_DEEP=1 runs five times longer.
    static var seconds: Double { ProcessInfo.processInfo.environment["KVRAFT_DEEP"] == nil ? 3 : 15 }

    static var seed: UInt64 {
        if let text = ProcessInfo.processInfo.environment["KVRAFT_SEED"], let seed = UInt64(text) { return seed }
        return UInt64.random(in: 1...1_000_000)
    }

    /// Runs clients against the cluster for a few rounds of faults, heals everything, then
    /// checks that every acknowledged append landed exactly once, in order, and that the
    /// whole history is linearizable.
    func run(_ name: String) throws {
        let seed = Scenario.seed
        var random = SeededGenerator(seed: seed)
        var options = ClusterOptions(nodes: nodes, gateways: gateways)
        options.logLevel = "notice"
        options.applySnapshotMode(snapshots)
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start()
        let report = { (what: String) -> Comment in
            Comment(rawValue: "\(name), snapshots \(snapshots), seed=\(seed) (rerun with KVRAFT_SEED=\(seed)): \(what)\n\(cluster.logs(lines: 15))")
        }
        #expect(cluster.waitForLeader() != nil, report("no leader"))

        var workloadOptions = Workload.Options(clients: clients, randomKeys: randomKeys)
        workloadOptions.seed = seed
        workloadOptions.readFraction = readFraction
        let workload = Workload(endpoints: cluster.gatewayEndpoints, options: workloadOptions)
        workload.start()

        let rounds = max(1, Int(Scenario.seconds / 0.75))
        for _ in 0..<rounds {
            if unreliable { cluster.setUnreliable(delayMs: Double.random(in: 0...15, using: &random), drop: 0.02) }
            if partitions {
                var ids = Array(1...nodes)
                ids.shuffle(using: &random)
                let cut = Int.random(in: 0...(nodes / 2), using: &random)
                cluster.partition([Array(ids[..<cut]), Array(ids[cut...])])
            }
            var killed: [ClusterProcess] = []
            if !crash.isEmpty {
                let candidates = cluster.allProcesses.filter { crash.contains($0.kind) }
                for process in candidates where Double.random(in: 0..<1, using: &random) < 0.35 {
                    cluster.kill9(process)
                    killed.append(process)
                }
            }
            if swizzle {
                FaultSchedule.swizzle(cluster.raftLinks.map(\.proxy), seed: random.next(), stepMs: 60)
            } else {
                usleep(UInt32(Double.random(in: 0.4...0.9, using: &random) * 1_000_000))
            }
            for process in killed { try process.start() }
            if partitions || unreliable { cluster.heal() }
        }
        cluster.heal()
        for process in cluster.allProcesses where !process.isRunning { try process.start() }
        // Let the cluster settle (election, reconnects) before the clients stop.
        _ = cluster.waitForLeader()
        usleep(300_000)
        workload.stop()
        #expect(workload.completed > 0, report("no operation completed"))
        let problems = workload.verify()
        #expect(problems.isEmpty, report(problems.joined(separator: "\n")))
        print("\(name): seed=\(seed) completed=\(workload.completed) ops=\(workload.recorder.count)")
    }
}

import ClusterTestSupport
import EventLoop
import Foundation
import Synchronization
import KVClient
import Testing
import Wire

/// The 6.824 kvraft (3A) suite with its intent, plus what a real deployment adds: real
/// processes, a fault proxy on every link, kill -9, SIGSTOP. Every scenario checks
/// linearizability and exactly-once appends.
@Suite(.serialized)
struct KVServiceScenarioTests {
    @Test(arguments: SnapshotMode.allCases) func oneClient(snapshots: SnapshotMode) throws { try Scenario(clients: 1, snapshots: snapshots).run("one client") }
    @Test(arguments: SnapshotMode.allCases) func manyClients(snapshots: SnapshotMode) throws { try Scenario(clients: 5, snapshots: snapshots).run("many clients") }
    @Test(arguments: SnapshotMode.allCases) func unreliableNetwork(snapshots: SnapshotMode) throws { try Scenario(clients: 5, unreliable: true, snapshots: snapshots).run("unreliable") }
    @Test(arguments: SnapshotMode.allCases) func concurrentAppendsToOneKeyUnreliable(snapshots: SnapshotMode) throws {
        try Scenario(clients: 5, randomKeys: 1, unreliable: true, readFraction: 0.1, snapshots: snapshots)
            .run("concurrent appends, one key, unreliable")
    }
    @Test(arguments: SnapshotMode.allCases) func partitionsOneClient(snapshots: SnapshotMode) throws { try Scenario(clients: 1, partitions: true, snapshots: snapshots).run("partitions, one client") }
    @Test(arguments: SnapshotMode.allCases) func partitionsManyClients(snapshots: SnapshotMode) throws { try Scenario(clients: 5, partitions: true, snapshots: snapshots).run("partitions, many clients") }
    @Test(arguments: SnapshotMode.allCases) func restartsOneClient(snapshots: SnapshotMode) throws {
        try Scenario(clients: 1, crash: [.raftd, .kvd, .gateway], snapshots: snapshots)
            .run("kill -9 and restart, one client")
    }
    @Test(arguments: SnapshotMode.allCases) func restartsManyClients(snapshots: SnapshotMode) throws {
        try Scenario(clients: 5, crash: [.raftd, .kvd, .gateway], snapshots: snapshots)
            .run("kill -9 and restart, many clients")
    }
    @Test(arguments: SnapshotMode.allCases) func unreliableRestarts(snapshots: SnapshotMode) throws {
        try Scenario(clients: 5, unreliable: true, crash: [.raftd, .kvd], snapshots: snapshots)
            .run("unreliable + restarts")
    }
    @Test(arguments: SnapshotMode.allCases) func restartsPartitions(snapshots: SnapshotMode) throws {
        try Scenario(clients: 5, crash: [.raftd, .kvd], partitions: true, snapshots: snapshots)
            .run("restarts + partitions")
    }
    @Test(arguments: SnapshotMode.allCases) func unreliableRestartsPartitions(snapshots: SnapshotMode) throws {
        try Scenario(clients: 5, unreliable: true, crash: [.raftd, .kvd], partitions: true, snapshots: snapshots)
            .run("unreliable + restarts + partitions")
    }
    @Test(arguments: SnapshotMode.allCases) func sevenNodesFifteenClientsEverything(snapshots: SnapshotMode) throws {
        try Scenario(nodes: 7, clients: 15, randomKeys: 10, unreliable: true, crash: [.raftd, .kvd], partitions: true, snapshots: snapshots)
            .run("7 nodes, 15 clients, random keys, unreliable + restarts + partitions")
    }
    @Test(arguments: SnapshotMode.allCases) func swizzledLinks(snapshots: SnapshotMode) throws { try Scenario(clients: 5, swizzle: true, snapshots: snapshots).run("swizzle-clogged raftd links") }
    @Test(arguments: SnapshotMode.allCases) func killOnlyKvds(snapshots: SnapshotMode) throws { try Scenario(clients: 5, crash: [.kvd], snapshots: snapshots).run("kill -9 kvds only") }
    @Test(arguments: SnapshotMode.allCases) func killOnlyRaftds(snapshots: SnapshotMode) throws { try Scenario(clients: 5, crash: [.raftd], snapshots: snapshots).run("kill -9 raftds only") }

    /// Compaction seen from clients: after raftd compacted its log many times, restarted kvds
    /// (a follower's, then the leader's) rebuild from raftd's snapshot plus the entries after
    /// it, and every value reads back.
    @Test func restartedKvdsRestoreFromSnapshots() throws {
        let cluster = try LocalCluster(ClusterOptions(nodes: 3, gateways: 1))
        defer { cluster.shutdown() }
        try cluster.start()
        let leader = try #require(cluster.waitForLeader())
        let clerk = Clerk(endpoints: cluster.gatewayEndpoints)
        func key(_ i: Int) -> [UInt8] { Array("key-\(i)".utf8) }
        func value(_ i: Int, _ round: Int) -> [UInt8] { Array("value-\(i)-\(round)-".utf8) + [UInt8](repeating: UInt8(65 + round), count: 200) }
        func write(round: Int) {
            for i in 0..<600 {
                guard case let .completed(response) = clerk.put(key(i), value(i, round)), response.status == .ok else {
                    Issue.record("put \(i) in round \(round) failed\n\(cluster.logs())")
                    return
                }
            }
        }
        write(round: 0)
        let follower = (1...3).first { $0 != leader }!
        cluster.kill9(cluster.kvd(follower))
        write(round: 1)
        try cluster.kvd(follower).start()
        // The leader's kvd goes too; rebuilt from a snapshot, it serves the leader's clients again.
        cluster.kill9(cluster.kvd(leader))
        try cluster.kvd(leader).start()
        write(round: 2)
        for i in 0..<600 {
            guard case let .completed(response) = clerk.get(key(i)) else {
                Issue.record("get \(i) failed\n\(cluster.logs())")
                return
            }
            #expect(response.status == .ok && response.value == value(i, 2), "key \(i)")
        }
        #expect(cluster.kvd(follower).logContains("restored from raftd's snapshot"), "\(cluster.logs())")
        #expect(cluster.kvd(leader).logContains("restored from raftd's snapshot"), "\(cluster.logs())")
    }

    /// The 6.824 speed check: 1,000 sequential Appends by one client, reported in ms/op.
    @Test func thousandSequentialAppends() throws {
        let cluster = try LocalCluster(ClusterOptions(nodes: 3, gateways: 1))
        defer { cluster.shutdown() }
        try cluster.start()
        #expect(cluster.waitForLeader() != nil)
        let clerk = Clerk(endpoints: cluster.gatewayEndpoints)
        let started = Date()
        var expected: [UInt8] = []
        for i in 0..<1000 {
            let element = Array("x 0 \(i) y".utf8)
            expected += element
            guard case let .completed(response) = clerk.append(Array("speed".utf8), element), response.status == .ok else {
                Issue.record("append \(i) failed\n\(cluster.logs())")
                return
            }
        }
        let msPerOp = Date().timeIntervalSince(started) * 1000 / 1000
        print("1,000 sequential appends: \(String(format: "%.2f", msPerOp)) ms/op (6.824's bar: 33 ms/op)")
        guard case let .completed(final) = clerk.get(Array("speed".utf8)) else { Issue.record("final get failed"); return }
        #expect(final.value == expected)
    }

    /// A majority partition keeps serving; a gateway that reaches only the minority
    /// completes nothing (Gets included) until the partition heals, and then completes.
    @Test func progressInMajorityNoneInMinorityCompletionAfterHeal() throws {
        let cluster = try LocalCluster(ClusterOptions(nodes: 5, gateways: 2))
        defer { cluster.shutdown() }
        try cluster.start()
        let leader = try #require(cluster.waitForLeader())
        // The old leader goes to the minority with one other node.
        let others = (1...5).filter { $0 != leader }
        let minority = [leader, others[0]]
        let majority = Array(others.dropFirst())
        cluster.partition([minority, majority])
        cluster.setGatewayReach(1, nodes: majority)
        cluster.setGatewayReach(2, nodes: minority)

        let majorityClerk = Clerk(endpoints: [cluster.gatewayEndpoints[0]], operationTimeoutMs: 10_000)
        guard case let .completed(put) = majorityClerk.put(Array("k".utf8), Array("majority".utf8)), put.status == .ok else {
            Issue.record("the majority made no progress\n\(cluster.logs())")
            return
        }

        // A Put and a Get through the minority-only gateway must not complete while partitioned.
        let minorityPut = BackgroundOperation(endpoint: cluster.gatewayEndpoints[1], op: .put, key: "k", value: "minority")
        let minorityGet = BackgroundOperation(endpoint: cluster.gatewayEndpoints[1], op: .get, key: "k")
        usleep(1_500_000)
        #expect(!minorityPut.isDone, "a Put completed in the minority")
        #expect(!minorityGet.isDone, "a Get completed in the minority")
        guard case let .completed(read) = majorityClerk.get(Array("k".utf8)) else { Issue.record("majority get failed"); return }
        #expect(read.value == Array("majority".utf8), "the minority's Put took effect while partitioned")

        // After the heal, the waiting operations complete.
        cluster.heal()
        cluster.setGatewayReach(2, nodes: Array(1...5))
        #expect(minorityPut.wait(seconds: 15) == .ok, "the minority's Put did not complete after the heal\n\(cluster.logs())")
        #expect(minorityGet.wait(seconds: 15) != nil)
        guard case let .completed(after) = majorityClerk.get(Array("k".utf8)) else { Issue.record("get after heal failed"); return }
        #expect(after.value == Array("minority".utf8))
    }

    /// Clients keep going through a second gateway when the first is killed mid-load.
    @Test func gatewayKilledMidLoad() throws {
        try runUnderLoad(gateways: 2, clients: 4) { cluster, workload, _ in
            usleep(700_000)
            cluster.kill9(cluster.gateway(1))
            let before = workload.completed
            usleep(1_500_000)
            #expect(workload.completed > before, "clients stopped making progress after a gateway died")
        }
    }

    /// A leader whose raftd freezes beyond an election timeout is replaced; when it thaws it
    /// must not serve stale data or depose the new leader with its old term.
    @Test func leaderRaftdStoppedThenContinued() throws {
        try runUnderLoad { cluster, workload, leader in
            usleep(500_000)
            cluster.pause(cluster.raftd(leader))
            usleep(UInt32(cluster.options.electionMs * 4 * 1000))
            let during = workload.completed
            usleep(1_000_000)
            #expect(workload.completed > during, "no progress while the old leader was frozen")
            cluster.resume(cluster.raftd(leader))
            usleep(1_000_000)
        }
    }

    /// The leader's kvd freezes (its raftd keeps leading): requests must not hang past the
    /// gateway's deadline, and everything works again once it thaws.
    @Test func leaderKvdStoppedThenContinued() throws {
        try runUnderLoad { cluster, workload, leader in
            usleep(400_000)
            cluster.pause(cluster.kvd(leader))
            // A request sent now is answered (UNAVAILABLE) by the gateway's deadline, not left hanging.
            let connection = KVConnection(endpoint: cluster.gatewayEndpoints[0])
            let started = Date()
            let frozen = try connection.call(KvRequest(op: .put, key: Array("frozen".utf8), value: [1]), timeoutMs: 10_000)
            #expect(frozen.status == .unavailable, "\(frozen.status) \(frozen.message)")
            #expect(Date().timeIntervalSince(started) < 8, "the gateway held a request far past its deadline")
            cluster.resume(cluster.kvd(leader))
            let before = workload.completed
            usleep(1_500_000)
            #expect(workload.completed > before, "no progress after the kvd thawed\n\(cluster.logs())")
        }
    }

    /// SIGTERM to the leader's raftd: it hands leadership over first, exits 0, and clients
    /// barely notice (no election timeout to wait out).
    @Test func leaderRaftdSIGTERMHandsLeadershipOver() throws {
        try runUnderLoad { cluster, _, leader in
            let term = cluster.nodeStatuses()[leader]!.term
            usleep(400_000)
            let started = Date()
            cluster.terminate(cluster.raftd(leader))
            #expect(cluster.raftd(leader).terminationStatus == 0, "raftd did not exit 0 on SIGTERM")
            #expect(Date().timeIntervalSince(started) < 2, "raftd took too long to shut down")
            let next = cluster.waitForLeader(timeoutMs: 5000)
            #expect(next != nil && next != leader)
            if let next { #expect(cluster.nodeStatuses()[next]!.term == term + 1, "a handover takes exactly one new term") }
            #expect(cluster.raftd(leader).logTail(lines: 20).contains("leadership handed over"), "\(cluster.logs())")
            try cluster.raftd(leader).start()
            usleep(500_000)
        }
    }

    /// SIGTERM to any process under load: it finishes or fails its in-flight work and exits 0
    /// within a second or two.
    @Test func everyProcessExitsZeroOnSIGTERM() throws {
        try runUnderLoad(gateways: 2) { cluster, _, _ in
            usleep(300_000)
            for process in [cluster.gateway(1), cluster.kvd(1), cluster.raftd(2), cluster.kvd(3), cluster.raftd(1)] {
                let started = Date()
                cluster.terminate(process)
                #expect(process.terminationStatus == 0, "\(process.name) exited \(process.terminationStatus.map(String.init) ?? "?")")
                #expect(Date().timeIntervalSince(started) < 2.5, "\(process.name) took too long to stop")
                try process.start()
                usleep(200_000)
            }
            _ = cluster.waitForLeader()
            usleep(300_000)
        }
    }

    /// A 3-node cluster with clients running through its gateways while `faults` acts on it;
    /// afterwards every acknowledged append is present exactly once and the history is
    /// linearizable.
    private func runUnderLoad(gateways: Int = 1, clients: Int = 3,
                              _ faults: (LocalCluster, Workload, _ leader: Int) throws -> Void) throws {
        let cluster = try LocalCluster(ClusterOptions(nodes: 3, gateways: gateways))
        defer { cluster.shutdown() }
        try cluster.start()
        let leader = try #require(cluster.waitForLeader())
        let workload = Workload(endpoints: cluster.gatewayEndpoints, options: Workload.Options(clients: clients))
        workload.start()
        do {
            try faults(cluster, workload, leader)
        } catch {
            workload.stop()
            throw error
        }
        workload.stop()
        let problems = workload.verify()
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))\n\(cluster.logs())")
    }
}

/// One operation run on its own thread, so a test can watch whether it completes.
final class BackgroundOperation: Sendable {
    private let result = Mutex<Status?>(nil)

    init(endpoint: Endpoint, op: Op, key: String, value: String = "") {
        let thread = Thread { [self] in
            let clerk = Clerk(endpoints: [endpoint], attemptTimeoutMs: 500, operationTimeoutMs: 30_000)
            if case let .completed(response) = clerk.perform(op, Array(key.utf8), Array(value.utf8)) {
                result.withLock { $0 = response.status }
            } else {
                result.withLock { $0 = .unavailable }
            }
        }
        thread.start()
    }

    var isDone: Bool { result.withLock { $0 } != nil }

    /// The final status, or nil if still running after `seconds`.
    func wait(seconds: Double) -> Status? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let status = result.withLock({ $0 }) { return status }
            usleep(10_000)
        }
        return nil
    }
}

import ClusterTestSupport
import EventLoop
import Foundation
import KVClient
import Testing
import Wire

/// Membership changes on real processes under client load: a node started with `raftd
/// --join` is added with `kvctl member add` (as a learner, promoted automatically once caught
/// up), then the seed node 1 is removed with `kvctl member remove`, while clients keep
/// appending and reading through the gateway; the history must stay linearizable and clients
/// must keep completing operations after the changes.
@Suite(.serialized) struct MembershipProcessTests {
    /// Runs kvctl against the cluster's gateway; returns (exit status, stdout + stderr).
    private func kvctl(_ cluster: LocalCluster, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = try LocalCluster.binaryDirectory().appendingPathComponent("kvctl")
        process.arguments = ["--gateway", "127.0.0.1:\(cluster.gatewayPorts[0])", "--timeout-ms", "20000"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// The configuration as the gateway's leader lists it.
    /// At least 50 more operations complete within 10 s.
    private func expectProgress(_ workload: Workload, _ cluster: LocalCluster, _ what: String,
                                sourceLocation: SourceLocation = #_sourceLocation) {
        let before = workload.completed
        #expect(waitUntil(seconds: 10) { workload.completed > before + 50 }, "\(what)\n\(cluster.logs())",
                sourceLocation: sourceLocation)
    }

    /// Stops the clients and checks their history for linearizability.
    private func stopAndVerify(_ workload: Workload, _ cluster: LocalCluster, sourceLocation: SourceLocation = #_sourceLocation) {
        workload.stop()
        let problems = workload.verify()
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))\n\(cluster.logs())", sourceLocation: sourceLocation)
    }

    private func members(_ cluster: LocalCluster) -> [MemberInfo] {
        let clerk = Clerk(endpoints: cluster.gatewayEndpoints, attemptTimeoutMs: 1000, operationTimeoutMs: 3000)
        defer { clerk.closeConnections() }
        guard let response = try? clerk.callOnce(KvRequest(op: .member, member: MemberCommand(action: .list))),
              response.status == .ok else { return [] }
        return response.members
    }

    private func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(100_000)
        }
        return condition()
    }

    @Test func addAFourthNodeThenRemoveNodeOneUnderLoad() throws {
        var options = ClusterOptions(nodes: 3, gateways: 1)
        options.spareNodes = 1
        let ports = try OperatorPorts(nodes: 4, gateways: 1)
        options.extraArguments = { kind, number in ["--metrics-listen", "127.0.0.1:\(ports.port(kind, number))"] }
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start()
        try #require(cluster.waitForLeader() != nil)
        // Enough operations that the clients are still busy at the last progress check, even
        // when the waits between are slow (each client has its own key: cheap to check).
        var load = Workload.Options(clients: 3)
        load.maxOpsPerClient = 2500
        let workload = Workload(endpoints: cluster.gatewayEndpoints, options: load)
        workload.start()
        defer { workload.stop() }

        // Node 4 joins: it waits with no configuration until the leader adds it.
        try cluster.raftd(4).start()
        try cluster.kvd(4).start()
        usleep(300_000)
        #expect(members(cluster).map(\.id) == [1, 2, 3])
        let add = try kvctl(cluster, ["member", "add", "4", "--raft", "127.0.0.1:\(cluster.raftdPorts[4]!)",
                                      "--kvd", "127.0.0.1:\(cluster.kvdPorts[4]!)"])
        #expect(add.0 == 0, "\(add.1)")
        let promoted = waitUntil(seconds: 20) { members(cluster).first { $0.id == 4 }?.voter == true }
        #expect(promoted, "node 4 was not promoted: \(members(cluster))\n\(cluster.logs())")
        let list = try kvctl(cluster, ["member", "list"])
        #expect(list.0 == 0 && list.1.contains("voter"), "\(list.1)")

        // Node 1 leaves (handing leadership over first if it leads).
        let beforeRemoval = workload.completed
        let remove = try kvctl(cluster, ["member", "remove", "1"])
        #expect(remove.0 == 0, "\(remove.1)")
        let removed = waitUntil(seconds: 20) { let ids = members(cluster).map(\.id); return ids == [2, 3, 4] }
        #expect(removed, "node 1 still listed: \(members(cluster))\n\(cluster.logs())")
        // The removed raftd says so on /health (it may still remember the last leader it heard).
        #expect(waitUntil(seconds: 10) { ports.health(.raftd, 1).status == 503 && ports.health(.raftd, 1).detail.contains("removed from the cluster") },
                "removed raftd 1: \(ports.health(.raftd, 1).detail)")
        for id in [2, 3, 4] { #expect(waitUntil(seconds: 10) { ports.health(.raftd, id).status == 200 }, "raftd \(id): \(ports.health(.raftd, id).detail)") }
        // The gateway, started with nodes 1-3 only, learned node 4's kvd from the configuration,
        // and shows it among its upstreams.
        #expect(waitUntil(seconds: 5) { (try? String(contentsOf: cluster.gateway(1).logURL, encoding: .utf8))?.contains("names kvd 4") ?? false },
                "the gateway did not learn node 4")
        #expect(waitUntil(seconds: 5) { ports.scrape(.gateway, 1)?.value("kvraft_gateway_upstream_up", ["node": "4"]) == 1 },
                "no kvraft_gateway_upstream_up{node=\"4\"} of 1")
        // ... and forgot node 1, which the leader's configuration no longer names: its link is
        // closed, it is no longer dialed, and it is gone from the upstream gauges.
        #expect(waitUntil(seconds: 5) { (try? String(contentsOf: cluster.gateway(1).logURL, encoding: .utf8))?.contains("no longer names kvd 1") ?? false },
                "the gateway did not forget node 1")
        #expect(waitUntil(seconds: 5) { ports.scrape(.gateway, 1).map { $0.value("kvraft_gateway_upstream_up", ["node": "1"]) == nil } ?? false },
                "kvraft_gateway_upstream_up{node=\"1\"} still exported")
        // kvd 1 still runs, so a dialer left running would redial it within its 500 ms backoff
        // cap; the proxy in front of it counts every dial.
        #expect(waitUntil(seconds: 5) { cluster.gatewayLinkStats(gateway: 1, node: 1)?.active == 0 },
                "the gateway's link to the removed kvd 1 is still open: \(String(describing: cluster.gatewayLinkStats(gateway: 1, node: 1)))")
        let dialsOfNodeOne = cluster.gatewayLinkStats(gateway: 1, node: 1)?.accepted
        usleep(1_500_000)
        #expect(cluster.gatewayLinkStats(gateway: 1, node: 1)?.accepted == dialsOfNodeOne, "the gateway still dials the removed kvd 1")
        // Clients keep completing operations on the new configuration.
        let progressed = waitUntil(seconds: 10) { workload.completed > beforeRemoval + 50 }
        #expect(progressed, "no progress after the removal\n\(cluster.logs())")
        // Node 1 no longer counts: with it stopped the cluster still commits (and the gateway
        // reaches node 4 if it leads).
        cluster.kill9(cluster.raftd(1))
        cluster.kill9(cluster.kvd(1))
        expectProgress(workload, cluster, "no progress without node 1")
        // Every raftd restarts (kill -9) after the log was compacted past the changes: the
        // configuration comes back from snapshots and the membership file, not from --peers.
        #expect(waitUntil(seconds: 10) {
            cluster.nodeStatuses().values.filter { $0.snapshotIndex > 160 }.count >= 2
        }, "no snapshots past the changes: \(cluster.nodeStatuses())")
        for id in [2, 3, 4] { try cluster.restart(cluster.raftd(id)) }
        #expect(waitUntil(seconds: 20) { members(cluster).map(\.id) == [2, 3, 4] }, "after restarts: \(members(cluster))\n\(cluster.logs())")
        expectProgress(workload, cluster, "no progress after restarts")
        stopAndVerify(workload, cluster)
    }

    /// A node whose data dir is wiped comes back refusing to serve (it forgot its votes);
    /// `kvctl member replace` swaps it for a fresh node 4 while clients keep going.
    @Test func replaceANodeWhoseDiskWasWiped() throws {
        var options = ClusterOptions(nodes: 3, gateways: 1)
        options.spareNodes = 1
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start()
        let leader = try #require(cluster.waitForLeader())
        let victim = leader == 3 ? 2 : 3
        let workload = Workload(endpoints: cluster.gatewayEndpoints, options: Workload.Options(clients: 3))
        workload.start()
        defer { workload.stop() }
        usleep(500_000)

        cluster.kill9(cluster.raftd(victim))
        cluster.kill9(cluster.kvd(victim))
        try FileManager.default.removeItem(at: cluster.directory.appendingPathComponent("data-\(victim)"))
        try cluster.raftd(victim).start()
        try cluster.kvd(victim).start()
        let refused = waitUntil(seconds: 10) {
            (try? String(contentsOf: cluster.raftd(victim).logURL, encoding: .utf8))?.contains("kvctl member replace") ?? false
        }
        #expect(refused, "the wiped node did not refuse to serve\n\(cluster.logs())")

        try cluster.raftd(4).start()
        try cluster.kvd(4).start()
        let replace = try kvctl(cluster, ["member", "replace", "\(victim)", "4", "--raft", "127.0.0.1:\(cluster.raftdPorts[4]!)",
                                          "--kvd", "127.0.0.1:\(cluster.kvdPorts[4]!)"])
        #expect(replace.0 == 0, "\(replace.1)\n\(cluster.logs())")
        let expected = [1, 2, 3, 4].filter { $0 != victim }.map(UInt64.init)
        #expect(waitUntil(seconds: 20) { members(cluster).map(\.id) == expected && members(cluster).allSatisfy(\.voter) },
                "members \(members(cluster))")
        cluster.kill9(cluster.raftd(victim))
        cluster.kill9(cluster.kvd(victim))
        expectProgress(workload, cluster, "no progress after the replacement")
        stopAndVerify(workload, cluster)
    }

    /// Grow 3 → 5 (two joins, each promoted automatically), then shrink back to 3 by removing
    /// whichever node leads, twice, with the leader's raftd killed right after the first
    /// removal was proposed (the change either committed or is finished by the next leader).
    /// In every read mode: a leader removing itself must not answer reads from a lease (or a
    /// read index) once another node may lead; clients share keys, so a stale read shows.
    @Test(arguments: ["index", "lease"])
    func growToFiveThenShrinkToThreeRemovingTheLeader(readMode: String) throws {
        var options = ClusterOptions(nodes: 3, gateways: 1)
        options.spareNodes = 2
        options.readMode = readMode
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start()
        try #require(cluster.waitForLeader() != nil)
        let workload = Workload(endpoints: cluster.gatewayEndpoints, options: Workload.Options(clients: 4, randomKeys: 3))
        workload.start()
        defer { workload.stop() }

        for id in [4, 5] {
            try cluster.raftd(id).start()
            try cluster.kvd(id).start()
            let add = try kvctl(cluster, ["member", "add", "\(id)", "--raft", "127.0.0.1:\(cluster.raftdPorts[id]!)",
                                          "--kvd", "127.0.0.1:\(cluster.kvdPorts[id]!)"])
            #expect(add.0 == 0, "\(add.1)")
            #expect(waitUntil(seconds: 20) { members(cluster).first { $0.id == UInt64(id) }?.voter == true },
                    "node \(id) not promoted: \(members(cluster))")
        }
        #expect(members(cluster).filter(\.voter).count == 5)

        var removed: [Int] = []
        for round in 0..<2 {
            let leader = try #require(cluster.waitForLeader())
            let remove = try kvctl(cluster, ["member", "remove", "\(leader)"])
            #expect(remove.0 == 0, "\(remove.1)")
            removed.append(leader)
            if round == 0 {
                // Crash it mid-change: the removal is appended, maybe not yet committed.
                cluster.kill9(cluster.raftd(leader))
            }
            #expect(waitUntil(seconds: 20) {
                let ids = members(cluster).map { Int($0.id) }
                return !ids.isEmpty && !ids.contains(leader)
            }, "node \(leader) still a member: \(members(cluster))\n\(cluster.logs())")
        }
        #expect(members(cluster).filter(\.voter).count == 3, "\(members(cluster))")
        for id in removed {
            cluster.kill9(cluster.raftd(id))
            cluster.kill9(cluster.kvd(id))
        }
        expectProgress(workload, cluster, "no progress on the three remaining")
        stopAndVerify(workload, cluster)
    }

    /// A removal that would leave fewer reachable voters than a majority is refused with the
    /// reason; --force overrides.
    @Test func removalThatWouldLoseTheMajorityIsRefusedUnlessForced() throws {
        let cluster = try LocalCluster(ClusterOptions(nodes: 5, gateways: 1))
        defer { cluster.shutdown() }
        try cluster.start()
        let leader = try #require(cluster.waitForLeader())
        let others = (1...5).filter { $0 != leader }
        for id in others.prefix(2) { cluster.kill9(cluster.raftd(id)) }
        let victim = others[2]
        #expect(waitUntil(seconds: 5) { members(cluster).filter { !$0.reachable }.count == 2 }, "\(members(cluster))")
        let refused = try kvctl(cluster, ["member", "remove", "\(victim)"])
        #expect(refused.0 == 2 && refused.1.contains("fewer than the 3 a majority needs"), "\(refused.1)")
        let forced = try kvctl(cluster, ["member", "remove", "\(victim)", "--force"])
        #expect(forced.0 == 0, "\(forced.1)")
    }
}

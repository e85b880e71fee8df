import ClusterTestSupport
import EventLoop
import Foundation
import KVClient
import ServiceSupport
import Testing
import Wire

/// raftd restarted under conditions that once stopped it: a kvd (here the stand-in probe) that
/// stayed up and is ahead of what the restarted raftd knows to be committed.
@Suite(.serialized)
struct RaftdRecoveryTests {
    /// A commit index learned only from a heartbeat is not fsynced, so after kill -9 raftd may know
    /// less committed than its kvd applied. kvd's snapshot at its own applied index must then be
    /// put off (compacting the log past raftd's applied index is impossible), not end raftd, and
    /// taken once raftd relearned the commit index from a leader.
    @Test func kvdSnapshotAheadOfARestartedRaftdIsDeferred() throws {
        var options = ClusterOptions(nodes: 3, gateways: 0)
        options.snapshotLogBytes = 2_000
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start(raftdsOnly: true)
        let probe = ApplyProbe(cluster: cluster)
        func fail(_ what: String) -> String { "\(what)\n\(cluster.logs())" }
        // No snapshot yet anywhere: the restarted raftd's whole log is still there to compact.
        for link in probe.links.values { link.answersSnapshotRequests = false }
        #expect(probe.run(timeoutMs: 10_000) { probe.leader != nil }, "\(fail("no leader elected"))")
        let leader = try #require(probe.leader)
        let follower = (1...3).first { $0 != leader }!

        // One batch: its entries reach the follower in an append, their commit only in the next
        // heartbeat (nothing follows), which the follower writes but does not fsync.
        let commands = (0..<60).map { i in Array("deferred-\(i)-".utf8) + [UInt8](repeating: 0x62, count: 60) }
        probe.propose(on: leader, commands)
        let last = commands.last!
        #expect(probe.run(timeoutMs: 10_000) { probe.links[follower]!.applied.contains { $0.data == last } },
                "\(fail("the follower's probe did not apply the batch"))")
        let kvdApplied = probe.links[follower]!.lastApplied

        // Every raftd dies; the follower comes back alone (no leader to relearn the commit from),
        // its probe reconnects ahead of it and answers the snapshot request at once.
        for node in 1...3 { cluster.kill9(cluster.raftd(node)) }
        for link in probe.links.values { link.answersSnapshotRequests = true }
        let requestsBefore = probe.links[follower]!.snapshotRequests
        try cluster.raftd(follower).start()
        let requested = probe.run(timeoutMs: 5_000) { probe.links[follower]!.snapshotRequests > requestsBefore }
        #expect(requested, "\(fail("the restarted raftd asked its probe for no snapshot"))")
        probe.run(timeoutMs: 1_000) { !cluster.raftd(follower).isRunning }
        #expect(cluster.raftd(follower).isRunning, "\(fail("raftd \(follower) died on its kvd's snapshot at \(kvdApplied)"))")
        #expect(cluster.raftd(follower).logContains("ahead of what this raftd knows to be applied"),
                "\(fail("the snapshot was not deferred"))")

        // With a leader back, the commit index is relearned and the deferred compaction happens.
        for node in 1...3 where node != follower { try cluster.raftd(node).start() }
        let compacted = probe.run(timeoutMs: 15_000) { cluster.raftd(follower).logContains("compacted the log through") }
        #expect(compacted, "\(fail("raftd \(follower) never compacted after relearning the commit index"))")
        #expect(cluster.raftd(follower).isRunning)
        for link in probe.links.values { #expect(link.streamErrors.isEmpty, "\(link.streamErrors)") }
    }

    /// A follower whose data dir is deleted comes back under its old node id having forgotten its
    /// votes and log. It must neither crash (the leader's first heartbeat names a commit beyond
    /// its empty log) nor take part: its peers know it by another data-dir id and refuse it, it
    /// learns so and refuses to serve, saying why in its log and status; the cluster serves on.
    @Test func wipedFollowerRefusesToServeAndTheClusterServesOn() throws {
        let cluster = try LocalCluster(ClusterOptions(nodes: 3, gateways: 1))
        defer { cluster.shutdown() }
        try cluster.start()
        func fail(_ what: String) -> String { "\(what)\n\(cluster.logs())" }
        let leader = try #require(cluster.waitForLeader(), "no leader")
        let clerk = Clerk(endpoints: cluster.gatewayEndpoints)
        func key(_ i: Int) -> [UInt8] { Array("wipe-key-\(i)".utf8) }
        func put(_ range: Range<Int>) {
            for i in range {
                guard case let .completed(response) = clerk.put(key(i), Array("v\(i)".utf8)), response.status == .ok else {
                    Issue.record("put \(i) failed\n\(cluster.logs())")
                    return
                }
            }
        }
        put(0..<200)

        let wiped = (1...3).first { $0 != leader }!
        cluster.kill9(cluster.raftd(wiped))
        cluster.kill9(cluster.kvd(wiped))
        try FileManager.default.removeItem(at: cluster.directory.appendingPathComponent("data-\(wiped)"))
        try cluster.raftd(wiped).start()
        try cluster.kvd(wiped).start()

        let refused = (0..<100).contains { _ in
            if cluster.raftd(wiped).logContains("data directory was wiped or replaced") { return true }
            usleep(50_000)
            return false
        }
        #expect(refused, "\(fail("the wiped node never learned it was refused"))")
        // The leader heard it first, so the wiped node learned before it could say anything.
        // What it would have said, in the name of its old node id, is refused: a vote request
        // from a data dir the leader does not know it by.
        let term = try #require(cluster.nodeStatuses()[leader]).term
        var forged: [UInt8] = []
        PeerMessage(clusterID: ClusterID.hash("kvraft"), from: UInt64(wiped), to: UInt64(leader), type: .vote, term: term + 100,
                    logTerm: term + 100, index: 1 << 40, transfer: true, senderDataDirID: 0xBAD).appendFrame(to: &forged)
        let connection = KVConnection(endpoint: .tcp(host: "127.0.0.1", port: cluster.raftdPorts[leader]!))
        _ = try? connection.sendRaw(forged, timeoutMs: 300)
        let leaderRefused = (0..<40).contains { _ in
            if cluster.raftd(leader).logContains("refusing node \(wiped)") { return true }
            usleep(50_000)
            return false
        }
        connection.close()
        #expect(leaderRefused, "\(fail("the leader did not refuse a message from the wiped node's new data dir"))")
        #expect(cluster.nodeStatuses()[leader]?.term == term, "the refused vote request moved the leader's term")

        // The two intact nodes keep serving, and everything written before is there.
        put(200..<250)
        for i in [0, 199, 249] {
            guard case let .completed(response) = clerk.get(key(i)) else {
                Issue.record("get \(i) failed\n\(cluster.logs())")
                continue
            }
            #expect(response.status == .ok && response.value == Array("v\(i)".utf8), "key \(i)")
        }
        let status = cluster.nodeStatuses()[wiped]
        #expect(status?.error.contains("wiped or replaced") == true, "\(fail("status of node \(wiped): \(String(describing: status))"))")
        #expect(cluster.raftd(wiped).isRunning, "\(fail("the wiped node's raftd died"))")
        #expect(status?.commitIndex == 0 && status?.role != "leader", "the wiped node took part: \(String(describing: status))")
    }

    /// The wiped node comes back while the leader is down, so the first peer it reaches is a
    /// follower — which may never have heard from it directly, but learned its data-dir id from
    /// the leader's heartbeats. Whichever speaks first, the wiped node learns it was replaced from
    /// that follower (by the id the follower sends it, or by its refusal).
    @Test func wipedNodeIsRecognizedByAFollowerWhileTheLeaderIsDown() throws {
        let cluster = try LocalCluster(ClusterOptions(nodes: 3, gateways: 0))
        defer { cluster.shutdown() }
        try cluster.start(raftdsOnly: true)
        let probe = ApplyProbe(cluster: cluster)
        func fail(_ what: String) -> String { "\(what)\n\(cluster.logs())" }
        #expect(probe.run(timeoutMs: 10_000) { probe.leader != nil }, "\(fail("no leader elected"))")
        let leader = try #require(probe.leader)
        let followers = (1...3).filter { $0 != leader }
        let (wiped, survivor) = (followers[0], followers[1])
        probe.propose(on: leader, (0..<50).map { Array("before-wipe-\($0)".utf8) })
        #expect(probe.run(timeoutMs: 10_000) { probe.links.values.allSatisfy { $0.lastApplied >= 51 } }, "\(fail("not applied"))")
        probe.run(timeoutMs: 200) { false }  // a few heartbeats carry the leader's record of ids

        cluster.kill9(cluster.raftd(wiped))
        cluster.kill9(cluster.raftd(leader))
        probe.disconnect(wiped)
        probe.disconnect(leader)
        try FileManager.default.removeItem(at: cluster.directory.appendingPathComponent("data-\(wiped)"))
        try cluster.raftd(wiped).start()

        let refused = probe.run(timeoutMs: 5_000) { cluster.raftd(wiped).logContains("told by node \(survivor)") }
        #expect(refused, "\(fail("node \(survivor) did not recognize the wiped node \(wiped)"))")
        #expect(cluster.raftd(wiped).isRunning && cluster.raftd(survivor).isRunning)

        // The leader returns: the two intact nodes elect and commit without the wiped one.
        try cluster.raftd(leader).start()
        #expect(probe.run(timeoutMs: 10_000) { probe.leader != nil && probe.leader != wiped }, "\(fail("no leader after the restart"))")
        let next = try #require(probe.leader)
        probe.propose(on: next, [Array("after-wipe".utf8)])
        let committed = probe.run(timeoutMs: 10_000) {
            [leader, survivor].allSatisfy { node in probe.links[node]!.applied.contains { $0.data == Array("after-wipe".utf8) } }
        }
        #expect(committed, "\(fail("the intact nodes did not commit"))")
        #expect(probe.links[wiped]!.applied.allSatisfy { $0.data != Array("after-wipe".utf8) }, "the wiped node took part")
    }
}

import ClusterTestSupport
import Foundation
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
}

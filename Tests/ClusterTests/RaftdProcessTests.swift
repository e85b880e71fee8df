import ClusterTestSupport
import Foundation
import EventLoop
import KVClient
import ServiceSupport
import Testing
import Wire

/// raftd as real processes, with a stand-in kvd (ApplyProbe) on each apply socket.
@Suite(.serialized)
struct RaftdProcessTests {
    /// Starts three raftds with a probe on every apply socket, waits for a leader, and runs
    /// `body` with them; the cluster is shut down afterwards, also when `body` throws.
    private func withElectedLeader(_ body: (LocalCluster, ApplyProbe, _ leader: Int) throws -> Void) throws {
        let cluster = try LocalCluster(ClusterOptions(nodes: 3, gateways: 0))
        defer { cluster.shutdown() }
        try cluster.start(raftdsOnly: true)
        let probe = ApplyProbe(cluster: cluster)
        #expect(probe.run(timeoutMs: 10_000) { probe.leader != nil }, "no leader elected\n\(cluster.logs())")
        try body(cluster, probe, try #require(probe.leader))
    }

    @Test func replicatesSurvivesLeaderKillAndCatchesUp() throws {
        try withElectedLeader { cluster, probe, first in
            func fail(_ what: String) -> String { "\(what)\n\(cluster.logs())" }

            // 10,000 commands in batches of 100, all through the first leader.
            var sent = 0
            var expected: [[UInt8]] = []
            func proposeBatch(on node: Int, count: Int) {
                let commands = (0..<count).map { i in Array("cmd-\(sent + i)".utf8) }
                probe.propose(on: node, commands)
                expected.append(contentsOf: commands)
                sent += count
            }
            while sent < 10_000 {
                proposeBatch(on: first, count: 100)
                if sent % 2000 == 0 { probe.run(timeoutMs: 5) { false } }
            }
            let allApplied: () -> Bool = {
                probe.links.values.allSatisfy { link in link.applied.filter { !$0.isNoop }.count >= expected.count }
            }
            #expect(probe.run(timeoutMs: 30_000, until: allApplied), "\(fail("not every node applied 10,000 commands"))")

            // kill -9 the leader; a new one takes over and commits more.
            cluster.kill9(cluster.raftd(first))
            probe.disconnect(first)
            #expect(probe.run(timeoutMs: 10_000) { (probe.leader ?? first) != first }, "\(fail("no new leader after kill -9"))")
            let second = try #require(probe.leader)
            #expect(second != first)
            proposeBatch(on: second, count: 500)
            let survivorsApplied: () -> Bool = {
                probe.links.filter { $0.key != first }.values.allSatisfy { $0.applied.filter { !$0.isNoop }.count >= expected.count }
            }
            #expect(probe.run(timeoutMs: 10_000, until: survivorsApplied), "\(fail("survivors did not apply the new commands"))")

            // The old leader comes back and catches up; its stream continues where it left off.
            try cluster.raftd(first).start()
            #expect(probe.run(timeoutMs: 20_000, until: allApplied), "\(fail("restarted node did not catch up"))")

            // Every apply stream is identical: same entries, same order, each exactly once.
            let streams = (1...3).map { probe.links[$0]!.applied }
            let shortest = streams.map(\.count).min()!
            for stream in streams.dropFirst() {
                #expect(Array(stream.prefix(shortest)) == Array(streams[0].prefix(shortest)))
            }
            for link in probe.links.values { #expect(link.streamErrors.isEmpty, "\(link.streamErrors)") }
            let commands = streams[0].filter { !$0.isNoop }.map(\.data)
            #expect(commands == expected, "commands applied out of order, twice, or lost")
        }
    }

    /// The leader tells kvd where an accepted proposal landed along with later traffic (not in
    /// a message of its own), but always before the entry itself is streamed; a follower
    /// refuses at once, naming the leader.
    @Test func proposeResultsPrecedeTheirEntriesAndFollowersRefuseAtOnce() throws {
        try withElectedLeader { cluster, probe, leader in
            func fail(_ what: String) -> String { "\(what)\n\(cluster.logs())" }
            let link = try #require(probe.links[leader])

            for i in 0..<50 {
                let data = Array("sequential-\(i)".utf8)
                let id = try #require(probe.propose(on: leader, [data]).first)
                let applied = probe.run(timeoutMs: 5_000) { link.applied.contains { $0.data == data } }
                #expect(applied, "\(fail("proposal \(i) not applied"))")
                let result = try #require(link.results[id], "no result for proposal \(i)")
                #expect(result.accepted)
                let entry = try #require(link.applied.first { $0.data == data })
                #expect(result.index == entry.index && result.term == entry.term)
                let appliedBefore = try #require(link.appliedWhenResultArrived[id])
                #expect(appliedBefore < entry.index, "result for index \(entry.index) came after the entry was streamed")
            }

            let follower = try #require((1...3).first { $0 != leader })
            let followerLink = try #require(probe.links[follower])
            let refusedID = try #require(probe.propose(on: follower, [Array("refused".utf8)]).first)
            #expect(probe.run(timeoutMs: 2_000) { followerLink.results[refusedID] != nil }, "\(fail("follower never answered"))")
            let refusal = try #require(followerLink.results[refusedID])
            #expect(!refusal.accepted && refusal.leaderID == UInt64(leader))
            for link in probe.links.values { #expect(link.streamErrors.isEmpty, "\(link.streamErrors)") }
        }
    }

    /// Garbage, foreign clusters and unknown senders on raftd's peer port, and garbage on
    /// its apply socket: each such connection is closed, and the node keeps replicating.
    @Test func badInputOnPeerPortAndApplySocket() throws {
        try withElectedLeader { cluster, probe, leader in
            let peerPort = Endpoint.tcp(host: "127.0.0.1", port: cluster.raftdPorts[leader]!)

            var foreignCluster: [UInt8] = []
            PeerMessage(clusterID: 12345, from: 2, to: UInt64(leader), type: .heartbeat, term: 99).appendFrame(to: &foreignCluster)
            var unknownSender: [UInt8] = []
            PeerMessage(clusterID: ClusterID.hash("kvraft"), from: 77, to: UInt64(leader), type: .vote, term: 1_000).appendFrame(to: &unknownSender)
            // Snapshot chunks that do not start a snapshot, or announce one beyond the size limit.
            let clusterID = ClusterID.hash("kvraft")
            let follower2 = UInt64((1...3).first { $0 != leader }!)
            var strayChunk: [UInt8] = []
            PeerMessage(clusterID: clusterID, from: follower2, to: UInt64(leader), type: .snapshot, term: 1,
                        snapshot: SnapshotChunk(index: 9, term: 1, offset: 100, totalSize: 200, data: [1, 2, 3])).appendFrame(to: &strayChunk)
            var hugeSnapshot: [UInt8] = []
            PeerMessage(clusterID: clusterID, from: follower2, to: UInt64(leader), type: .snapshot, term: 1,
                        snapshot: SnapshotChunk(index: 9, term: 1, offset: 0, totalSize: 1 << 40, data: [1])).appendFrame(to: &hugeSnapshot)
            var chunklessSnapshot: [UInt8] = []
            PeerMessage(clusterID: clusterID, from: follower2, to: UInt64(leader), type: .snapshot, term: 1).appendFrame(to: &chunklessSnapshot)
            let attacks: [[UInt8]] = [[0xff, 0xff, 0xff, 0xff, 1, 2], [0, 0, 0, 3, 0xff, 0xff, 0xff], foreignCluster, unknownSender,
                                      strayChunk, hugeSnapshot, chunklessSnapshot]
            for bytes in attacks {
                let connection = KVConnection(endpoint: peerPort)
                _ = try? connection.sendRaw(bytes, timeoutMs: 300)
                #expect(connection.waitForClose(timeoutMs: 3000), "raftd kept a bad peer connection open")
            }
            // Garbage on the apply socket of a follower: that connection is dropped, the probe reconnects.
            let follower = (1...3).first { $0 != leader }!
            let applyGarbage = KVConnection(endpoint: .unix(path: cluster.applySocket(follower)))
            _ = try? applyGarbage.sendRaw([0, 0, 0, 2, 0xff, 0xff], timeoutMs: 300)
            #expect(applyGarbage.waitForClose(timeoutMs: 3000))

            // The cluster still commits, with the same leader (no term bump from the fake vote).
            let term = probe.links[leader]!.leadership!.term
            probe.propose(on: leader, (0..<100).map { Array("after-\($0)".utf8) })
            let applied: () -> Bool = { probe.links.values.allSatisfy { $0.applied.contains { $0.data == Array("after-99".utf8) } } }
            #expect(probe.run(timeoutMs: 10_000, until: applied), "no progress after bad input\n\(cluster.logs())")
            #expect(probe.links[leader]!.leadership!.term == term)
            for process in cluster.raftds { #expect(process.isRunning, "\(process.name) died") }
        }
    }
}

/// Log compaction with real raftds: snapshots taken from the (probe) state machine, a follower
/// that missed compacted entries catches up by installing the leader's snapshot, and a whole
/// cluster restarts from snapshot + log.
@Suite(.serialized)
struct RaftdSnapshotTests {
    @Test func laggingFollowerInstallsSnapshotAndClusterRestartsFromIt() throws {
        var options = ClusterOptions(nodes: 3, gateways: 0)
        options.snapshotLogBytes = 64 << 10
        options.snapshotCatchUpBytes = 8 << 10
        let cluster = try LocalCluster(options)
        defer { cluster.shutdown() }
        try cluster.start(raftdsOnly: true)
        let probe = ApplyProbe(cluster: cluster)
        func fail(_ what: String) -> String { "\(what)\n\(cluster.logs())" }
        #expect(probe.run(timeoutMs: 10_000) { probe.leader != nil }, "\(fail("no leader elected"))")
        let leader = try #require(probe.leader)
        let lagging = (1...3).first { $0 != leader }!

        var expected: [[UInt8]] = []
        func propose(_ count: Int, on node: Int) {
            for _ in 0..<(count / 100) {
                let commands = (0..<100).map { i in Array("command-\(expected.count + i)-".utf8) + [UInt8](repeating: 0x61, count: 80) }
                probe.propose(on: node, commands)
                expected.append(contentsOf: commands)
                probe.run(timeoutMs: 2) { false }
            }
        }
        func applied(_ node: Int) -> [[UInt8]] { probe.links[node]!.applied.filter { !$0.isNoop }.map(\.data) }

        propose(500, on: leader)
        #expect(probe.run(timeoutMs: 10_000) { (1...3).allSatisfy { applied($0).count == expected.count } }, "\(fail("first commands not applied"))")

        // The follower goes down; the others log ~1 MB, compacting many times over.
        cluster.kill9(cluster.raftd(lagging))
        probe.disconnect(lagging)
        propose(10_000, on: leader)
        let survivors = (1...3).filter { $0 != lagging }
        #expect(probe.run(timeoutMs: 30_000) { survivors.allSatisfy { applied($0).count == expected.count } }, "\(fail("survivors did not apply"))")
        for node in survivors {
            #expect(probe.links[node]!.snapshotRequests >= 3, "node \(node) was asked for \(probe.links[node]!.snapshotRequests) snapshots")
            let snapshotFile = cluster.directory.appendingPathComponent("data-\(node)/snapshot").path
            #expect(FileManager.default.fileExists(atPath: snapshotFile), "no snapshot file for node \(node)")
        }

        // Back up: its log ends long before the leader's first entry, so it must take a snapshot,
        // and its stand-in kvd is restored from it.
        try cluster.raftd(lagging).start()
        #expect(probe.run(timeoutMs: 20_000) { applied(lagging).count == expected.count }, "\(fail("lagging node did not catch up"))")
        #expect(probe.links[lagging]!.restores >= 1, "the lagging node caught up without a snapshot")
        #expect(cluster.raftd(lagging).logContains("installing snapshot"), "\(fail("no snapshot installed"))")
        #expect(applied(lagging) == expected, "the lagging node's history differs")

        // Everyone restarts at once from snapshot + log, and the cluster goes on.
        for node in 1...3 { cluster.kill9(cluster.raftd(node)); probe.disconnect(node) }
        for node in 1...3 { try cluster.raftd(node).start() }
        #expect(probe.run(timeoutMs: 10_000) { probe.leader != nil }, "\(fail("no leader after restarting everyone"))")
        propose(300, on: try #require(probe.leader))
        let counts = { (1...3).map { applied($0).count } }
        #expect(probe.run(timeoutMs: 20_000) { counts().allSatisfy { $0 == expected.count } },
                "\(fail("no progress after restarting from snapshots: applied \(counts()) of \(expected.count)"))")
        for node in 1...3 {
            let matches = applied(node) == expected
            #expect(matches, "node \(node) applied a different history (\(applied(node).count) commands, expected \(expected.count))")
            #expect(probe.links[node]!.streamErrors.isEmpty, "\(probe.links[node]!.streamErrors)")
        }
    }
}

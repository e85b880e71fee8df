import ClusterTestSupport
import Foundation
import Testing
import Wire

/// raftd as real processes, with a stand-in kvd (ApplyProbe) on each apply socket.
@Suite(.serialized)
struct RaftdProcessTests {
    @Test func replicatesSurvivesLeaderKillAndCatchesUp() throws {
        let cluster = try LocalCluster(ClusterOptions(nodes: 3, gateways: 0))
        defer { cluster.shutdown() }
        try cluster.start(raftdsOnly: true)
        let probe = ApplyProbe(sockets: Dictionary(uniqueKeysWithValues: (1...3).map { ($0, cluster.applySocket($0)) }))
        func fail(_ what: String) -> String { "\(what)\n\(cluster.logs())" }

        #expect(probe.run(timeoutMs: 10_000) { probe.leader != nil }, "\(fail("no leader elected"))")
        let first = try #require(probe.leader)

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
